"""What a whole `regx train` costs against the same run written by hand, as one process each.

Runs `python -m regx train` (the default experiment, full report and figures) and
`python scripts/hand_train.py` (the same data, model, epochs, best-val weights, test
accuracy and ECE) alternately, regx first, `--repeats` times each, so drifts in machine load
hit both alike. Prints every pair (wall and CPU seconds of the process, its children
included) and the median of the pairs' ratios, regx / hand (target: ≤ 1.10),
then where regx's wall time goes, from summary.json `started` and `timings`:

    start + imports   process launch → the run's start (Python, torch, Hydra, composing)
    setup             data, split, model, optimizer
    training loop     the epochs (validation after each included)
    predict           the best weights on the test and validation sets
    calibration       metrics, temperature scaling, bootstrap intervals
    retrieval         recall@k on the test embeddings
    between           the between-sample diagnostics
    report            report.md, report.html and the figures
    files             predictions.npz, features.npz, the trackers' records, summary.json
    exit              summary.json written → the process has ended (Hydra's job end,
                      callbacks, the interpreter's exit)

    python scripts/whole_run.py [--repeats 5] [--threads N] [OVERRIDES…]

OVERRIDES go to `regx train` only (e.g. trainer.epochs=5; the hand script then no longer
does the same run). `--threads N` sets OMP_NUM_THREADS for both processes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PHASES = (
    ("start + imports", "startup_s"),
    ("setup", "setup_s"),
    ("training loop", "train_loop_s"),
    ("predict", "predict_s"),
    ("calibration", "calibration_s"),
    ("retrieval", "retrieval_s"),
    ("between", "between_s"),
    ("report", "report_s"),
    ("files", "files_s"),
    ("exit", "exit_s"),
)


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """(launch time, wall seconds, CPU seconds of the child) of one process run to the end."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    launched, t0 = time.time(), time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, cwd=REPO)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return launched, wall, cpu


def regx_phases(run_dir: Path, launched: float, wall: float) -> dict[str, float]:
    """Seconds of each phase of one regx process (see the module doc)."""
    summary = json.loads((run_dir / "summary.json").read_text())
    phases = {"startup_s": summary["started"] - launched, **summary["timings"]}
    phases["exit_s"] = launched + wall - summary["finished"]
    phases["files_s"] = wall - sum(phases.values())
    return phases


def run_pairs(args: argparse.Namespace, env: dict[str, str], out: Path) -> list[dict]:
    pairs = []
    for i in range(args.repeats):
        run_dir = out / f"regx-{i}"
        cmd = [sys.executable, "-m", "regx", "train", f"hydra.run.dir={run_dir}", *args.overrides]
        launched, regx_wall, regx_cpu = timed(cmd, env)
        _, hand_wall, hand_cpu = timed([sys.executable, "scripts/hand_train.py"], env)
        phases = regx_phases(run_dir, launched, regx_wall)
        pairs.append(
            dict(regx_wall=regx_wall, regx_cpu=regx_cpu, hand_wall=hand_wall, hand_cpu=hand_cpu)
            | {"phases": phases}
        )
        print(
            f"pair {i + 1}: regx {regx_wall:6.2f} s wall {regx_cpu:6.2f} s CPU | "
            f"hand {hand_wall:6.2f} s wall {hand_cpu:6.2f} s CPU | "
            f"ratio {regx_wall / hand_wall:.3f} wall {regx_cpu / hand_cpu:.3f} CPU",
            flush=True,
        )
    return pairs


def print_summary(pairs: list[dict]) -> None:
    wall = statistics.median(p["regx_wall"] / p["hand_wall"] for p in pairs)
    cpu = statistics.median(p["regx_cpu"] / p["hand_cpu"] for p in pairs)
    verdict = "meets" if wall <= 1.10 else "misses"
    print(f"\nregx / hand, median of {len(pairs)} pairs: {wall:.3f} wall ({verdict} ≤ 1.10)")
    print(f"                                {cpu:.3f} CPU")
    regx_wall = statistics.median(p["regx_wall"] for p in pairs)
    print(f"\nwhere regx's wall time goes (median seconds of {len(pairs)} runs, share of")
    print(f"the median run of {regx_wall:.2f} s):")
    for label, key in PHASES:
        seconds = statistics.median(p["phases"].get(key, 0.0) for p in pairs)
        print(f"  {label:<16} {seconds:7.2f} s  {seconds / regx_wall:6.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    with tempfile.TemporaryDirectory(prefix="regx-whole-") as tmp:
        print_summary(run_pairs(args, env, Path(tmp)))


if __name__ == "__main__":
    main()
