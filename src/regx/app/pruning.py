"""Pruning a search trial: after each epoch the run reports its objective to its Optuna
trial, whose pruner may stop it there (`regx.errors.RunPruned`).

A run is a trial when `hydra/sweeper=regx_optuna` launched it with
`sweep.trial.storage`, `sweep.trial.study` and `sweep.trial.number`; the trial lives in
that storage (a SQLite file by default), so a job in another process (joblib, SLURM)
reaches it. The pruner's settings are the study's user attribute `regx_pruner`, which the
sweeper writes at each launch.

The per-epoch counterpart of an objective is its metrics.csv column:

    val.acc → val_acc    val.nll → val_loss (the validation NLL)    val.ece → val_ece

Other objectives (test.*, val.brier, …) exist only at the end of a run: they are never
reported per epoch, and a pruner refuses them.

Pruners (the trial's value at epoch t is `v_t`; "worse" follows the study's direction):

- `median`: prune at epoch t when the best of v_1…v_t is worse than the median of the
  completed trials' v_t (after `n_startup_trials` completed trials and `n_warmup_steps`
  epochs; Optuna's MedianPruner).
- `successive_halving`: rungs at epochs r·η^k (r = `min_resource`, η = `reduction_factor`);
  a trial reaching a rung goes on only if its v is in the best 1/η of the values all
  trials had there (Optuna's SuccessiveHalvingPruner, asynchronous).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from regx.engine.hooks import RunHook
from regx.errors import ConfigError, UserError, check_choice

EPOCH_COLUMNS = {"val.acc": "val_acc", "val.nll": "val_loss", "val.ece": "val_ece"}
# `hydra.sweeper.pruner.name` → the class of optuna.pruners it builds
PRUNER_CLASSES = {
    "none": "NopPruner",
    "median": "MedianPruner",
    "successive_halving": "SuccessiveHalvingPruner",
}
PRUNERS = tuple(PRUNER_CLASSES)
PRUNER_ATTR = "regx_pruner"  # the study's user attribute holding the pruner's settings


@dataclass(frozen=True)
class TrialRef:
    """Where a search trial lives: `sweep.trial.*` of its run's config."""

    storage: str
    study: str
    number: int


def trial_ref(cfg: DictConfig) -> TrialRef | None:
    """The trial this run is, or None outside a search."""
    node = OmegaConf.select(cfg, "sweep.trial", default=None)
    if node is None or node.get("storage") is None:
        return None
    number = node.get("number")
    if isinstance(number, bool) or not isinstance(number, int) or number < 0:
        raise ConfigError("sweep.trial.number", number, "must be a trial number (an int >= 0)")
    if not node.get("study"):
        raise ConfigError("sweep.trial.study", node.get("study"), "must name the study")
    return TrialRef(str(node.storage), str(node.study), number)


def pruner_no_epoch_value(objective: str, pruner: str) -> ConfigError:
    """The error for a pruner on an objective that has no per-epoch value."""
    return ConfigError(
        "objective",
        objective,
        f"has no per-epoch value to prune on (hydra.sweeper.pruner.name={pruner}); "
        f"use one of {', '.join(EPOCH_COLUMNS)}, or hydra.sweeper.pruner.name=none",
    )


def build_pruner(spec: dict[str, Any]) -> Any:
    """The Optuna pruner of `{"name": NAME, **its settings}` (`hydra.sweeper.pruner`)."""
    from optuna import pruners

    name = spec.get("name", "none")
    check_choice("hydra.sweeper.pruner.name", name, PRUNERS)
    pruner_class = getattr(pruners, PRUNER_CLASSES[name])
    kwargs = {k: v for k, v in spec.items() if k != "name"}
    try:
        return pruner_class(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(
            f"hydra.sweeper.pruner.{name}", kwargs, f"Optuna's {pruner_class.__name__}: {e}"
        ) from None


def open_storage(url: str) -> Any:
    """Optuna's RDB storage at `url`; on SQLite, a writer waits up to 60 s for the file lock
    (the trials of a parallel search write to the same file)."""
    from optuna.storages import RDBStorage

    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    return RDBStorage(url, engine_kwargs=engine_kwargs)


class PruningHook(RunHook):
    """Reports `row[column]` at step `row["epoch"]` to a running trial after each epoch,
    and raises `RunPruned(epoch)` when the trial's pruner says the run is hopeless.

    Under torchrun, rank 0 reports and decides, and every rank follows its decision."""

    def __init__(self, trial: Any, column: str, prunes: bool) -> None:
        self.trial = trial
        self.column = column
        self.prunes = prunes

    def after_epoch(self, row: dict[str, Any]) -> None:
        from regx.engine import distributed
        from regx.errors import RunPruned

        epoch = int(row["epoch"])
        value = row.get(self.column)
        prune = None
        if distributed.is_main_process():
            reported = isinstance(value, (int, float)) and not isinstance(value, bool)
            # a non-finite value: a diverging run, which stops on its own with its own status
            if reported and math.isfinite(value):
                self.trial.report(float(value), epoch)
                prune = self.prunes and self.trial.should_prune()
        if distributed.broadcast_from_main(prune):
            raise RunPruned(epoch)


def build_pruning_hook(cfg: DictConfig) -> PruningHook | None:
    """The hook of a run that is a running search trial with a single objective that has a
    per-epoch value; None for any other run (also a trial re-run by hand after its search
    finished: that trial is no longer running)."""
    ref = trial_ref(cfg)
    if ref is None:
        return None
    from regx.app.sweeps import objective_keys

    keys = objective_keys(cfg.get("objective"))
    trial_id, spec, storage = _running_trial(ref)
    if trial_id is None:
        return None
    prunes = spec.get("name", "none") != "none"
    if len(keys) != 1:
        return None  # Optuna reports and prunes single-objective trials only
    column = EPOCH_COLUMNS.get(keys[0])
    if column is None:
        if prunes:
            raise pruner_no_epoch_value(keys[0], spec["name"])
        return None
    import optuna

    study = optuna.load_study(study_name=ref.study, storage=storage, pruner=build_pruner(spec))
    return PruningHook(optuna.trial.Trial(study, trial_id), column, prunes)


def _running_trial(ref: TrialRef) -> tuple[int | None, dict[str, Any], Any]:
    """(trial id or None when the trial is not running, the pruner's settings, the storage)."""
    from optuna.trial import TrialState

    prefix = "sqlite:///"
    if ref.storage.startswith(prefix) and not Path(ref.storage[len(prefix) :]).is_file():
        raise UserError(
            f"sweep.trial.storage={ref.storage}: no such study database; to run this "
            "config outside its search, leave out the sweep.trial.* overrides"
        )
    storage = open_storage(ref.storage)
    try:
        study_id = storage.get_study_id_from_name(ref.study)
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, ref.number)
    except KeyError:
        raise UserError(
            f"sweep.trial: the study '{ref.study}' in {ref.storage} has no trial {ref.number}"
        ) from None
    if storage.get_trial(trial_id).state != TrialState.RUNNING:
        return None, {}, storage
    spec = dict(storage.get_study_user_attrs(study_id).get(PRUNER_ATTR) or {"name": "none"})
    return trial_id, spec, storage
