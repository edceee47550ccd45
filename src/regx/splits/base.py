"""The validation-split contract.

A `SplitStrategy` is called with the training images and labels and the test *inputs*
(never the test labels: the signature has no place for them) and returns a `Split`:
indices into the training set for training and validation (validation indices may
repeat, e.g. when drawn with replacement), optional per-item weights for validation
metrics and the training loss, and diagnostics for summary.json under `split`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


@dataclass
class Split:
    train_idx: torch.Tensor
    val_idx: torch.Tensor
    val_weight: torch.Tensor | None = None
    train_weight: torch.Tensor | None = None  # aligned with train_idx
    info: dict[str, Any] = field(default_factory=dict)
    # Arrays for the split's diagnostic plot (e.g. discriminator scores), not in summary.json.
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


class SplitStrategy:
    def __call__(
        self, train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, seed: int
    ) -> Split:
        raise TypeError(f"{type(self).__name__} must implement __call__()")
