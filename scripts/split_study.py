"""Study 4: adversarial vs. random validation under a test shift.

For each validation split ("arm") and seed, trains one run with `track_test=true` (the
engine then logs test accuracy per epoch, for this analysis only; model selection still
uses validation) and reports per arm:

- gap: |val_acc − test_acc| of the selected checkpoint (mean ± std over seeds): how well
  the validation score predicts the test score;
- picks: in how many runs the epoch with the best validation score (the checkpoint the
  engine keeps) has a test accuracy within 0.5 pt of the best test epoch's;
- the discriminator's out-of-fold AUC, the validation set's ESS and unique images, and the
  discriminator's share of the run's wall time (split seconds / run seconds).

    python scripts/split_study.py --preset digits --seeds 0 1 2
    python scripts/split_study.py --preset cifar --seeds 0 1 2 trainer.epochs=15
    python scripts/split_study.py --preset digits --arms random adversarial adversarial-topk \\
        shift.kind=blur
    python scripts/split_study.py --analyze runs/split_study/digits   # re-read finished runs

Positional arguments are Hydra overrides added to every run (as for `regx train`). Runs
train in this process into `--out/<preset>/<arm>/seed<k>/` (metrics.csv, summary.json,
predictions.npz and checkpoints, but no .hydra/ folder: `--analyze` reads them back;
`regx report`, `regx evaluate` and `regx.load_run` need a run `regx train` made).
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import time
from pathlib import Path
from typing import Any

from regx.config import compose_config
from regx.config.build import build_spec

PRESETS: dict[str, list[str]] = {
    "digits": ["dataset.test_shift=corrupt", "shift.kind=blur", "shift.severity=2"],
    "cifar": [
        "dataset=imagefolder",
        "dataset.root=${oc.env:REGX_CIFAR10,data/cifar10-jpg}",
        "dataset.subset=2000",
        "model=cnn",
        "trainer.epochs=10",
        "trainer.batch_size=128",
        "dataset.test_shift=corrupt",
        "shift.kind=brightness",
        "shift.severity=3",
        "split.pca=32",
    ],
}
ARMS: dict[str, list[str]] = {
    "random": ["split=random"],
    "adversarial": ["split=adversarial", "split.mode=resample"],
    "adversarial-topk": ["split=adversarial", "split.mode=topk"],
    "adversarial-weight": ["split=adversarial", "split.mode=weight"],
    "adversarial-cnn": ["split=adversarial", "split.discriminator=cnn"],
}
PICK_TOLERANCE = 0.005  # 0.5 percentage points


def arm_overrides(arm: str, preset: list[str]) -> list[str]:
    """The arm's split, with split.* keys of the preset kept only for adversarial arms."""
    split = ARMS[arm]
    keep = [o for o in preset if not o.startswith("split.") or "adversarial" in arm]
    return [*split, *keep]


def train_one(overrides: list[str], run_dir: Path) -> dict[str, Any]:
    from regx.engine.run import train

    return train(build_spec(compose_config(overrides), overrides), run_dir)


def read_run(run_dir: Path) -> dict[str, Any] | None:
    summary_path, metrics_path = run_dir / "summary.json", run_dir / "metrics.csv"
    if not summary_path.is_file() or not metrics_path.is_file():
        return None
    summary = json.loads(summary_path.read_text())
    if summary.get("status") != "finished":
        return None
    with open(metrics_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "test_acc" not in rows[0]:
        raise SystemExit(f"{metrics_path} has no test_acc column: train with track_test=true")
    test_by_epoch = [float(r["test_acc"]) for r in rows]
    best_epoch = int(summary["best_epoch"])
    split = summary.get("split", {})
    return {
        "val_acc": summary["val"]["acc"],
        "test_acc": summary["test"]["acc"],
        "gap": abs(summary["val"]["acc"] - summary["test"]["acc"]),
        "epoch_gap": statistics.fmean(
            abs(float(r["val_acc"]) - float(r["test_acc"])) for r in rows
        ),
        "best_epoch": best_epoch,
        "best_test_epoch": 1 + max(range(len(rows)), key=test_by_epoch.__getitem__),
        "test_at_best_val": test_by_epoch[best_epoch - 1],
        "best_test": max(test_by_epoch),
        "picks": test_by_epoch[best_epoch - 1] >= max(test_by_epoch) - PICK_TOLERANCE,
        "auc": split.get("auc"),
        "ess": split.get("ess"),
        "val_unique": split.get("val_unique"),
        "val_size": split.get("val_size"),
        "split_share": (split.get("seconds") or 0.0) / summary["wall_time_s"],
        "wall_s": summary["wall_time_s"],
    }


def _mean_std(values: list[float], scale: float = 100.0) -> str:
    if not values:
        return "-"
    mean = statistics.fmean(values) * scale
    std = statistics.stdev(values) * scale if len(values) > 1 else 0.0
    return f"{mean:.2f} ± {std:.2f}"


def _mean(values: list[float | None], fmt: str) -> str:
    present = [v for v in values if v is not None]
    return format(statistics.fmean(present), fmt) if present else "-"


def print_table(results: dict[str, list[dict[str, Any]]]) -> None:
    header = (
        "| arm | runs | |val−test| (pt) | per-epoch |val−test| (pt) | val acc | test acc "
        "| best-val epoch within 0.5 pt of best test | AUC | ESS | val unique/size "
        "| discriminator share of run |"
    )
    print(header)
    print("|" + "---|" * header.count(" | ") + "---|")
    for arm, runs in results.items():
        if not runs:
            continue
        picks = sum(r["picks"] for r in runs)
        uniq = _mean([r["val_unique"] for r in runs], ".0f")
        size = _mean([r["val_size"] for r in runs], ".0f")
        print(
            f"| {arm} | {len(runs)} | {_mean_std([r['gap'] for r in runs])} "
            f"| {_mean_std([r['epoch_gap'] for r in runs])} "
            f"| {_mean_std([r['val_acc'] for r in runs])} "
            f"| {_mean_std([r['test_acc'] for r in runs])} | {picks}/{len(runs)} "
            f"| {_mean([r['auc'] for r in runs], '.3f')} | {_mean([r['ess'] for r in runs], '.1f')} "
            f"| {uniq}/{size} | {100 * statistics.fmean(r['split_share'] for r in runs):.1f}% |"
        )
    for arm, runs in results.items():
        for r in runs:
            print(
                f"  {arm:<20} seed {r['seed']}: val {100 * r['val_acc']:.2f}  test {100 * r['test_acc']:.2f}"
                f"  gap {100 * r['gap']:.2f}  best-val epoch {r['best_epoch']}"
                f" (test {100 * r['test_at_best_val']:.2f})  best test epoch {r['best_test_epoch']}"
                f" (test {100 * r['best_test']:.2f})  wall {r['wall_s']:.0f}s"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides added to every run")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="digits")
    parser.add_argument(
        "--arms", nargs="+", choices=sorted(ARMS), default=["random", "adversarial"]
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("runs/split_study"))
    parser.add_argument("--analyze", type=Path, help="only read finished runs under this folder")
    args = parser.parse_args()

    root = args.analyze or args.out / args.preset
    results: dict[str, list[dict[str, Any]]] = {arm: [] for arm in args.arms}
    for arm in args.arms:
        for seed in args.seeds:
            run_dir = root / arm / f"seed{seed}"
            record = read_run(run_dir)
            if record is None and args.analyze is None:
                overrides = [
                    *arm_overrides(arm, PRESETS[args.preset]),
                    *args.overrides,
                    f"seed={seed}",
                    "track_test=true",
                    "trainer.progress=false",
                ]
                t0 = time.perf_counter()
                train_one(overrides, run_dir)
                record = read_run(run_dir)
                print(
                    f"{arm} seed {seed}: {time.perf_counter() - t0:.0f}s  ({run_dir})", flush=True
                )
            if record is not None:
                results[arm].append({**record, "seed": seed})
    print(f"\npreset {args.preset}: {' '.join(PRESETS[args.preset] + args.overrides)}\n")
    print_table(results)


if __name__ == "__main__":
    main()
