"""Cross-entropy: L = −log p_y with p = softmax(z); computed in float32 from the logits.

Under a mixing augmentation the loss is λ·L(z, y) + (1 − λ)·L(z, y') = −(λ·log p_y +
(1 − λ)·log p_y'): `mixed` computes it from one log-softmax.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from regx.losses.base import Loss


class CrossEntropy(Loss):
    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs.float(), targets, reduction="none")

    def mixed(
        self,
        outputs: torch.Tensor,
        targets: torch.Tensor,
        partner_targets: torch.Tensor,
        lam: float | torch.Tensor,
    ) -> torch.Tensor:
        """λ·L(z, y) + (1 − λ)·L(z, y') per sample; λ a float or one per sample (N,)."""
        if type(self).forward is not CrossEntropy.forward:  # a subclass has its own loss
            first, second = self(outputs, targets), self(outputs, partner_targets)
            return torch.lerp(second, first, lam)
        logp = F.log_softmax(outputs.float(), dim=1)
        first = logp.gather(1, targets.unsqueeze(1)).squeeze(1)
        second = logp.gather(1, partner_targets.unsqueeze(1)).squeeze(1)
        return -torch.lerp(second, first, lam)
