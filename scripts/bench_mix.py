"""Epoch-time overhead of mixing augmentations: the ratio (mixed epoch) / (plain epoch).

One process, one model, one data set: the engine's own `Trainer.train_epoch` runs with no
mixer and with each mixer, interleaved (none, mix₁, mix₂, …, none, mix₁, …) so drifts in
machine load hit every arm alike, after one untimed warm-up epoch of each. Prints the
median epoch time of each arm and its ratio to none (target: ≤ 1.03), then
each mixer's own cost per step as a share of a plain step, measured directly on one batch,
which noise on a shared host blurs less: the mix itself and the second loss term; for a
mixer that mixes a hidden state (manifold mixup) the forward pass with the mix against
the plain forward pass.

    python scripts/bench_mix.py                                   # digits, default cnn, mixup
    python scripts/bench_mix.py --family trainer.threads=1        # mixup, cutmix, cutout, …
    python scripts/bench_mix.py trainer.threads=1 --repeats 7
    python scripts/bench_mix.py dataset=imagefolder dataset.root=/data/cifar10-jpg \\
        dataset.subset=5000 model=resnet model.depth=10 model.width=16 --family
    python scripts/bench_mix.py --aug +aug=mixup aug.mode=elem --aug +aug=cutmix aug.mode=elem

Positional arguments are Hydra overrides of the run (as for `regx train`); each `--aug`
gives the overrides that add one mixer (default: `+aug=mixup`); `--family` adds every
mixer of the mixing family with its defaults. Timings are wall-clock: on a shared
machine, repeat.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from regx.aug.base import Mixer
from regx.config import compose_config
from regx.config.build import build_spec
from regx.engine.progress import EpochProgress
from regx.engine.trainer import Trainer

FAMILY = ("mixup", "samplepairing", "cutmix", "cutout", "manifold_mixup", "mixup_cutmix")


def time_epoch(trainer: Trainer, epoch: int) -> float:
    progress = EpochProgress(len(trainer.batches), trainer.s.epochs, enabled=False)
    t0 = time.perf_counter()
    # train_epoch ends by reading its device accumulators, so the clock stops after the GPU.
    trainer.train_epoch(epoch, progress)
    return time.perf_counter() - t0


def mixer_cost(trainer: Trainer, mixer: Mixer, reps: int = 300) -> float:
    """Median seconds per step that mixing adds, on a real batch (a steadier estimate than
    epoch times on a busy host): outside the model (the mix and the second loss term), or,
    for a hidden-state mix, the mixed forward pass against the plain one."""
    xb, yb, _ = next(iter(trainer.batches.epoch(0)))
    x = trainer.normalize(xb)
    model, loss_fn = trainer.model, trainer.loss_fn
    model.train()
    with torch.no_grad():
        out = model(x)
        probe = mixer(x, yb)
    in_model = probe is not None and probe.hidden_mix is not None

    def timed(step: Callable[[], object]) -> float:
        t0 = time.perf_counter()
        step()
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
        return time.perf_counter() - t0

    def mixed_step() -> None:
        mixed = mixer(x, yb)
        if mixed is None:
            loss_fn(model(x) if in_model else out, yb)
            return
        if in_model:
            mixed.loss(loss_fn, model(mixed.inputs, hidden_mix=mixed.hidden_mix), yb)
        else:
            mixed.loss(loss_fn, out, yb)

    def plain_step() -> None:
        loss_fn(model(x) if in_model else out, yb)

    # interleaved pairs (plain, mixed): load drifts hit both; the median of the differences
    with torch.no_grad():
        return statistics.median(timed(mixed_step) - timed(plain_step) for _ in range(reps))


def mixing_epoch(mixer: Mixer | None, num_epochs: int) -> int:
    """An epoch in which the mixer mixes (schedules switch some off), or 0."""
    if mixer is None:
        return 0
    return next((e for e in range(num_epochs) if mixer.active(e, num_epochs)), 0)


def build_mixers(base: list[str], aug_args: list[list[str]]) -> dict[str, Mixer]:
    """Each `--aug` override list built into a mixer, keyed by a unique name."""
    mixers: dict[str, Mixer] = {}
    for overrides in aug_args:
        mixer = build_spec(compose_config([*base, *overrides])).mixer
        if mixer is None:
            raise SystemExit(f"--aug {' '.join(overrides)} configures no mixer")
        name, k = mixer.name, 2
        while name in mixers:
            name, k = f"{mixer.name}#{k}", k + 1
        mixers[name] = mixer
    return mixers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the run")
    parser.add_argument(
        "--aug", nargs="+", action="append", help="overrides adding one mixer (repeatable)"
    )
    parser.add_argument("--family", action="store_true", help="every mixer of the family")
    parser.add_argument("--repeats", type=int, default=5, help="timed epochs per arm (≥ 3)")
    args = parser.parse_args()
    if args.repeats < 3:
        parser.error("--repeats must be at least 3 (the median of fewer is noise)")
    aug_args = list(args.aug or [])
    if args.family:
        aug_args += [[f"+aug={name}"] for name in FAMILY]
    aug_args = aug_args or [["+aug=mixup"]]

    base = ["trainer.progress=false", "trainer.checkpoint=false", *args.overrides]
    plain_spec = build_spec(compose_config(base), base)
    mixers = build_mixers(base, aug_args)

    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(plain_spec, Path(tmp))
        for mixer in mixers.values():
            mixer.bind(trainer.model)
        arms = {"none": plain_spec}
        arms.update({n: dataclasses.replace(plain_spec, mixer=m) for n, m in mixers.items()})
        times: dict[str, list[float]] = {name: [] for name in arms}
        for repeat in range(args.repeats + 1):  # repeat 0 warms up every arm, untimed
            for name, spec in arms.items():
                trainer.spec = spec
                seconds = time_epoch(trainer, mixing_epoch(spec.mixer, trainer.s.epochs))
                if repeat > 0:
                    times[name].append(seconds)
        added = {name: mixer_cost(trainer, mixer) for name, mixer in mixers.items()}
    report(trainer, args.overrides, mixers, times, added)


def report(
    trainer: Trainer,
    overrides: list[str],
    mixers: dict[str, Mixer],
    times: dict[str, list[float]],
    added: dict[str, float],
) -> None:
    steps = len(trainer.batches)
    none_s = statistics.median(times["none"])
    step_s = none_s / steps
    print(f"device {trainer.device}, threads {torch.get_num_threads()}, {steps} steps/epoch")
    print(f"run:   {' '.join(overrides) or '(defaults)'}")
    print(f"plain step {1e3 * step_s:.2f} ms (median epoch {none_s:.3f}s)")
    print(f"{'arm':<16} {'epoch s':>8} {'ratio':>6} {'Δ/step ms':>9} {'own ms':>7} {'own %':>6}")
    for name, samples in times.items():
        median = statistics.median(samples)
        line = f"{name:<16} {median:8.3f} {median / none_s:6.3f} "
        line += f"{1e3 * (median - none_s) / steps:+9.3f}"
        if name in added:
            line += f" {1e3 * added[name]:7.3f} {100 * added[name] / step_s:5.2f}%"
        print(line)
    for name, mixer in mixers.items():
        print(f"  {name}: {mixer.describe()}")
    print("ratio: median epoch / none's; own: the mixer's cost per step measured on one batch")


if __name__ == "__main__":
    main()
