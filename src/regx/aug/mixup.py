"""mixup (Zhang et al., 2018): train on convex combinations of pairs of examples.

For a batch (x, y) and a uniformly random permutation π of its indices,

    x̃ = λ·x + (1 − λ)·x[π],        L = λ·L(ŷ, y) + (1 − λ)·L(ŷ, y[π]),

with λ ~ Uniform(0, 1) (`lam="uniform"`) or λ ~ Beta(α, α) (`lam="beta"`; α = 1 is the
uniform again, small α puts λ near 0 or 1, i.e. mild mixing). `mode="batch"` draws one λ
for the batch; `mode="elem"` draws one per sample, λ of shape (N,) broadcast over C×H×W
and over the per-sample losses. The losses are mixed, never the labels (see aug/base.py).

Each batch is mixed with probability `prob`. `off_epoch=k` mixes only the first k epochs
(0-based epoch < k) and trains the rest on clean data, as timm's `--mixup-off-epoch`;
null mixes every epoch.
"""

from __future__ import annotations

import logging
from typing import Literal

import torch

from regx.aug.base import (
    BetaSampler,
    Concentration,
    MixedBatch,
    Mixer,
    MixMode,
    OffEpoch,
    Probability,
    mix_this_batch,
    partner_images,
    random_partners,
)
from regx.params import check_params

log = logging.getLogger("regx")


def mix_inputs(x: torch.Tensor, lam: float | torch.Tensor, partners: torch.Tensor) -> torch.Tensor:
    """λ·x + (1 − λ)·x[π]; a per-sample λ (N,) is broadcast over the image dimensions.

    Computed as x[π] + λ·(x − x[π]) in one pass (torch.lerp), equal to the two-term form up
    to float rounding."""
    if isinstance(lam, torch.Tensor):
        lam = lam.view(-1, *([1] * (x.dim() - 1))).to(x.dtype)
    return torch.lerp(partner_images(x, partners), x, lam)


class Mixup(Mixer):
    name = "mixup"

    @check_params
    def __init__(
        self,
        lam: Literal["uniform", "beta"] = "beta",
        alpha: Concentration = 1.0,
        mode: MixMode = "batch",
        prob: Probability = 1.0,
        off_epoch: OffEpoch = None,
    ) -> None:
        if lam == "uniform" and alpha != 1.0:
            log.warning("aug.alpha=%s is ignored with aug.lam=uniform (that is Beta(1, 1))", alpha)
        self.lam = lam
        self.alpha = float(alpha) if lam == "beta" else None
        self.mode = mode
        self.prob = float(prob)
        self.off_epoch = off_epoch
        self._beta = BetaSampler(self.alpha) if lam == "beta" else None

    def active(self, epoch: int, num_epochs: int) -> bool:
        return self.off_epoch is None or epoch < self.off_epoch

    def sample_lam(self, n: int | None, device: torch.device) -> float | torch.Tensor:
        """One λ as a float drawn on the CPU (n None), or n of them drawn on `device`."""
        if n is None:
            if self.lam == "uniform":
                return float(torch.rand(()))
            return self._beta.sample(None, device)
        if self.lam == "uniform":
            return torch.rand(n, device=device)
        return self._beta.sample(n, device)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> MixedBatch | None:
        if not mix_this_batch(self.prob):
            return None
        n = x.shape[0]
        partners = random_partners(n, x.device)
        lam = self.sample_lam(None if self.mode == "batch" else n, x.device)
        return MixedBatch(
            inputs=mix_inputs(x, lam, partners),
            lam=lam,
            partner_targets=y.index_select(0, partners),
            partner_index=partners,
        )
