"""Epoch-time overhead of a mixing augmentation: the ratio (mixed epoch) / (plain epoch).

One process, one model, one data set: the engine's own `Trainer.train_epoch` runs with the
mixer switched off and on, interleaved (none, mix, none, mix, …) so drifts in machine load
hit both arms alike, after one untimed warm-up epoch of each. Prints the median epoch time
of each arm and their ratio (the issue's target: ≤ 1.03 for mixup), then the mixer's own
cost per step measured directly on one batch, which noise on a shared host blurs less.

    python scripts/bench_mix.py                                   # digits, default cnn
    python scripts/bench_mix.py trainer.threads=1 --repeats 7
    python scripts/bench_mix.py dataset=imagefolder dataset.root=/data/cifar10-jpg \\
        dataset.subset=5000 model=resnet model.depth=10 model.width=16
    python scripts/bench_mix.py --aug +aug=mixup aug.mode=elem aug.lam=beta aug.alpha=0.2

Positional arguments are Hydra overrides of the run (as for `regx train`); `--aug` gives
the overrides that add the mixer. Timings are wall-clock: on a shared machine, repeat.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import torch

from regx.aug.base import Mixer
from regx.config import compose_config
from regx.config.build import build_spec
from regx.engine.progress import EpochProgress
from regx.engine.run import Trainer


def time_epoch(trainer: Trainer, epoch: int) -> float:
    progress = EpochProgress(len(trainer.batches), trainer.s.epochs, enabled=False)
    t0 = time.perf_counter()
    # train_epoch ends by reading its device accumulators, so the clock stops after the GPU.
    trainer.train_epoch(epoch, progress)
    return time.perf_counter() - t0


def mixer_cost(trainer: Trainer, mixer: Mixer, reps: int = 300) -> float:
    """Median seconds per step that mixing adds outside the model: the mix itself and the
    second loss term, on a real batch (a steadier estimate than epoch times on a busy host)."""
    xb, yb, _ = next(iter(trainer.batches.epoch(0)))
    x = trainer.normalize(xb)
    with torch.no_grad():
        out = trainer.model(x)
    loss_fn = trainer.loss_fn

    def clock(step) -> float:
        samples = []
        for _ in range(reps):
            t0 = time.perf_counter()
            step()
            if x.device.type == "cuda":
                torch.cuda.synchronize(x.device)
            samples.append(time.perf_counter() - t0)
        return statistics.median(samples)

    def mixed_step() -> None:
        mixed = mixer(x, yb)
        if mixed is not None:
            mixed.loss(loss_fn, out, yb)

    return clock(mixed_step) - clock(lambda: loss_fn(out, yb))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the run")
    parser.add_argument(
        "--aug", nargs="+", default=["+aug=mixup"], help="overrides adding the mixer"
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed epochs per arm (≥ 3)")
    args = parser.parse_args()
    if args.repeats < 3:
        parser.error("--repeats must be at least 3 (the median of fewer is noise)")

    base = ["trainer.progress=false", "trainer.checkpoint=false", *args.overrides]
    plain_spec = build_spec(compose_config(base), base)
    mixer = build_spec(compose_config([*base, *args.aug])).mixer
    if mixer is None:
        parser.error(f"--aug {' '.join(args.aug)} configures no mixer")
    mixed_spec = dataclasses.replace(plain_spec, mixer=mixer)

    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(plain_spec, Path(tmp))
        arms = {"none": plain_spec, "mix": mixed_spec}
        times: dict[str, list[float]] = {name: [] for name in arms}
        epoch = 0
        for repeat in range(args.repeats + 1):  # repeat 0 warms up both arms, untimed
            for name, spec in arms.items():
                trainer.spec = spec
                seconds = time_epoch(trainer, epoch)
                epoch += 1
                if repeat > 0:
                    times[name].append(seconds)
        added = mixer_cost(trainer, mixer)

    steps = len(trainer.batches)
    none_s, mix_s = statistics.median(times["none"]), statistics.median(times["mix"])
    print(f"device {trainer.device}, threads {torch.get_num_threads()}, {steps} steps/epoch")
    print(f"run:   {' '.join(args.overrides) or '(defaults)'}")
    print(f"mixer: {mixer.describe()}")
    for name in arms:
        print(f"  {name:<4} epoch s: " + " ".join(f"{t:.3f}" for t in times[name]))
    print(f"median epoch: none {none_s:.3f}s  mix {mix_s:.3f}s")
    print(f"overhead per step: {1e3 * (mix_s - none_s) / steps:+.3f} ms (from epoch medians)")
    print(f"ratio mix/none: {mix_s / none_s:.3f}")
    step_s = none_s / steps
    print(
        f"mixer's own cost per step: {1e3 * added:.3f} ms = {100 * added / step_s:.2f}% of a "
        f"plain step ({1e3 * step_s:.2f} ms): ratio {1 + added / step_s:.3f} by this measure"
    )


if __name__ == "__main__":
    main()
