"""`hydra/sweeper=regx_optuna` (alias `optuna`): regx's Optuna search, on Optuna's
ask-and-tell API.

Each trial is one `regx train` job: the sweeper asks Optuna for `n_jobs` trials, launches
them together through the configured launcher (basic: one after the other; joblib: in
parallel processes), and tells Optuna each job's `objective` value(s), as the job returns
them from its summary.json. The job of trial N runs in `SWEEP_DIR/N` and learns which
trial it is from the overrides `sweep.trial.{storage,study,number}`: it reports its
per-epoch objective to the trial, which the pruner may stop (regx.app.pruning). A job
whose summary.json says `pruned` is a PRUNED trial; one that returned NaN (a failed run)
is a FAILED trial, and the search goes on.

The search space is regx.app.search.space; the study, its storage and continuing it are
regx.app.search.study; the printed results and files are regx.app.search.results.

Only `hydra`, `omegaconf` and `regx.errors` are imported at the top: Hydra imports this
module whenever it scans for plugins.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

from hydra.errors import CompactHydraException
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

from regx.errors import ConfigError, MissingExtraError, UserError


class SearchSetupError(CompactHydraException):
    """A user error found before the first trial: Hydra prints its message alone."""


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def _count(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(key, value, "must be an integer >= 1")
    return value


class RegxOptunaSweeper(Sweeper):
    def __init__(
        self,
        direction: Any = "auto",
        n_trials: int = 20,
        n_jobs: int = 1,
        storage: str | None = None,
        study_name: str = "regx",
        sampler: Any = None,
        pruner: Any = None,
        params: Any = None,
    ) -> None:
        try:
            import optuna  # noqa: F401
        except ImportError:
            raise MissingExtraError("optuna", "sweep", "hydra/sweeper=regx_optuna") from None
        self.direction = _plain(direction)
        self.n_trials, self.n_jobs = n_trials, n_jobs
        self.storage, self.study_name = storage, study_name
        self.sampler = _plain(sampler) or {"name": "auto"}
        self.pruner = _plain(pruner) or {"name": "none"}
        self.params = _plain(params) or {}
        self.hydra_context: HydraContext | None = None
        self.config: DictConfig | None = None
        self.launcher: Any = None
        self.sweep_dir = Path(".")
        self.objective: list[str] = []

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        from hydra.core.plugins import Plugins

        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )
        self.sweep_dir = Path(str(config.hydra.sweep.dir))
        # `${hydra.sweep.dir}` in `storage` is resolved here, on the config the launcher
        # reads: instantiating the sweeper resolved a copy, where `${now:…}` is a later time
        self.storage = OmegaConf.select(config, "hydra.sweeper.storage", default=self.storage)

    def sweep(self, arguments: list[str]) -> None:
        from regx.app.search.results import report

        try:
            settings, space, study = self._prepare(arguments)
        except UserError as e:
            raise SearchSetupError(str(e)) from None
        self._run(settings, space, study)
        counts = report(study, settings.objective, self.sweep_dir, settings.storage)
        if counts["failed"] and not counts["complete"] and not counts["pruned"]:
            from regx.app.sweeps import all_failed

            all_failed(counts["failed"], self.sweep_dir)

    # -- before the first trial: everything a user can get wrong ---------------------------
    def _prepare(self, arguments: list[str]) -> tuple[Any, Any, Any]:
        from regx.app.pruning import PRUNERS
        from regx.app.search.space import parse_space
        from regx.app.search.study import SAMPLERS, StudySettings, chosen, open_study, storage_url
        from regx.app.sweeps import objective_directions, objective_keys

        assert self.config is not None
        _count("hydra.sweeper.n_trials", self.n_trials)
        _count("hydra.sweeper.n_jobs", self.n_jobs)
        objective = self.objective = objective_keys(_plain(self.config.get("objective")))
        pruner = chosen(self.pruner, "pruner", PRUNERS)
        settings = StudySettings(
            storage=storage_url(self.storage),
            name=str(self.study_name or "regx"),
            objective=objective,
            directions=objective_directions(self.direction, objective),
            sampler=chosen(self.sampler, "sampler", SAMPLERS),
            pruner=pruner,
        )
        _check_pruner(pruner["name"], objective, settings.storage)
        space = parse_space(self.params, arguments)
        if not space.distributions:
            raise ConfigError(
                "hydra.sweeper.params", self.params or None, "must search at least one key"
            )
        # the keys compose with the config (an unknown key fails here, before any trial)
        self.validate_batch_is_legal([space.overrides(space.corner())])
        self._check_extremes(space)
        study = open_study(settings)
        return settings, space, study

    def _check_extremes(self, space: Any) -> None:
        """Every end of every range is a value the run accepts (`loss.gamma` in [0, 1]):
        otherwise trials would fail at random, wherever the sampler lands."""
        import logging

        from regx.app.search.space import override_text
        from regx.config.build import build_spec

        regx_log = logging.getLogger("regx")
        level = regx_log.level
        regx_log.setLevel(logging.ERROR)  # its idle-settings warnings (setLevel: the cache too)
        try:
            for key, value, point in space.extremes():
                cfg = self.hydra_context.config_loader.load_sweep_config(
                    master_config=self.config, sweep_overrides=space.overrides(point)
                )
                with open_dict(cfg):
                    del cfg["hydra"]  # the job's own part (job.num) exists only in the job
                try:
                    build_spec(cfg)
                except ConfigError as e:
                    raise UserError(
                        f"the search over {key} reaches {key}={override_text(value)}, which a "
                        f"run refuses ({e}): keep the range within what {key} allows"
                    ) from None
        finally:
            regx_log.setLevel(level)

    # -- the trials -------------------------------------------------------------------------
    def _run(self, settings: Any, space: Any, study: Any) -> None:
        from regx.app.search.study import recover_cut_off, trials_done

        for line in recover_cut_off(study, self.sweep_dir, settings.objective):
            print(line, flush=True)
        done = trials_done(study)
        print(
            f"search '{settings.name}' ({settings.storage or 'in memory'}): {done} of "
            f"{self.n_trials} trials done before, {max(self.n_trials - done, 0)} to run; "
            f"sampler {settings.sampler['name']}, pruner {settings.pruner['name']}",
            flush=True,
        )
        while done < self.n_trials:
            batch = [
                study.ask(space.distributions)
                for _ in range(min(self.n_jobs, self.n_trials - done))
            ]
            for run in _consecutive(batch):
                self._launch(settings, space, study, run)
            done += len(batch)

    def _launch(self, settings: Any, space: Any, study: Any, trials: list[Any]) -> None:
        jobs = [
            space.overrides(t.params) + self._trial_overrides(settings, t.number) for t in trials
        ]
        returns = self.launcher.launch(jobs, initial_job_idx=trials[0].number)
        for trial, ret in zip(trials, returns):
            self._tell(study, trial, ret, len(settings.objective))

    def _trial_overrides(self, settings: Any, number: int) -> list[str]:
        """What tells a job it is trial `number` (none with an in-memory study: no job
        process could reach it)."""
        from regx.app.search.space import override_text

        if settings.storage is None:
            return []
        return [
            f"++sweep.trial.storage={override_text(settings.storage)}",
            f"++sweep.trial.study={override_text(settings.name)}",
            f"++sweep.trial.number={number}",
        ]

    def _tell(self, study: Any, trial: Any, ret: Any, n_objectives: int) -> None:
        from hydra.core.utils import JobStatus
        from optuna.trial import TrialState

        from regx.app.hydra_task import debug_mode
        from regx.app.sweeps import failure_reason, missing_objective

        run_dir = Path(str(OmegaConf.select(ret.hydra_cfg, "hydra.runtime.output_dir")))
        trial.set_user_attr("run_dir", str(run_dir))
        if ret.status == JobStatus.COMPLETED:
            values = _values(ret.return_value, n_objectives)
            if values is not None:
                study.tell(trial, values)
                shown = ", ".join(f"{k} = {v:.6g}" for k, v in zip(self.objective, values))
                print(f"trial {trial.number}: {shown}", flush=True)
                return
            missing = missing_objective(run_dir, self.objective)
            if missing is not None:  # every trial would end so: stop the search here
                import shutil

                from regx.app.sweeps import MARKS_DIR

                study.tell(trial, state=TrialState.FAIL)
                shutil.rmtree(self.sweep_dir / MARKS_DIR, ignore_errors=True)  # no trace left
                print(f"error: {missing}", file=sys.stderr, flush=True)
                raise SystemExit(2)
            reason = failure_reason(run_dir)
            if reason.status == "pruned":
                study.tell(trial, state=TrialState.PRUNED)
                print(f"trial {trial.number}: {reason.message}", flush=True)
                return
        else:
            try:
                ret.return_value  # noqa: B018  (raises the job's exception)
                reason = "the job failed"
            except Exception as e:
                if debug_mode():
                    raise
                reason = f"{type(e).__name__}: {e}"
        print(f"trial {trial.number} failed ({run_dir}): {reason}", flush=True)
        study.tell(trial, state=TrialState.FAIL)


def _check_pruner(name: str, objective: list[str], storage: str | None) -> None:
    """A pruner needs one objective with a per-epoch value, and trials that reach the study."""
    from regx.app.pruning import EPOCH_COLUMNS, pruner_no_epoch_value

    if name == "none":
        return
    if len(objective) > 1:
        raise ConfigError(
            "hydra.sweeper.pruner.name", name, "prunes single-objective searches only"
        )
    if storage is None:
        raise ConfigError(
            "hydra.sweeper.storage", None, "a pruner needs a storage the trials reach (sqlite:///…)"
        )
    if objective[0] not in EPOCH_COLUMNS:
        raise pruner_no_epoch_value(objective[0], name)


def _values(returned: Any, n_objectives: int) -> list[float] | None:
    """The job's objective value(s), or None unless there are `n_objectives` finite ones."""
    values = list(returned) if isinstance(returned, (list, tuple)) else [returned]
    try:
        numbers = [float(v) for v in values]
    except (TypeError, ValueError):
        return None
    if len(numbers) != n_objectives or not all(map(math.isfinite, numbers)):
        return None
    return numbers


def _consecutive(trials: list[Any]) -> list[list[Any]]:
    """`trials` in runs of consecutive numbers: one launch's job numbers are consecutive, and
    job N runs in SWEEP_DIR/N (a re-asked trial's number may stand apart)."""
    runs: list[list[Any]] = []
    for trial in trials:
        if runs and runs[-1][-1].number + 1 == trial.number:
            runs[-1].append(trial)
        else:
            runs.append([trial])
    return runs
