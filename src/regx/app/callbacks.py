"""Hydra callbacks of `regx train` (registered under `hydra.callbacks` in conf/config.yaml).

`SweepReport.on_multirun_end` runs in the launching process once every job of a sweep has
returned (with the joblib launcher the jobs run in worker processes, the callback still
runs here), and prints the sweep's comparison table — one row per group of runs that
differ only by seed, mean ± std — and writes report.md, runs.csv and compare.png into the
sweep directory (and report.html), exactly as `regx report SWEEP_DIR --html` would.

`SweepProgress` prints one line to stdout as each job of a sweep ends, e.g.
`[job 3/12 done, 2 failed, ETA 4 min 10 s]`: k counts the finished jobs, n is the sweep's
plan (regx.app.sweeps.sweep_plan), failed are jobs whose run did not finish (summary.json
other than finished or pruned, an exception, or a `JobFailure` returned), and the ETA is
mean seconds per finished job × remaining jobs / min(jobs at once, remaining jobs).
With the joblib launcher the jobs end in worker processes, so the count lives in the
sweep dir: each finished job claims the next number k by creating `.regx-jobs/k.json`
(a hard link, which fails if another job took k first) holding its seconds, outcome and
run dir, and prints the line of the first k finished jobs. The folder goes at the sweep's
end; a grid sweep with failed jobs keeps it until `SweepReport` has counted them.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from regx.app.sweeps import (
    MARKS_DIR,
    JobFailure,
    SweepPlan,
    check_grid_sweep,
    is_grid_sweep,
    job_statuses,
    sweep_plan,
)
from regx.errors import UserError


class SweepReport(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from regx.app.hydra_task import debug_mode
        from regx.report.sweep import sweep_report

        sweep_dir = Path(os.path.abspath(str(config.hydra.sweep.dir)))
        marks = read_marks(sweep_dir / MARKS_DIR)
        shutil.rmtree(sweep_dir / MARKS_DIR, ignore_errors=True)  # leave no trace
        if isinstance(sys.exc_info()[1], (SystemExit, KeyboardInterrupt)):
            # a signal is stopping the sweep (Hydra ≥ 1.4 calls this from a `finally`; 1.3
            # does not call it then): its one line stays the last, as with Hydra 1.3
            return
        if not sweep_dir.is_dir() or not any(sweep_dir.glob("**/.hydra/config.yaml")):
            return  # no job started (the sweep failed before its first): nothing to report
        try:
            sweep_report([sweep_dir], out=sweep_dir, html=True)
        except UserError as e:
            print(f"sweep report: {e}", file=sys.stderr)
        except Exception as e:
            # The runs are on disk whatever happens here; `regx report` can redo this.
            if debug_mode():
                raise
            print(
                f"sweep report failed ({type(e).__name__}: {e}); "
                f"run `regx report {shlex.quote(str(sweep_dir))}` to retry",
                file=sys.stderr,
            )
        exit_if_jobs_failed(config, sweep_dir, marks)


def exit_if_jobs_failed(config: DictConfig, sweep_dir: Path, marks: list[JobMark]) -> None:
    """A grid sweep any of whose runs did not finish (failed, diverged, killed), or one of
    whose jobs failed this launch (`marks`: refused, say, by a finished run or another
    process's lock), ends with one line and exit code 1, after its table. A search's failed
    trials are part of the search (Optuna goes on past them; a search none of whose trials
    finished ends in 1 on its own).

    SystemExit, not an Exception: Hydra would turn an Exception from a callback into a
    warning; `regx train` prints the message and exits 1."""
    if not is_grid_sweep(config):
        return
    jobs = job_statuses(sweep_dir)
    failed = [job for job, status in jobs.items() if status != "finished"]
    failed += [Path(m.run_dir) for m in marks if m.failed and Path(m.run_dir) not in failed]
    if failed:
        raise SystemExit(
            f"error: {len(failed)} of {max(len(jobs), len(marks))} jobs did not finish "
            f"({failed[0]} first; "
            "their errors are above); fix them, then finish the sweep with the same command "
            "and sweep.skip_done=true"
        )


class SweepProgress(Callback):
    def __init__(self) -> None:
        self.plan: SweepPlan | None = None  # set in multirun mode only; travels to workers
        self.job_started = 0.0

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            check_grid_sweep(config)
        except UserError as e:  # SystemExit: Hydra would only warn about an Exception
            raise SystemExit(e) from None
        self.plan = sweep_plan(config)
        shutil.rmtree(self.plan.marks, ignore_errors=True)  # an earlier launch's marks

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.job_started = time.time()

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        if self.plan is None:
            return  # a single run
        run_dir = Path(str(OmegaConf.select(config, "hydra.runtime.output_dir")))
        if run_status(run_dir) == "interrupted":
            return  # a signal stops the whole sweep: its error line is the last word
        mark = JobMark(
            time.time() - self.job_started, job_failed(job_return, run_dir), str(run_dir)
        )
        try:
            marks = claim_mark(self.plan.marks, mark)
        except OSError:
            return  # the sweep dir is not writable here: no line rather than a wrong one
        # stdout, with the runs' log lines: stderr is for the `error:` lines alone
        print(progress_line(marks, self.plan), flush=True)
        last = self.plan.jobs is not None and len(marks) >= self.plan.jobs
        if last and not (self.plan.grid and any(m.failed for m in marks)):
            # leave no trace; a grid sweep's failures stay for SweepReport's exit code
            shutil.rmtree(self.plan.marks, ignore_errors=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        # SweepReport, called after this, reads the marks and removes them; without it, here
        if self.plan is not None and not _has_callback(config, SweepReport):
            shutil.rmtree(self.plan.marks, ignore_errors=True)


def _has_callback(config: DictConfig, kind: type) -> bool:
    callbacks = OmegaConf.select(config, "hydra.callbacks", default=None) or {}
    target = f"{kind.__module__}.{kind.__qualname__}"
    return any(
        isinstance(c, DictConfig) and c.get("_target_") == target for c in callbacks.values()
    )


@dataclass
class JobMark:
    """A finished job: its seconds from start to end, whether it failed, its run dir."""

    seconds: float
    failed: bool
    run_dir: str = ""


def run_status(run_dir: Path) -> str | None:
    """The `status` of the run's summary.json; None when it has none or cannot be read."""
    from regx.engine.files import summary_of

    summary = summary_of(run_dir)
    return None if summary is None else summary.get("status")


def job_failed(job_return: Any, run_dir: Path) -> bool:
    """Hydra saw an exception, the job says it failed (`JobFailure`: also where it left the
    run dir as it was), or the run's summary.json is not `finished` / `pruned`."""
    from hydra.core.utils import JobStatus

    if job_return.status != JobStatus.COMPLETED or isinstance(job_return.return_value, JobFailure):
        return True
    return run_status(run_dir) not in ("finished", "pruned")


def claim_mark(folder: Path, mark: JobMark) -> list[JobMark]:
    """Record `mark` as finished job k, the lowest number no other job took; returns the
    marks of jobs 1…k (this one last)."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=folder, prefix=".draft-")  # complete before it is linked
    with os.fdopen(fd, "w") as f:
        json.dump({"seconds": mark.seconds, "failed": mark.failed, "run_dir": mark.run_dir}, f)
    draft = Path(name)
    k = sum(1 for p in folder.glob("*.json")) + 1
    try:
        while True:
            try:
                os.link(draft, folder / f"{k}.json")  # atomic: fails if k is taken
                break
            except FileExistsError:
                k += 1
    finally:
        draft.unlink()
    return [_read_mark(folder / f"{i}.json") for i in range(1, k)] + [mark]


def _read_mark(path: Path) -> JobMark:
    data = json.loads(path.read_text())
    return JobMark(float(data["seconds"]), bool(data["failed"]), str(data.get("run_dir", "")))


def read_marks(folder: Path) -> list[JobMark]:
    """The marks of the jobs this launch ended (none if the folder is gone or damaged)."""
    try:
        return [_read_mark(p) for p in sorted(folder.glob("*.json"))]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def progress_line(marks: list[JobMark], plan: SweepPlan) -> str:
    """`[job k/n done, f failed, ETA …]` after the k-th finished job (`marks`: jobs 1…k)."""
    k, failed = len(marks), sum(m.failed for m in marks)
    known = plan.jobs is not None and k <= plan.jobs  # a search's estimate may fall short
    parts = [f"job {k}/{plan.jobs} done" if known else f"job {k} done"]
    if failed:
        parts.append(f"{failed} failed")
    remaining = plan.jobs - k if known else 0
    if remaining > 0:
        mean = sum(m.seconds for m in marks) / k
        parts.append(f"ETA {duration(mean * remaining / min(plan.parallel, remaining))}")
    return "[" + ", ".join(parts) + "]"


def duration(seconds: float) -> str:
    """`42 s`, `4 min 10 s`, `2 h 5 min`."""
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"
