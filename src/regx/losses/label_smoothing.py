"""Label smoothing (Szegedy et al. 2016): cross-entropy against (1−ε)·onehot(y) + ε/K.

L = (1−ε)·(−log p_y) + ε·(1/K)·Σ_j (−log p_j), ε ∈ [0, 1); ε = 0 is cross-entropy.
A common calibration baseline: the ε/K floor stops the logits from growing without bound.
"""

from __future__ import annotations

from typing import Annotated

import torch
import torch.nn.functional as F

from regx.losses.base import Loss
from regx.params import Range, check_params


class LabelSmoothing(Loss):
    @check_params
    def __init__(self, epsilon: Annotated[float, Range(0, 1, hi_open=True)] = 0.1) -> None:
        super().__init__()
        self.epsilon = float(epsilon)

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(
            outputs.float(), targets, reduction="none", label_smoothing=self.epsilon
        )

    def extra_repr(self) -> str:
        return f"epsilon={self.epsilon:g}"
