"""Experiment trackers fed by the engine (`logger=…`); metrics.csv is always written regardless.

The `logger` config node maps names to nodes; `regx.config` instantiates each node that has
a `_target_`, and the engine calls `start`, `log_epoch` and `log_summary` on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class RunLogger:
    """Base class: override what the tracker needs."""

    def start(self, run_dir: Path, config: dict[str, Any]) -> None:
        """Called once the run directory exists, with the resolved config."""

    def log_epoch(self, row: dict[str, Any]) -> None:
        """One row of metrics.csv (keys: epoch, lr, train_loss, …)."""

    def log_summary(self, summary: dict[str, Any], run_dir: Path) -> None:
        """The final summary (and the run's files, e.g. reliability.png, in `run_dir`)."""
