"""Focal loss (Lin et al. 2017): L = −(1 − p_y)^γ · log p_y, γ ≥ 0; γ = 0 is cross-entropy.

The factor (1 − p_y)^γ down-weights samples the model already gets right; Mukhoti et al.
(2020) show it also reduces over-confidence, which makes it a calibration baseline.
Computed from log p_y (1 − p_y = −expm1(log p_y)) in float32.
"""

from __future__ import annotations

from typing import Annotated

import torch
import torch.nn.functional as F

from regx.losses.base import Loss, target_log_prob
from regx.params import Range, check_params

# (1 − p)^γ has an infinite derivative at p = 1 when γ < 1; flooring 1 − p keeps the
# backward finite there (the factor multiplies log p = 0, so the value is unchanged).
_TINY = torch.finfo(torch.float32).tiny


class FocalLoss(Loss):
    @check_params
    def __init__(self, gamma: Annotated[float, Range(0)] = 2.0) -> None:
        super().__init__()
        self.gamma = float(gamma)

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.gamma == 0.0:
            return F.cross_entropy(outputs.float(), targets, reduction="none")
        log_p = target_log_prob(outputs, targets)
        focal_weight = (-torch.expm1(log_p)).clamp(min=_TINY).pow(self.gamma)
        return -focal_weight * log_p

    def extra_repr(self) -> str:
        return f"gamma={self.gamma:g}"
