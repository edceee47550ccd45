"""`RunSpec`: everything one run needs, already validated and instantiated by `regx.config`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from regx.aug.base import Mixer
from regx.data.base import DatasetSource
from regx.engine.settings import AnalysisSettings, TrainerSettings
from regx.losses.base import Loss
from regx.metrics.between import BetweenSettings
from regx.models.base import Classifier
from regx.splits.base import SplitStrategy

ModelFactory = Callable[..., Classifier]  # (num_classes=, in_channels=, image_size=) -> model


@dataclass
class RunSpec:
    seed: int
    dataset: DatasetSource
    model_factory: ModelFactory
    loss: Loss
    split: SplitStrategy
    trainer: TrainerSettings
    mixer: Mixer | None = None
    calibration_bins: int = 15
    analysis: AnalysisSettings = field(default_factory=AnalysisSettings)
    between: BetweenSettings = field(default_factory=BetweenSettings)
    # Analysis only (`track_test`): log test accuracy per epoch; never used to select models.
    track_test: bool = False
    # The resolved config (plain containers) and the command-line overrides, for the record.
    config: dict[str, Any] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)
    loggers: list[Any] = field(default_factory=list)
    # Side effects at fixed points of the loop (regx.engine.hooks.RunHook), e.g. pruning.
    hooks: list[Any] = field(default_factory=list)
