"""Sweeps through Hydra's own plugins: launchers (joblib, submitit), the Optuna sweeper, and
completing an interrupted sweep (`sweep.skip_done`).

regx ships its own `conf/hydra/launcher/joblib.yaml`, `submitit_slurm.yaml`, … and
`conf/hydra/sweeper/optuna.yaml`. The plugins register configs of the same names in Hydra's
ConfigStore; Hydra would merge a same-named file onto them (a deprecated "automatic schema
match", a hard error for the Optuna sweeper's, which has a defaults list), so
`prefer_regx_plugin_configs` drops those entries and regx's files are the ones used.
"""

from __future__ import annotations

import importlib.util
import math
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from regx.errors import ConfigError, MissingExtraError, UserError

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
    "hydra_plugins.hydra_optuna_sweeper": ("hydra-optuna-sweeper", "sweep", "hydra/sweeper=optuna"),
}
# The message of a MissingExtraError, wherever Hydra printed it (e.g. inside a repr).
_MISSING_EXTRA = re.compile(
    r"[\w/=.\[\],-]+ needs the '[^']+' package, which is not installed: pip install 'regx\[\w+\]'"
)
# Objectives where lower is better (the last part of the dotted key); all others: higher.
LOWER_IS_BETTER = {
    "nll",
    "loss",
    "brier",
    "ece",
    "ace",
    "mce",
    "classwise_ece",
    "overconfidence",
    "error",
}


def prefer_regx_plugin_configs(config_dir: Path) -> None:
    """Drop the plugins' ConfigStore entries that regx's conf/hydra/<group>/*.yaml replace."""
    from hydra.core.config_store import ConfigStore
    from hydra.core.plugins import Plugins

    Plugins.instance()  # imports the installed plugins, which register their configs
    repo = ConfigStore.instance().repo
    for group in ("launcher", "sweeper"):
        stored = repo.get("hydra", {}).get(group)
        if not isinstance(stored, dict):
            continue
        for path in (config_dir / "hydra" / group).glob("*.yaml"):
            stored.pop(path.name, None)


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
    return "minimize" if str(objective).rsplit(".", 1)[-1] in LOWER_IS_BETTER else "maximize"


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
    from regx.engine.results import config_hash

    try:
        summary = read_json(path)
    except (OSError, ValueError):
        return None  # half-written or unreadable: the job did not finish
    if summary.get("status") != "finished":
        return None
    expected = config_hash(OmegaConf.to_container(cfg, resolve=True))
    if summary.get("config_hash") != expected:
        raise UserError(
            f"sweep.skip_done: {run_dir} holds a finished run of another config "
            f"(hash {summary.get('config_hash')}, this job's is {expected}); "
            "re-launch with the original overrides, or use a new hydra.sweep.dir"
        )
    return summary


# -- the Optuna sweeper's bookkeeping ---------------------------------------------------------


class TrialFailed(RuntimeError):
    """A trial whose run produced no objective value (its summary.json says why)."""


@dataclass
class Trial:
    job: int
    overrides: list[str]
    run_dir: Path
    value: float  # NaN when the run failed


def _run_dir(ret: Any) -> Path:
    return Path(str(OmegaConf.select(ret.hydra_cfg, "hydra.runtime.output_dir")))


def _failure_reason(run_dir: Path) -> str:
    import json

    try:
        summary = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return "no summary.json"
    return f"{summary.get('status')}: {summary.get('message') or 'no objective value'}"


class TrialRecorder:
    """Wraps the sweeper's launcher: records every trial, and turns a run that returned NaN
    (regx's multirun result for a failed run) into a failed job, which Optuna records as a
    FAILED trial instead of aborting the study on an un-tellable NaN."""

    def __init__(self, launcher: Any) -> None:
        self.launcher = launcher
        self.trials: list[Trial] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.launcher, name)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[Any]:
        from hydra.core.utils import JobStatus

        returns = self.launcher.launch(job_overrides, initial_job_idx=initial_job_idx)
        for i, ret in enumerate(returns):
            run_dir = _run_dir(ret)
            value = math.nan
            if ret.status == JobStatus.COMPLETED:
                try:
                    value = float(ret.return_value)
                except (TypeError, ValueError):
                    value = math.nan
                if math.isnan(value):
                    ret.status = JobStatus.FAILED
                    ret.return_value = TrialFailed(
                        f"trial {initial_job_idx + i} ({run_dir}) has no objective value "
                        f"({_failure_reason(run_dir)})"
                    )
            self.trials.append(
                Trial(initial_job_idx + i, list(ret.overrides or []), run_dir, value)
            )
        return returns


def report_best(trials: list[Trial], results_file: Path, objective: str, direction: Any) -> None:
    """Print the best trial with its run dir and summary.json value: the one Optuna chose
    (optimization_results.yaml), else the best finite value among the recorded trials."""
    results = OmegaConf.load(results_file) if results_file.is_file() else None
    if results is not None and "best_params" in results:
        params = {str(k): v for k, v in results.best_params.items()}
        wanted = {f"{k}={v}" for k, v in params.items()}
        match = [t for t in trials if wanted <= set(t.overrides) and t.value == results.best_value]
        shown = "  ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
        )
    else:
        finished = [t for t in trials if not math.isnan(t.value)]
        if direction not in ("minimize", "maximize") or not finished:
            return  # several objectives (a Pareto front), or nothing finished
        sign = 1.0 if direction == "minimize" else -1.0
        match = sorted(finished, key=lambda t: sign * t.value)[:1]
        shown = "  ".join(match[0].overrides) if match else ""
    if not match:
        return
    best = match[0]
    print(
        f"best trial: #{best.job} of {len(trials)}  {objective} = {best.value:.6g}\n"
        f"  {shown}\n  run dir: {best.run_dir}"
        + (f"\n  all trials: {results_file}" if results_file.is_file() else ""),
        flush=True,
    )


def all_failed(trials: list[Trial]) -> None:
    """Every trial failed: say so in one line and end with exit code 1."""
    dirs = sorted({str(t.run_dir.parent) for t in trials})
    print(
        f"error: all {len(trials)} trials failed; see summary.json in the trials' run dirs "
        f"under {', '.join(dirs)}",
        file=sys.stderr,
        flush=True,
    )
    raise SystemExit(1)
