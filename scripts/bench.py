"""Speed of regx relative to what a user would pick instead, as ratios (SPEC §6).

    python scripts/bench.py [--repeats 5] [--quick] [--only hand,lightning,timm,data,commands]
                            [--cases digits,cifar-cnn,cifar-resnet10] [--threads 1]

Prints, in one run:
  (a) regx's training epoch vs a minimal hand-written loop (same model, data, batch,
      optimizer, schedule, augmentation; target ≥ 0.97) and vs a Lightning
      LightningModule + Trainer on the same model and data (target ≥ 1.3 on digits, ≥ 1.0
      on the CIFAR-sized cases), on digits and on a CIFAR-sized synthetic set with the
      SmallCNN and with ResNet-10;
  (m) regx's mixup training step vs timm's Mixup + SoftTargetCrossEntropy (target ≥ 1.0);
  (b) regx's in-memory batch path vs DataLoader(TensorDataset) with 0 and 2 workers —
      target ≥ 2× faster;
  (c) report time as a share of a whole `regx train` — target ≤ 3 % (calibration and
      evaluation shown beside it);
  (d) `regx --help` and default `regx train` (digits) wall time — targets ≤ 0.5 s, ≤ 15 s.

Every ratio is (speed of regx) / (speed of the contender) = contender time / regx time,
the median over interleaved repeats, every repeat shown, in wall time and in CPU time
(`time.process_time()`, this process's user + system seconds). Contenders run in one
process with the same torch thread count (`--threads`). Lightning and timm are optional
(`pip install -e '.[bench]'`); a missing one is reported as not installed. (c) and (d)
start real `regx` processes (CPU seconds of the child from getrusage).
"""

from __future__ import annotations

import argparse
import os
import sys
from types import ModuleType

import torch

from benchlib.cases import Case, all_cases
from benchlib.epochs import HAND, bench_epoch
from benchlib.timing import (
    MEASURES,
    Samples,
    Target,
    print_regx,
    print_samples,
    print_targets,
    ratio,
)

PARTS = ("hand", "lightning", "timm", "data", "commands")
LIGHTNING_TARGET = {"digits": 1.3}  # ≥ 1.0 elsewhere
HAND_TARGET = 0.97
TIMM_TARGET = 1.0


def optional(name: str) -> ModuleType | None:
    """A contender's benchlib module (its version printed), or None, printed "not installed"."""
    try:
        if name == "lightning":
            from benchlib import lightning_loop as module
        else:
            from benchlib import mixup_step as module
    except ImportError as e:
        print(f"{name}: not installed ({e}; pip install -e '.[bench]')")
        return None
    print(f"{name}: {module.VERSION}")
    return module


def epoch_part(
    cases: list[Case], args: argparse.Namespace, lightning: ModuleType | None
) -> list[Target]:
    hand = "hand" in args.only
    print(
        "\n(a) training epoch: regx vs "
        + " and ".join(n for n, on in ((HAND, hand), ("Lightning", lightning)) if on)
        + " (ratio = contender time / regx time)"
    )
    targets = []
    for case in cases:
        res = bench_epoch(case, args.repeats, args.threads, hand, lightning)
        print(
            f"  {case.title}: {res.steps} steps/epoch ({res.images} training images) on "
            f"{res.device}, {case.epochs_per_repeat} epoch(s) per repeat"
        )
        print_regx(res.regx, "epoch")
        for name, samples in res.contenders.items():
            at_least = HAND_TARGET if name == HAND else LIGHTNING_TARGET.get(case.key, 1.0)
            print_samples(name, samples, res.regx, "epoch", at_least)
            targets.append(target(case.key, name, at_least, samples, res.regx))
    return targets


def mixup_part(cases: list[Case], args: argparse.Namespace, timm_bench: ModuleType) -> list[Target]:
    print(
        f"\n(m) mixup training step (α = {args.alpha}): regx's mixup + mixed CE vs timm "
        f"{timm_bench.VERSION} Mixup + SoftTargetCrossEntropy (ratio = timm time / regx time)"
    )
    targets = []
    for case in cases:
        res = timm_bench.bench_mixup(case, args.alpha, args.repeats, args.threads)
        print(f"  {case.title}: {res.steps_per_repeat} steps per repeat")
        regx, timm_s = res.step["regx"], res.step["timm"]
        print_regx(regx, "step")
        print_samples("timm, whole step", timm_s, regx, "step", TIMM_TARGET)
        mix_only = res.mix_loss
        print_samples("timm, mix + loss only", mix_only["timm"], mix_only["regx"], "step", None)
        targets.append(target(case.key, "timm mixup step", TIMM_TARGET, timm_s, regx))
    return targets


def target(case: str, name: str, at_least: float, contender: Samples, regx: Samples) -> Target:
    return Target(
        case, name, at_least, ratio(contender, regx, "wall"), ratio(contender, regx, "cpu")
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per figure (≥ 3)")
    parser.add_argument("--quick", action="store_true", help="smaller workloads (a smoke run)")
    parser.add_argument("--only", default=",".join(PARTS), help="parts to run: " + ",".join(PARTS))
    parser.add_argument("--cases", default=None, help="cases of (a) and (m), by key")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, every contender")
    parser.add_argument("--alpha", type=float, default=1.0, help="mixup α of (m)")
    parser.add_argument("--resnet-width", type=int, default=16, help="ResNet-10's base width")
    parser.add_argument("--skip-commands", action="store_true", help="skip (c) and (d)")
    args = parser.parse_args()
    args.only = set(filter(None, args.only.split(",")))
    if args.skip_commands:
        args.only.discard("commands")
    unknown = args.only - set(PARTS)
    if unknown:
        parser.error(f"--only: unknown part(s) {', '.join(sorted(unknown))}; choose from {PARTS}")
    if args.repeats < 3:
        parser.error("--repeats must be at least 3 (the median of fewer is noise)")
    return args


def select_cases(args: argparse.Namespace, gpu: bool) -> list[Case]:
    cases = all_cases(args.quick, gpu, args.resnet_width)
    if args.cases is None:
        return cases
    keys = args.cases.split(",")
    unknown = set(keys) - {c.key for c in cases}
    if unknown:
        choices = ", ".join(c.key for c in cases)
        sys.exit(f"--cases: unknown {', '.join(sorted(unknown))}; choose from {choices}")
    return [c for c in cases if c.key in keys]


def main() -> int:
    args = parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # each line as it comes, also into a file
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cases = select_cases(args, device.type == "cuda")
    load = "load average {:.2f} {:.2f} {:.2f} (1, 5, 15 min)"
    print(
        f"regx bench — torch {torch.__version__}, device {device}, {os.cpu_count()} CPU cores, "
        f"{args.threads} torch thread(s), {args.repeats} repeats; medians, repeats in brackets\n"
        f"start: {load.format(*os.getloadavg())}"
    )
    lightning = optional("lightning") if "lightning" in args.only else None
    timm_bench = optional("timm") if "timm" in args.only else None
    targets: list[Target] = []
    if "hand" in args.only or lightning is not None:
        targets += epoch_part(cases, args, lightning)
    if timm_bench is not None:
        targets += mixup_part(cases, args, timm_bench)
    ok = {m: all(t.met(m) for t in targets) for m in MEASURES}
    if "data" in args.only:
        from benchlib.data_path import print_data

        for measure, good in print_data(args.quick, args.repeats, device).items():
            ok[measure] &= good
    if "commands" in args.only:
        from benchlib.commands import print_commands

        ok["wall"] &= print_commands(args.quick, args.repeats)
    if targets:
        print_targets(targets)
    print(f"\nend: {load.format(*os.getloadavg())}")
    if targets or args.only & {"data", "commands"}:
        print(
            f"wall-clock targets: {'all met' if ok['wall'] else 'some missed'}; "
            f"in CPU time: {'all met' if ok['cpu'] else 'some missed'}"
        )
    else:
        print("nothing measured")
    return 0


if __name__ == "__main__":
    sys.exit(main())
