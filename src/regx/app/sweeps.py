"""Sweeps through Hydra's plugins: launchers (joblib, submitit), regx's Optuna search
(`hydra/sweeper=regx_optuna`: the objective's keys, directions and values), completing
an interrupted sweep (`sweep.skip_done`), and what a sweep's progress lines need to know
before its first job (`sweep_plan`: how many jobs, how many at once).

regx ships its own `conf/hydra/launcher/joblib.yaml`, `submitit_slurm.yaml`, … and
`conf/hydra/sweeper/*.yaml`. Installed plugins register configs of the same names in Hydra's
ConfigStore (hydra-optuna-sweeper, if present, an `optuna` sweeper); Hydra would merge a
same-named file onto them (a deprecated "automatic schema match", a hard error for one with a
defaults list), so `hydra_compat.prefer_regx_plugin_configs` drops those entries and regx's
files are used.
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from regx.config import hydra_compat
from regx.errors import ConfigError, MissingExtraError, UserError
from regx.metrics.direction import lower_is_better

# Hydra plugins regx configures: the module their classes live in → (pip package, extra, option).
PLUGINS = {
    "hydra_plugins.hydra_joblib_launcher": (
        "hydra-joblib-launcher",
        "sweep",
        "hydra/launcher=joblib",
    ),
    "hydra_plugins.hydra_submitit_launcher": (
        "hydra-submitit-launcher",
        "sweep",
        "hydra/launcher=submitit_slurm",
    ),
}
# The message of a MissingExtraError, wherever Hydra printed it (e.g. inside a repr).
_MISSING_EXTRA = re.compile(
    r"[\w/=.\[\],-]+ needs the '[^']+' package, which is not installed: pip install 'regx\[\w+\]'"
)


def missing_plugin_message(hydra_error: str) -> str | None:
    """One line naming the extra to install, when Hydra failed for want of an optional package."""
    found = _MISSING_EXTRA.search(hydra_error)
    if found:
        return found.group(0)
    for module, (package, extra, option) in PLUGINS.items():
        if module in hydra_error and importlib.util.find_spec(module) is None:
            return str(MissingExtraError(package, extra, option))
    return None


def objective_direction(direction: Any, objective: str) -> Any:
    """`auto` → minimize for loss-like objectives (val.nll, test.ece, …), else maximize."""
    if direction != "auto":
        return direction
    return "minimize" if lower_is_better(str(objective)) else "maximize"


def finished_run(cfg: DictConfig, run_dir: Path) -> dict[str, Any] | None:
    """With `sweep.skip_done=true`: the summary of a finished run of this config in `run_dir`.

    A job is done when its directory holds summary.json with `status: finished`; anything
    else (no summary, failed, diverged, interrupted) runs again (and resumes from its last
    checkpoint). A finished run of a *different* config there is an error, never overwritten.
    """
    skip = OmegaConf.select(cfg, "sweep.skip_done", default=False)
    if not isinstance(skip, bool):
        raise ConfigError("sweep.skip_done", skip, "must be true or false")
    path = run_dir / "summary.json"
    if not skip or not path.is_file():
        return None
    from regx.engine.outputs import read_json
    from regx.keys import config_hash

    try:
        summary = read_json(path)
    except (OSError, ValueError):
        return None  # half-written or unreadable: the job did not finish
    if not isinstance(summary, dict) or summary.get("status") != "finished":
        return None  # not a summary regx wrote: the job runs again
    expected = config_hash(OmegaConf.to_container(cfg, resolve=True))
    if summary.get("config_hash") != expected:
        raise UserError(
            f"sweep.skip_done: {run_dir} holds a finished run of another config "
            f"(hash {summary.get('config_hash')}, this job's is {expected}); "
            "re-launch with the original overrides, or use a new hydra.sweep.dir"
        )
    return summary


# -- the Optuna search's objective -----------------------------------------------------------


def objective_keys(objective: Any) -> list[str]:
    """`objective` as its dotted summary.json keys: one (`val.nll`) or several
    (`[val.acc,val.ece]`, a multi-objective search); null means val.acc."""
    if objective is None:
        return ["val.acc"]
    keys = list(objective) if isinstance(objective, (list, tuple, ListConfig)) else [objective]
    if not keys or not all(isinstance(k, str) and k.strip() for k in keys):
        raise ConfigError(
            "objective", _listed(objective), "must be a dotted summary.json key or a list of them"
        )
    if len(set(keys)) < len(keys):
        raise ConfigError("objective", _listed(objective), "must not name a key twice")
    return [str(k) for k in keys]


def objective_directions(direction: Any, keys: list[str]) -> list[str]:
    """One direction per objective key: `auto` (per key, as `objective_direction`),
    `minimize`, `maximize`, or a list of those with one entry per key."""
    given = list(direction) if isinstance(direction, (list, tuple, ListConfig)) else [direction]
    if len(given) == 1 and len(keys) > 1 and given[0] == "auto":
        given = given * len(keys)
    allowed = ("auto", "minimize", "maximize")
    if len(given) != len(keys) or any(d not in allowed for d in given):
        raise ConfigError(
            "hydra.sweeper.direction",
            _listed(direction),
            f"must be auto, minimize or maximize, or a list of those with one entry per "
            f"objective ({len(keys)})",
        )
    return [objective_direction(d, k) for d, k in zip(given, keys)]


def _listed(value: Any) -> Any:
    """A list as it is written on the command line: [a,b]."""
    if isinstance(value, (list, tuple, ListConfig)):
        return "[" + ",".join(str(v) for v in value) + "]"
    return value


def summary_value(summary: dict[str, Any], key: str) -> float:
    """The number at dotted `key` of a summary.json; NaN where there is none."""
    value: Any = summary
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)


def objective_value(cfg: Any, summary: dict[str, Any]) -> float | list[float]:
    """The value(s) a sweeper optimizes: `objective`, a dotted summary key (val.nll) → its
    number, or a list of keys ([val.acc,val.ece]) → a list of numbers; NaN where missing."""
    objective = cfg.get("objective")  # null: objective_keys gives val.acc
    values = [summary_value(summary, key) for key in objective_keys(objective)]
    return values if isinstance(objective, (list, ListConfig)) else values[0]


@dataclass(frozen=True)
class NoValue:
    """Why a run gave no objective value: its summary.json status (None: no summary) and
    message."""

    status: str | None
    message: str

    def __str__(self) -> str:
        return self.message if self.status is None else f"{self.status}: {self.message}"


def failure_reason(run_dir: Path) -> NoValue:
    """What a run's summary.json says about why it gave no objective value."""
    from regx.engine.files import summary_of

    summary = summary_of(run_dir)
    if summary is None:
        return NoValue(None, "no summary.json")
    return NoValue(summary.get("status"), summary.get("message") or "no objective value")


def missing_objective(run_dir: Path, keys: list[str]) -> str | None:
    """For a run that finished without a number at an objective key (a misspelt key: every
    trial would end the same way), the line that says so and names the numbers there are."""
    from regx.engine.files import summary_of

    summary = summary_of(run_dir) or {}
    missing = [k for k in keys if math.isnan(summary_value(summary, k))]
    if summary.get("status") != "finished" or not missing:
        return None
    section = summary.get(missing[0].split(".")[0])
    numbers = [
        f"{missing[0].split('.')[0]}.{name}"
        for name, value in (section.items() if isinstance(section, dict) else [])
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    ]
    there = (
        f"numbers there: {', '.join(numbers[:6])}" if numbers else "e.g. val.acc, val.nll, test.ece"
    )
    return (
        f"objective={missing[0]}: the finished run {run_dir} has no number there in its "
        f"summary.json ({there}); name one of its keys"
    )


def all_failed(n_trials: int, sweep_dir: Path) -> None:
    """No trial of a search finished: say so in one line and end with exit code 1."""
    print(
        f"error: all {n_trials} trials failed; see summary.json in the trials' run dirs "
        f"under {sweep_dir}",
        file=sys.stderr,
        flush=True,
    )
    raise SystemExit(1)


# -- the sweep's plan, for its progress lines (regx.app.callbacks.SweepProgress) ---------------


@dataclass
class SweepPlan:
    """A multirun as its launching process sees it before the first job."""

    jobs: int | None  # jobs this launch runs; None where the sweeper does not say
    parallel: int  # jobs running at once
    marks: Path  # a folder every job process reaches: one numbered file per finished job
    grid: bool = False  # Hydra's basic sweeper (its failed jobs fail the sweep)


MARKS_DIR = ".regx-jobs"  # under the sweep dir: the jobs this launch has ended


class JobFailure(float):
    """What a sweep's job that failed returns: NaN to a sweeper (a failed trial to Optuna),
    and recognizably a failure to the callbacks, also where the job left its run dir as it
    was (refused: a finished run, one another process holds)."""

    def __new__(cls) -> JobFailure:
        return super().__new__(cls, math.nan)

    def __reduce__(self) -> tuple[type, tuple]:  # pickled back from joblib's workers
        return (JobFailure, ())


def is_grid_sweep(config: DictConfig) -> bool:
    """Whether the sweep is Hydra's basic sweeper (a grid), not a search."""
    sweeper = str(OmegaConf.select(config, "hydra.sweeper._target_", default=""))
    return sweeper == hydra_compat.BASIC_SWEEPER


def job_statuses(sweep_dir: Path) -> dict[Path, Any]:
    """{job folder: its summary.json `status` (None: none readable)} of every job under
    `sweep_dir`, in path order."""
    from regx.engine.files import summary_of

    jobs = sorted(c.parent.parent for c in sweep_dir.glob("**/.hydra/config.yaml"))
    return {job: (summary_of(job) or {}).get("status") for job in jobs}


def sweep_plan(config: DictConfig) -> SweepPlan:
    """The plan of the multirun `config` (the launching process's config)."""
    sweep_dir = Path(os.path.abspath(str(config.hydra.sweep.dir)))
    jobs = planned_jobs(config, sweep_dir)
    parallel = launcher_parallel(config)
    max_batch = OmegaConf.select(config, "hydra.sweeper.max_batch_size", default=None)
    if isinstance(max_batch, int) and max_batch > 0:  # the basic sweeper's batches
        parallel = min(parallel, max_batch)
    n_jobs = OmegaConf.select(config, "hydra.sweeper.n_jobs", default=None)
    if isinstance(n_jobs, int) and n_jobs > 0:  # the Optuna search's trials asked at once
        parallel = min(parallel, n_jobs)
    if jobs:
        parallel = min(parallel, jobs)
    return SweepPlan(jobs, max(parallel, 1), sweep_dir / MARKS_DIR, is_grid_sweep(config))


def planned_jobs(config: DictConfig, sweep_dir: Path) -> int | None:
    """Hydra's basic sweeper: the size of the product it expands (`hydra.sweeper.params`
    and the command line's overrides), counted by its own `split_arguments`. A search with
    `n_trials` (regx_optuna): those not yet in the sweep dir (a continued search counts
    its earlier trials, each of which left a job folder). Otherwise None."""
    if is_grid_sweep(config):
        return hydra_compat.basic_sweep_size(config)
    n_trials = OmegaConf.select(config, "hydra.sweeper.n_trials", default=None)
    if isinstance(n_trials, int) and not isinstance(n_trials, bool) and n_trials > 0:
        earlier = sum(1 for _ in sweep_dir.glob("*/.hydra/config.yaml"))
        return max(n_trials - earlier, 0)
    return None


def launcher_parallel(config: DictConfig) -> int:
    """Jobs the launcher runs at once: joblib's `n_jobs` (−1: every core, −2: all but one,
    as joblib counts), submitit's `array_parallelism`, else one at a time."""
    launcher = str(OmegaConf.select(config, "hydra.launcher._target_", default=""))
    if "JoblibLauncher" in launcher:
        n_jobs = OmegaConf.select(config, "hydra.launcher.n_jobs", default=-1)
        if not isinstance(n_jobs, int) or n_jobs == 0:
            return 1
        if n_jobs < 0:
            import joblib

            return max(joblib.cpu_count() + 1 + n_jobs, 1)
        return n_jobs
    if "submitit" in launcher:
        parallel = OmegaConf.select(config, "hydra.launcher.array_parallelism", default=1)
        return parallel if isinstance(parallel, int) and parallel > 0 else 1
    return 1


def check_grid_sweep(config: DictConfig) -> None:
    """Before a grid sweep (Hydra's basic sweeper) launches anything, also its multirun.yaml:
    refuse (UserError) one that expands to no job, and one whose sweep dir already holds
    finished jobs without `sweep.skip_done=true` (each of them would be refused, and the
    sweep would end as if it had done its work)."""
    if not is_grid_sweep(config):
        return
    if hydra_compat.basic_sweep_size(config) == 0:
        raise UserError(
            "the sweep expands to no job (a swept key with no value, e.g. seed=range(0,0)): "
            "give every swept key at least one value"
        )
    sweep_dir = Path(os.path.abspath(str(config.hydra.sweep.dir)))
    if OmegaConf.select(config, "sweep.skip_done", default=False) is True:
        return
    finished = [job for job, status in job_statuses(sweep_dir).items() if status == "finished"]
    if finished:
        raise UserError(
            f"hydra.sweep.dir={sweep_dir} holds {len(finished)} finished job(s) of an earlier "
            f"launch ({finished[0]} first), which are never trained into again: add "
            "sweep.skip_done=true to reuse them and run the rest, or pass a new hydra.sweep.dir"
        )
