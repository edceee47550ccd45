"""Cross-entropy: L = −log p_y with p = softmax(z); computed in float32 from the logits."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from regx.losses.base import Loss


class CrossEntropy(Loss):
    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs.float(), targets, reduction="none")
