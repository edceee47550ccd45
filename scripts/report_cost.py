"""What the calibration report costs a run: report_time / run time, and where the time goes.

    python scripts/report_cost.py                  # A/B runs of the default digits experiment
    python scripts/report_cost.py --repeats 5 --overrides trainer.threads=2
    python scripts/report_cost.py --breakdown RUN_DIR   # import and per-figure costs

A/B mode trains `trainer=default` on digits in fresh processes (so each pays its own
imports), interleaving three variants:

- `report`: as shipped; summary.json's `report_time_s` is the time `write_run_report`
  took (report.md and every figure, including the matplotlib import if not yet done);
- `inline`: the same with the figures drawn in the run's own process, without the worker
  forked at the start that loads matplotlib while the run trains and draws them at the end;
- `none`: `write_run_report` replaced by a no-op, so matplotlib is never imported.

It prints per run the process wall and CPU time, the run's `wall_time_s`, `report_time_s`
and the CPU time of `write_run_report`, then medians: report_time_s / wall_time_s, and
the process wall and CPU time against `none` — the end-to-end cost, imports included.
Wall times stretch on a busy machine; with `trainer.threads=1` the process CPU time is
what a single-threaded run takes on an idle core, so its difference is the robust figure.

Breakdown mode loads a finished run's predictions and times, in one process: the import of
`matplotlib.figure` + Agg vs `matplotlib.pyplot`, then each figure with the shipped
settings and with a heavier setting for comparison (dpi 120, default PNG compression),
CPU time and wall.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, resource, sys, time, torch
variant, run_dir, overrides = sys.argv[1], sys.argv[2], sys.argv[3:]
import regx.report.figures as figures
import regx.report.figure_worker as figure_worker
import regx.report.run_report as run_report
report_cpu = [0.0]
shipped = run_report.write_run_report
def timed(*args, **kwargs):
    start = time.thread_time()
    shipped(*args, **kwargs)
    report_cpu[0] += time.thread_time() - start
run_report.write_run_report = (lambda *args, **kwargs: None) if variant == "none" else timed
if variant != "report":
    figure_worker.FigureWorker.start = classmethod(lambda cls: None)
from regx.app.hydra_task import run_hydra
code = run_hydra(["trainer.progress=false", f"hydra.run.dir={run_dir}", *overrides])
cpu = sum(  # the run's process and its figure worker (reaped when the run ended)
    u.ru_utime + u.ru_stime
    for u in map(resource.getrusage, (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
)
with open(f"{run_dir}/cpu.json", "w") as f:
    json.dump({"process_cpu": cpu, "report_cpu": report_cpu[0]}, f)
sys.exit(code)
"""


def ab(repeats: int, overrides: list[str]) -> None:
    variants = ("report", "inline", "none")
    rows: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeats):
            for variant in variants:
                run_dir = Path(tmp) / f"{variant}-{i}"
                t0 = time.perf_counter()
                subprocess.run(
                    [sys.executable, "-c", CHILD, variant, str(run_dir), *overrides],
                    check=True,
                    stdout=subprocess.DEVNULL,
                    cwd=tmp,
                )
                summary = json.loads((run_dir / "summary.json").read_text())
                cpu = json.loads((run_dir / "cpu.json").read_text())
                row = {
                    "process": time.perf_counter() - t0,
                    "run": summary["wall_time_s"],
                    "report": summary.get("report_time_s", 0.0) if variant != "none" else 0.0,
                    "process_cpu": cpu["process_cpu"],
                    "report_cpu": cpu["report_cpu"],
                }
                rows[variant].append(row)
                print(
                    f"{variant:>10} #{i}: process {row['process']:6.2f} s (cpu {row['process_cpu']:6.2f} s)"
                    f"  run {row['run']:6.2f} s  report {row['report']:5.3f} s"
                    f" (cpu {row['report_cpu']:5.3f} s)  report/run {100 * row['report'] / row['run']:.1f} %",
                    flush=True,
                )

    def median(variant: str, key: str) -> float:
        return statistics.median(r[key] for r in rows[variant])

    print(f"\nmedians over {repeats} repeats")
    base_wall, base_cpu = median("none", "process"), median("none", "process_cpu")
    for variant in variants:
        run, report = median(variant, "run"), median(variant, "report")
        wall, cpu = median(variant, "process"), median(variant, "process_cpu")
        print(
            f"{variant:>10}: report_time_s / wall_time_s = {report:5.3f} / {run:6.2f} s"
            f" = {100 * report / run:4.1f} %;  report CPU (main thread) {median(variant, 'report_cpu'):5.3f} s;"
            f"  process vs none: wall {100 * (wall - base_wall) / base_wall:+5.1f} %,"
            f" CPU {100 * (cpu - base_cpu) / base_cpu:+5.1f} %"
        )
    print(
        "\nOn a busy machine wall times stretch unevenly; with trainer.threads=1 the process CPU"
        " time is the load-robust measure (a single-threaded run on an idle core takes that long)."
    )


def breakdown(run_dir: Path) -> None:
    import numpy as np
    import torch

    from regx.engine.outputs import read_metrics_csv

    torch.set_num_threads(1)

    def clock(label: str, fn, repeats: int = 1) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(repeats):
            fn()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(
            f"{label:<52} wall {1000 * wall / repeats:7.1f} ms   cpu {1000 * cpu / repeats:7.1f} ms"
        )

    clock(
        "import matplotlib.figure + backend_agg",
        lambda: __import__("matplotlib.backends.backend_agg"),
    )
    clock("import matplotlib.pyplot on top of that", lambda: __import__("matplotlib.pyplot"))

    from regx.report import figures, run_plots

    summary = json.loads((run_dir / "summary.json").read_text())
    with np.load(run_dir / "predictions.npz") as npz:
        probs = torch.from_numpy(npz["probs"])
        probs_ts = torch.from_numpy(npz["probs_ts"]) if "probs_ts" in npz else None
        labels = torch.from_numpy(npz["labels"])
    history = read_metrics_csv(run_dir / "metrics.csv")
    out = Path(tempfile.mkdtemp())
    plots = {
        "reliability.png": lambda: run_plots.plot_reliability(
            out / "r.png", probs, probs_ts, labels, 15, summary
        ),
        "confidence.png": lambda: run_plots.plot_confidence(out / "c.png", probs, labels, summary),
        "curves.png": lambda: run_plots.plot_curves(
            out / "k.png", history, summary.get("best_epoch")
        ),
    }
    for name, plot in plots.items():
        plot()  # first call: font cache and glyphs
        clock(f"{name}: dpi {figures.DPI}, zlib level 1 (shipped)", plot, repeats=3)
    figures.DPI, figures.PNG_OPTIONS = 120, {}
    for name, plot in plots.items():
        clock(f"{name}: dpi 120, default zlib level", plot, repeats=3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--overrides", nargs="*", default=[], help="extra Hydra overrides")
    parser.add_argument("--breakdown", type=Path, help="a finished run dir to time figures on")
    args = parser.parse_args()
    if args.breakdown:
        breakdown(args.breakdown)
    else:
        ab(args.repeats, args.overrides)


if __name__ == "__main__":
    main()
