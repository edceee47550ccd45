"""The validation-split contract.

A `SplitStrategy` is called with the training images and labels and the test *inputs*
(never the test labels: the signature has no place for them) and returns a `Split`:
indices into the training set for training and validation (validation indices may
repeat, e.g. when drawn with replacement), optional per-item weights for validation
metrics and the training loss, and diagnostics for summary.json under `split`.

`clean_val` (every split's YAML, default false): under `dataset.label_noise` the
validation images keep their noisy labels, as a practitioner's would; with
`clean_val=true` they are scored against their true labels instead (an analysis option:
model selection then sees information a real noisy dataset does not give).
`validation_labels` applies it; the split itself is drawn the same way either way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from regx.errors import check


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
    clean_val: bool = False

    def set_clean_val(self, clean_val: bool) -> None:
        check(isinstance(clean_val, bool), "clean_val", clean_val, "must be true or false")
        self.clean_val = clean_val

    def validation_labels(
        self, train_y: torch.Tensor, train_true_y: torch.Tensor, val_idx: torch.Tensor
    ) -> torch.Tensor:
        """The labels validation scores against: the given (possibly noisy) training labels,
        or with `clean_val` the true ones (`ImageData.train_true_y`)."""
        return (train_true_y if self.clean_val else train_y)[val_idx]

    def __call__(
        self, train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, seed: int
    ) -> Split:
        raise TypeError(f"{type(self).__name__} must implement __call__()")
