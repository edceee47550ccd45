"""Sweeps through Hydra's plugins: launchers (joblib, submitit), regx's Optuna search
(`hydra/sweeper=regx_optuna`: the objective's keys, directions and values), and completing
an interrupted sweep (`sweep.skip_done`).

regx ships its own `conf/hydra/launcher/joblib.yaml`, `submitit_slurm.yaml`, … and
`conf/hydra/sweeper/*.yaml`. Installed plugins register configs of the same names in Hydra's
ConfigStore (hydra-optuna-sweeper, if present, an `optuna` sweeper); Hydra would merge a
same-named file onto them (a deprecated "automatic schema match", a hard error for one with a
defaults list), so `prefer_regx_plugin_configs` drops those entries and regx's files are used.
"""

from __future__ import annotations

import importlib.util
import math
import re
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

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


def failure_reason(run_dir: Path) -> str:
    """What a run's summary.json says about why it gave no objective value."""
    import json

    try:
        summary = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return "no summary.json"
    return f"{summary.get('status')}: {summary.get('message') or 'no objective value'}"


def all_failed(n_trials: int, sweep_dir: Path) -> None:
    """No trial of a search finished: say so in one line and end with exit code 1."""
    print(
        f"error: all {n_trials} trials failed; see summary.json in the trials' run dirs "
        f"under {sweep_dir}",
        file=sys.stderr,
        flush=True,
    )
    raise SystemExit(1)
