"""`hydra/sweeper=optuna` in regx: Hydra's Optuna sweeper (hydra-optuna-sweeper) plus

- `direction: auto`: minimize loss-like objectives (val.nll, val.ece, …), maximize the rest;
- a trial whose run failed (regx returns NaN) becomes a FAILED trial and the search goes on,
  where the plugin alone would abort the study on the NaN;
- at the end, the best trial with its run dir; if every trial failed, one error line.

Only `hydra` and `regx.errors` are imported at the top: Hydra imports this module whenever
it scans for plugins.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from regx.errors import MissingExtraError


def _built(value: Any) -> Any:
    """A nested `_target_` node (the sampler) as its object.

    Hydra 1.3 builds plugins recursively; 1.4 passes nested nodes through unbuilt.
    """
    if isinstance(value, DictConfig) and "_target_" in value:
        from hydra.utils import instantiate

        from regx.config.hydra_compat import instantiate_kwargs

        return instantiate(value, **instantiate_kwargs())
    return value


class OptunaSweeper(Sweeper):
    def __init__(self, direction: Any = "auto", **kwargs: Any) -> None:
        try:
            from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import (
                OptunaSweeper as PluginSweeper,
            )
        except ImportError:
            raise MissingExtraError(
                "hydra-optuna-sweeper", "sweep", "hydra/sweeper=optuna"
            ) from None
        self.plugin_cls = PluginSweeper
        self.direction = direction
        self.kwargs = {key: _built(value) for key, value in kwargs.items()}
        self.plugin: Any = None
        self.recorder: Any = None
        self.objective = "val.acc"
        self.direction_used: Any = direction
        self.sweep_dir = Path(".")

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        from regx.app.sweeps import TrialRecorder, objective_direction

        self.objective = str(config.get("objective") or "val.acc")
        self.direction_used = objective_direction(self.direction, self.objective)
        self.plugin = self.plugin_cls(direction=self.direction_used, **self.kwargs)
        self.plugin.setup(hydra_context=hydra_context, task_function=task_function, config=config)
        # the plugin keeps its launcher on its implementation object
        self.recorder = TrialRecorder(self.plugin.sweeper.launcher)
        self.plugin.sweeper.launcher = self.recorder
        self.sweep_dir = Path(str(config.hydra.sweep.dir))

    def sweep(self, arguments: list[str]) -> None:
        from regx.app.sweeps import all_failed, report_best

        trials = self.recorder.trials
        try:
            self.plugin.sweep(arguments)
        except (ValueError, RuntimeError) as e:
            # ValueError: Optuna's study.best_trial when no trial completed. RuntimeError:
            # GridSampler stops the study when its last grid point is told, which the plugin
            # tolerates for a completed trial only; after a failed last trial the grid is done.
            grid_done = isinstance(e, RuntimeError) and "Study.stop" in str(e)
            nothing_finished = bool(trials) and all(math.isnan(t.value) for t in trials)
            if not (grid_done or nothing_finished):
                raise
        if trials and all(math.isnan(t.value) for t in trials):
            all_failed(trials)
        results = self.sweep_dir / "optimization_results.yaml"
        report_best(trials, results, self.objective, self.direction_used)
