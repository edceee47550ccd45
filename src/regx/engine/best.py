"""Which epoch's weights are the best so far, by the monitored validation metric."""

from __future__ import annotations

import copy
import math
from typing import Any

import torch

from regx.engine.state import TrainState
from regx.metrics.direction import lower_is_better


def monitor_key(row: dict[str, Any], monitor: str) -> tuple[float, ...]:
    """Larger is better; val_acc ties are broken by the lower validation loss."""
    if monitor == "val_acc":
        return (row["val_acc"], -row["val_loss"])
    return (-row[monitor],) if lower_is_better(monitor) else (row[monitor],)


class BestTracker:
    """Keeps a CPU copy of the best weights and the early-stopping count in `TrainState`."""

    def __init__(self, monitor: str) -> None:
        self.monitor = monitor
        self.weights: dict[str, torch.Tensor] | None = None

    def update(self, state: TrainState, row: dict[str, Any], model: torch.nn.Module) -> bool:
        """Record epoch `row` (already in `state`); True if it is the new best."""
        key = monitor_key(row, self.monitor)
        improved = all(math.isfinite(k) for k in key) and (
            state.best_key is None or key > tuple(state.best_key)
        )
        if improved:
            state.best_key, state.best_epoch, state.stale_epochs = key, row["epoch"], 0
            self.weights = {
                k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()
            }
        else:
            state.stale_epochs += 1
        return improved

    def load_into(self, model: torch.nn.Module) -> None:
        if self.weights is not None:
            model.load_state_dict(copy.deepcopy(self.weights))
