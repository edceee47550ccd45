"""The Optuna study of a regx search: where it is stored, its sampler, and continuing it.

A study is kept in `hydra.sweeper.storage` (default: `optuna.db`, SQLite, in the sweep dir)
under `hydra.sweeper.study_name`. Launching the same search again with the same
`hydra.sweep.dir` continues it:

- finished trials (complete, pruned, failed) are kept and count towards `n_trials`;
- a trial still RUNNING was cut off by the killed search. If its run dir's summary.json
  says the run finished (or was pruned), the trial is told so; otherwise it is marked FAIL
  and its parameters are asked again first (a new trial, user attribute `retry_of`), and
  the failed attempt does not count towards `n_trials`.

The sampler is seeded with `seed` plus the number of trials already in the study, so a
continued study draws new points instead of the first launch's again.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from regx.engine.files import summary_of
from regx.errors import ConfigError, UserError, check_choice

# `hydra.sweeper.sampler.name` → the class of optuna.samplers it builds; auto picks one
SAMPLER_CLASSES = {
    "tpe": "TPESampler",
    "random": "RandomSampler",
    "cmaes": "CmaEsSampler",
    "nsgaii": "NSGAIISampler",
}
SAMPLERS = ("auto", *SAMPLER_CLASSES)
OBJECTIVE_ATTR = "regx_objective"  # the study's user attribute: the objective's keys
RETRY_ATTR = "retry_of"  # a trial's user attribute: the number of the cut-off trial it re-runs


@dataclass
class StudySettings:
    storage: str | None  # an Optuna storage URL; None: in memory, this process only
    name: str
    objective: list[str]
    directions: list[str]
    sampler: dict[str, Any]  # {"name", "seed", **the chosen sampler's settings}
    pruner: dict[str, Any]  # {"name", **the chosen pruner's settings}


def storage_url(storage: Any) -> str | None:
    """The storage URL the sweeper and every job use: a relative SQLite path made absolute
    against the launch directory (jobs may run in other directories), its folder created."""
    if storage is None:
        return None
    url = str(storage)
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        if url.startswith("sqlite:"):
            raise ConfigError("hydra.sweeper.storage", url, "must be sqlite:///PATH (a file)")
        return url
    path = Path(url[len(prefix) :]).expanduser()
    path = path if path.is_absolute() else Path.cwd() / path
    path.parent.mkdir(parents=True, exist_ok=True)
    return prefix + str(path)


def chosen(node: dict[str, Any], group: str, names: tuple[str, ...]) -> dict[str, Any]:
    """`{"name": NAME, **node[NAME]}` of a `sampler:`/`pruner:` node (settings per name)."""
    name = node.get("name", names[0])
    check_choice(f"hydra.sweeper.{group}.name", name, names)
    settings = node.get(name) or {}
    if not isinstance(settings, dict):
        raise ConfigError(f"hydra.sweeper.{group}.{name}", settings, "must be a mapping")
    spec = {"name": name, **settings}
    if "seed" in node:
        spec["seed"] = node["seed"]
    return spec


def build_sampler(spec: dict[str, Any], n_objectives: int, n_existing: int) -> Any:
    from optuna import samplers

    name = spec["name"]
    if name == "auto":
        name = "nsgaii" if n_objectives > 1 else "tpe"
    if name == "cmaes":
        if importlib.util.find_spec("cmaes") is None:
            raise ConfigError(
                "hydra.sweeper.sampler.name", name, "needs the 'cmaes' package: pip install cmaes"
            )
        if n_objectives > 1:
            raise ConfigError(
                "hydra.sweeper.sampler.name", name, "is single-objective; use nsgaii or tpe"
            )
    kwargs = {k: v for k, v in spec.items() if k not in ("name", "seed")}
    seed = spec.get("seed")
    if seed is not None:
        kwargs["seed"] = int(seed) + n_existing
    try:
        return getattr(samplers, SAMPLER_CLASSES[name])(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(
            f"hydra.sweeper.sampler.{name}", kwargs, f"Optuna's {SAMPLER_CLASSES[name]}: {e}"
        ) from None


def open_study(settings: StudySettings) -> Any:
    """Create the study, or load it when its storage already holds one of that name."""
    import optuna

    from regx.app.pruning import PRUNER_ATTR, build_pruner, open_storage

    # the sweeper prints its own line per trial; Optuna's INFO lines would repeat them
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(settings.storage) if settings.storage else None
    existing = _existing_trials(storage, settings.name)
    study = optuna.create_study(
        storage=storage,
        study_name=settings.name,
        directions=settings.directions,
        sampler=build_sampler(settings.sampler, len(settings.objective), existing),
        pruner=build_pruner(settings.pruner),
        load_if_exists=True,
    )
    made_for = study.user_attrs.get(OBJECTIVE_ATTR)
    directions = [d.name.lower() for d in study.directions]
    if made_for is not None and (
        made_for != settings.objective or directions != settings.directions
    ):
        raise UserError(
            f"hydra.sweeper.study_name={settings.name}: the study in {settings.storage} optimizes "
            f"{made_for} ({', '.join(directions)}), this search {settings.objective} "
            f"({', '.join(settings.directions)}); use another hydra.sweep.dir or study_name"
        )
    study.set_user_attr(OBJECTIVE_ATTR, settings.objective)
    study.set_user_attr(PRUNER_ATTR, settings.pruner)  # read by each trial's pruning hook
    return study


def _existing_trials(storage: Any, name: str) -> int:
    if storage is None:
        return 0
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return 0
    return len(storage.get_all_trials(study_id, deepcopy=False))


def trials_done(study: Any) -> int:
    """Trials that count towards `n_trials`: finished, except attempts that were re-run."""
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get(RETRY_ATTR) for t in trials}
    return sum(t.state.is_finished() and t.number not in retried for t in trials)


def recover_cut_off(study: Any, sweep_dir: Path, objective: list[str]) -> list[str]:
    """Settle the trials a killed search left RUNNING; returns one line per trial."""
    from optuna.trial import TrialState

    from regx.app.sweeps import summary_value

    lines = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        summary = summary_of(sweep_dir / str(trial.number)) or {}
        values = [summary_value(summary, key) for key in objective]
        if summary.get("status") == "finished" and all(map(math.isfinite, values)):
            study.tell(trial.number, values)
            lines.append(f"trial {trial.number}: its run had finished; recorded")
        elif summary.get("status") == "pruned":
            study.tell(trial.number, state=TrialState.PRUNED)
            lines.append(f"trial {trial.number}: its run had been pruned; recorded")
        else:
            study.tell(trial.number, state=TrialState.FAIL)
            study.enqueue_trial(dict(trial.params), user_attrs={RETRY_ATTR: trial.number})
            lines.append(f"trial {trial.number}: cut off by the stopped search; asked again")
    return lines
