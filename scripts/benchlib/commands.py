"""(c), (d) whole commands: real `regx` processes, wall and CPU seconds of the child.

(c) the report's time as a share of a whole `regx train`, from the run's summary.json;
(d) `regx --help` and a default `regx train` (digits) wall time.
"""

from __future__ import annotations

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
from pathlib import Path

from benchlib.timing import fmt, verdict


def default_epochs() -> int:
    """The default trainer's epochs, as `regx train` with no overrides runs it."""
    from omegaconf import OmegaConf

    from regx.config.paths import config_dir

    return int(OmegaConf.load(config_dir() / "trainer" / "default.yaml").epochs)


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


def print_commands(quick: bool, repeats: int) -> bool:
    """Run and print parts (c) and (d); whether their (wall-clock) targets are met."""
    train_args = ["trainer.epochs=2"] if quick else []
    res = bench_commands(repeats, train_args)
    share = res["share"]
    report = [s["report"] for s in share]
    ev = [s["eval"] for s in share]
    good_report = statistics.median(report) <= 0.03
    print(
        f"\n(c) report time / whole `regx train {' '.join(train_args)}` wall time (≤ 3 %)\n"
        f"  report {100 * statistics.median(report):.1f} % "
        f"{fmt([100 * v for v in report], ' %', 1)}  {verdict(good_report)}\n"
        f"  calibration + test evaluation {100 * statistics.median(ev):.1f} % "
        f"{fmt([100 * v for v in ev], ' %', 1)}\n"
        f"  setup + training loop {100 * statistics.median([s['train'] for s in share]):.1f} %"
    )
    h, t = res["help"], res["train"]
    good_help = statistics.median(h["wall"]) <= 0.5
    good_train = statistics.median(t["wall"]) <= 15
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
    return good_report and good_help and good_train
