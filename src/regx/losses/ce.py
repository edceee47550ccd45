"""Cross-entropy: L = −log p_y with p = softmax(z); computed in float32 from the logits.

Under a mixing augmentation the loss is λ·L(z, y) + (1 − λ)·L(z, y') = −(λ·log p_y +
(1 − λ)·log p_y') = −Σ_c w_c·log p_c with w = λ·onehot(y) + (1 − λ)·onehot(y'): `mixed`
computes it from one log-softmax. (For cross-entropy, mixing the losses and mixing the
labels are the same function; the engine mixes losses, which is what other losses need.)
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
        # Σ_c (−w_c)·log p_c, w = λ·onehot(y) + (1 − λ)·onehot(y'): one product, whose
        # backward is one multiply (two gathers' would scatter into two fresh tensors); the
        # weights carry the minus sign, so there is no negation to run forward and backward
        own, partner = targets.unsqueeze(1), partner_targets.unsqueeze(1)
        neg_w = torch.zeros_like(logp)
        if isinstance(lam, torch.Tensor):
            lam_col = lam.to(logp.dtype).view(-1, 1)
            neg_w.scatter_(1, own, -lam_col).scatter_add_(1, partner, lam_col - 1)
        else:  # one λ: scalar scatters, no (N, 1) tensors of λ to build
            neg_w.scatter_(1, own, -lam).scatter_(1, partner, lam - 1, reduce="add")
        return (neg_w * logp).sum(dim=1)
