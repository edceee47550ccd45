"""regx: an experiment runner for regularization research in image classification.

Importing this package is cheap (no torch); the heavy modules load on demand.
`regx.load_run(run_dir)` gives a finished run's model (regx.app.loaded_run).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from regx.app.loaded_run import LoadedRun

__version__ = "0.1.0"


def load_run(run_dir: Any, device: str = "cpu") -> LoadedRun:
    """A finished run's best model: `.predict(images)`, `.embed(images)` for uint8 images."""
    from regx.app.loaded_run import load_run as _load_run

    return _load_run(run_dir, device)
