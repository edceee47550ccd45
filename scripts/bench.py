"""Speed of regx relative to what a user would write by hand, as ratios (SPEC §6).

    python scripts/bench.py [--repeats 5] [--quick]

Prints, in one run:
  (a) regx's training epoch vs a minimal hand-written loop (same model, data, batch,
      optimizer, schedule, augmentation) — target ≥ 0.97 (speed of regx / speed of hand);
  (b) regx's in-memory batch path vs DataLoader(TensorDataset) with 0 and 2 workers —
      target ≥ 2× faster;
  (c) report + calibration time as a share of a whole `regx train` — target ≤ 3 %;
  (d) `regx --help` and default `regx train` (digits) wall time — targets ≤ 0.5 s, ≤ 15 s.

Absolute times on a shared machine are noisy, so (a) and (b) interleave the contenders
in one process and report medians of ratios of adjacent measurements, with every
repeat shown. (c) and (d) start real `regx` processes and also show CPU seconds, which
a busy machine inflates far less than wall time.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from regx.data.augment import crop_flip

REPO = Path(__file__).resolve().parent.parent


# -- helpers -------------------------------------------------------------------------
def default_epochs() -> int:
    """The default trainer's epochs, as `regx train` with no overrides runs it."""
    from omegaconf import OmegaConf

    from regx.config.paths import config_dir

    return int(OmegaConf.load(config_dir() / "trainer" / "default.yaml").epochs)


def fmt(values: list[float], unit: str = "", digits: int = 3) -> str:
    return "[" + ", ".join(f"{v:.{digits}f}{unit}" for v in values) + "]"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) for one call of `fn`.

    On a shared CPU the CPU time is the steadier measure: it does not count the time
    the process waits for a core that other processes hold.
    """
    sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    sync(device)
    return time.perf_counter() - t0, time.process_time() - c0


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


# -- (a) epoch time vs a hand-written loop -------------------------------------------
def build_trainer(overrides: list[str], run_dir: Path):
    from regx.config import compose_config
    from regx.config.build import build_spec
    from regx.engine.trainer import Trainer

    return Trainer(build_spec(compose_config(overrides), overrides), run_dir)


class HandWrittenLoop:
    """What a careful user writes for the same job: data on the device, a batched crop
    and flip, normalize, forward, mean cross-entropy, backward, SGD step, LR step.

    It calls regx's own `crop_flip` (a plain tensor function a user could import too), so
    the ratio isolates what the loop around the model costs, not the augmentation.
    """

    def __init__(self, trainer) -> None:
        s = trainer.s
        self.device = trainer.device
        self.model = copy.deepcopy(trainer.model)
        aug = trainer.spec.dataset.augment
        self.pad = aug.crop_padding
        self.flip = aug.flip
        x = trainer.prep.train_x.to(self.device)
        self.h, self.w = x.shape[-2:]
        self.x = F.pad(x, (self.pad,) * 4)
        self.y = trainer.prep.train_y.to(self.device)
        data = trainer.prep.data
        self.mean = torch.tensor(data.mean, device=self.device).view(1, -1, 1, 1) * 255
        self.std = torch.tensor(data.std, device=self.device).view(1, -1, 1, 1) * 255
        self.batch_size = s.batch_size
        self.steps = len(self.y) // self.batch_size or 1
        o = s.optimizer
        self.opt = torch.optim.SGD(
            self.model.parameters(),
            lr=o.lr,
            momentum=o.momentum,
            nesterov=o.nesterov,
            weight_decay=o.weight_decay,
        )
        total = s.epochs * self.steps
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda t: 0.5 * (1 + math.cos(math.pi * min(t / total, 1.0)))
        )
        self.channels_last = s.channels_last
        self.bf16 = s.precision == "bf16"
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)

    def epoch(self) -> float:
        model, dev, bs = self.model, self.device, self.batch_size
        model.train()
        n = len(self.y)
        perm = torch.randperm(n, device=dev)
        loss_sum = torch.zeros((), device=dev)
        for i in range(self.steps):
            idx = perm[i * bs : (i + 1) * bs]
            xb = crop_flip(self.x.index_select(0, idx), (self.h, self.w), self.flip)
            xb = (xb.float() - self.mean) / self.std
            if self.channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            with torch.autocast(dev.type, torch.bfloat16, enabled=self.bf16):
                out = model(xb)
            loss = F.cross_entropy(out.float(), self.y.index_select(0, idx))
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self.sched.step()
            loss_sum += loss.detach()
        return float(loss_sum) / self.steps


def bench_epoch(overrides: list[str], repeats: int, epochs_per_repeat: int) -> dict:
    from regx.engine.progress import EpochProgress

    with tempfile.TemporaryDirectory() as tmp:
        trainer = build_trainer(overrides, Path(tmp))
        hand = HandWrittenLoop(trainer)
        progress = EpochProgress(len(trainer.batches), trainer.s.epochs, enabled=False)
        dev = trainer.device
        epoch = 0

        def regx_run() -> None:
            nonlocal epoch
            for _ in range(epochs_per_repeat):
                trainer.train_epoch(epoch % trainer.s.epochs, progress)
                epoch += 1

        def hand_run() -> None:
            for _ in range(epochs_per_repeat):
                hand.epoch()

        regx_run(), hand_run()  # warm-up: allocator, kernels, cudnn autotuning
        out: dict = {"steps": len(trainer.batches), "device": str(dev)}
        t = {"regx": ([], []), "hand": ([], [])}  # (wall, cpu) per epoch
        for r in range(repeats):
            # alternate who goes first so a drift in machine load hits both alike
            pair = [("regx", regx_run), ("hand", hand_run)]
            for name, fn in pair if r % 2 == 0 else reversed(pair):
                wall, cpu = timed(fn, dev)
                t[name][0].append(wall / epochs_per_repeat)
                t[name][1].append(cpu / epochs_per_repeat)
        for k, measure in enumerate(("wall", "cpu")):
            ratios = [h / r for h, r in zip(t["hand"][k], t["regx"][k])]
            out[measure] = {
                "regx": t["regx"][k],
                "hand": t["hand"][k],
                "ratios": ratios,
                "ratio": statistics.median(ratios),
            }
        return out


# -- (b) data path vs DataLoader -----------------------------------------------------
def bench_data(n: int, batch_size: int, repeats: int, device: torch.device) -> dict:
    from regx.data.augment import Normalize, pad
    from regx.data.batches import DeviceBatches
    from regx.data.types import Augment

    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    augment = Augment(crop_padding=4, flip=True)
    normalize = Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25), device)
    regx_batches = DeviceBatches(x, y, batch_size, device, augment, seed=0)
    sink = torch.zeros((), device=device)

    def consume(xb: torch.Tensor, yb: torch.Tensor) -> None:
        # touch every batch so lazy work cannot be skipped; no host sync
        sink.add_(xb[:, 0, 0, 0].sum() + yb.sum())

    def regx_epoch(epoch: int = 0) -> None:
        for xb, yb, _ in regx_batches.epoch(epoch):
            consume(normalize(xb), yb)

    def loader_epoch(workers: int) -> Callable[[], None]:
        pin = device.type == "cuda"
        loader = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(x, y),
            batch_size=batch_size,
            shuffle=True,
            drop_last=True,
            num_workers=workers,
            pin_memory=pin,
        )

        def run() -> None:
            for xb, yb in loader:
                xb = xb.to(device, non_blocking=pin)
                yb = yb.to(device, non_blocking=pin)
                xb = crop_flip(pad(xb, 4), (32, 32), flip=True)
                consume(normalize(xb), yb)

        return run

    contenders = {"regx": regx_epoch, "workers=0": loader_epoch(0), "workers=2": loader_epoch(2)}
    for fn in contenders.values():
        fn()  # warm-up
    times: dict[str, list[float]] = {k: [] for k in contenders}
    cpu_times: dict[str, list[float]] = {k: [] for k in contenders}
    for r in range(repeats):
        order = list(contenders) if r % 2 == 0 else list(reversed(contenders))
        for k in order:
            wall, cpu = timed(contenders[k], device)
            times[k].append(wall)
            cpu_times[k].append(cpu)
    out = {"times": times, "cpu": cpu_times}
    for k in ("workers=0", "workers=2"):
        ratios = [b / a for a, b in zip(times["regx"], times[k])]
        out[k] = {"ratios": ratios, "ratio": statistics.median(ratios)}
    # the CPU time of 2 workers is spent in other processes: only workers=0 compares
    ratios = [b / a for a, b in zip(cpu_times["regx"], cpu_times["workers=0"])]
    out["workers=0 cpu"] = {"ratios": ratios, "ratio": statistics.median(ratios)}
    return out


# -- (c), (d) whole commands ---------------------------------------------------------
def regx_command() -> list[str]:
    exe = shutil.which("regx")
    return [exe] if exe else [sys.executable, "-m", "regx"]


def run_command(args: list[str], cwd: Path) -> tuple[float, float, subprocess.CompletedProcess]:
    """(wall seconds, CPU seconds of the child, result)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return wall, cpu, proc


def bench_commands(repeats: int, train_args: list[str]) -> dict:
    cmd = regx_command()
    out: dict = {"help": {"wall": [], "cpu": []}, "train": {"wall": [], "cpu": []}, "share": []}
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        for _ in range(repeats):
            wall, cpu, _ = run_command([*cmd, "--help"], cwd)
            out["help"]["wall"].append(wall)
            out["help"]["cpu"].append(cpu)
        for r in range(repeats):
            run_dir = cwd / f"run{r}"
            wall, cpu, _ = run_command(
                [*cmd, "train", *train_args, f"hydra.run.dir={run_dir}"], cwd
            )
            out["train"]["wall"].append(wall)
            out["train"]["cpu"].append(cpu)
            summary = json.loads((run_dir / "summary.json").read_text())
            out["share"].append(
                {
                    "report": summary.get("report_time_s", math.nan) / wall,
                    "eval": summary.get("eval_time_s", math.nan) / wall,
                    "train": summary.get("train_time_s", math.nan) / wall,
                    "epochs": summary.get("epochs_run"),
                }
            )
    return out


# -- main ------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="repeats per figure (≥ 3)")
    parser.add_argument("--quick", action="store_true", help="smaller workloads (a smoke run)")
    parser.add_argument("--skip-commands", action="store_true", help="skip (c) and (d)")
    args = parser.parse_args()
    repeats = max(3, args.repeats)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(
        f"regx bench — torch {torch.__version__}, device {device}, "
        f"{os.cpu_count()} CPU cores, {repeats} repeats; medians, repeats in brackets"
    )
    ok = {"wall": True, "cpu": True}  # targets met by wall-clock / by CPU-time figures

    print(
        "\n(a) training epoch: regx vs a hand-written loop (ratio = hand time / regx time; ≥ 0.97)"
    )
    workloads = {
        "digits, cnn, batch 64 (the default run)": [],
        "synthetic 32×32×3, cnn, batch 256": [
            "dataset=synthetic",
            "dataset.image_size=32",
            "dataset.channels=3",
            "dataset.num_classes=10",
            "dataset.train_augment.crop_padding=4",
            "dataset.train_augment.flip=true",
            "dataset.num_train=1440" if not args.quick else "dataset.num_train=720",
            "trainer.batch_size=256",
        ],
    }
    if device.type == "cuda":
        # the GPU recipe's own shape: AirNet, bf16, channels_last, data on the device
        workloads["synthetic 32×32×3, airnet, trainer=fast, batch 512"] = [
            "dataset=synthetic",
            "dataset.image_size=32",
            "dataset.channels=3",
            "dataset.num_classes=10",
            "dataset.num_train=20480",
            "dataset.train_augment.crop_padding=2",
            "dataset.train_augment.flip=true",
            "model=airnet",
            "trainer=fast",
        ]
    for name, extra in workloads.items():
        res = bench_epoch(
            ["trainer.progress=false", "trainer.checkpoint=false", *extra],
            repeats,
            epochs_per_repeat=2 if args.quick else 4,
        )
        print(f"  {name}: {res['steps']} steps/epoch on {res['device']}")
        for measure in ("wall", "cpu"):
            m = res[measure]
            good = m["ratio"] >= 0.97
            ok[measure] &= good
            print(
                f"    {measure:4} ratio {m['ratio']:.3f} {fmt(m['ratios'])}  {verdict(good)}\n"
                f"         regx {fmt(m['regx'], ' s')} per epoch\n"
                f"         hand {fmt(m['hand'], ' s')} per epoch"
            )

    n = 10_000 if args.quick else 50_000
    print(
        f"\n(b) data path, {n} CIFAR-sized uint8 images, batch 512, crop+flip+normalize "
        "(ratio = DataLoader time / regx time; ≥ 2)"
    )
    res = bench_data(n, 512, repeats, device)
    print(
        f"  regx in-memory      wall {fmt(res['times']['regx'], ' s')}"
        f"  cpu {fmt(res['cpu']['regx'], ' s')}"
    )
    for k in ("workers=0", "workers=2"):
        good = res[k]["ratio"] >= 2
        ok["wall"] &= good
        print(
            f"  DataLoader {k}: wall {fmt(res['times'][k], ' s')}\n"
            f"    wall ratio {res[k]['ratio']:.1f}× {fmt(res[k]['ratios'], digits=1)}  {verdict(good)}"
        )
    m = res["workers=0 cpu"]
    good = m["ratio"] >= 2
    ok["cpu"] &= good
    print(
        f"  DataLoader workers=0 cpu {fmt(res['cpu']['workers=0'], ' s')}\n"
        f"    cpu ratio {m['ratio']:.1f}× {fmt(m['ratios'], digits=1)}  {verdict(good)}"
        "  (workers=2 spends its CPU in other processes: wall only)"
    )

    if not args.skip_commands:
        train_args = ["trainer.epochs=2"] if args.quick else []
        res = bench_commands(repeats, train_args)
        share = res["share"]
        report = [s["report"] for s in share]
        ev = [s["eval"] for s in share]
        good = statistics.median(report) <= 0.03
        ok["wall"] &= good
        print(
            f"\n(c) report time / whole `regx train {' '.join(train_args)}` wall time (≤ 3 %)\n"
            f"  report {100 * statistics.median(report):.1f} % "
            f"{fmt([100 * v for v in report], ' %', 1)}  {verdict(good)}\n"
            f"  calibration + test evaluation {100 * statistics.median(ev):.1f} % "
            f"{fmt([100 * v for v in ev], ' %', 1)}\n"
            f"  training loop {100 * statistics.median([s['train'] for s in share]):.1f} %"
        )
        h, t = res["help"], res["train"]
        good_help = statistics.median(h["wall"]) <= 0.5
        good_train = statistics.median(t["wall"]) <= 15
        ok["wall"] &= good_help and good_train
        print(
            "\n(d) whole commands (wall; CPU seconds of the process in brackets below)\n"
            f"  regx --help: {statistics.median(h['wall']):.2f} s {fmt(h['wall'], ' s', 2)}"
            f"  {verdict(good_help)} (≤ 0.5 s)\n"
            f"    cpu {fmt(h['cpu'], ' s', 2)}\n"
            f"  regx train {' '.join(train_args) or f'(default: digits, {default_epochs()} epochs)'}: "
            f"{statistics.median(t['wall']):.2f} s {fmt(t['wall'], ' s', 2)}"
            f"  {verdict(good_train)} (≤ 15 s)\n"
            f"    cpu {fmt(t['cpu'], ' s', 2)}"
        )
    print(
        f"\nwall-clock targets: {'all met' if ok['wall'] else 'some missed'}; "
        f"(a)/(b) in CPU time: {'all met' if ok['cpu'] else 'some missed'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
