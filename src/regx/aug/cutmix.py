"""CutMix (Yun et al., 2019): paste a random box of the partner image, mix the losses by area.

For a batch (x, y) of H×W images and a uniformly random permutation π of its indices,
draw λ₀ ~ Beta(α, α) and a box of side round(H·√(1 − λ₀)) × round(W·√(1 − λ₀)), i.e. of
area ≈ (1 − λ₀)·H·W, whose centre pixel (cy, cx) is uniform over the image; the box spans
rows [cy − h//2, cy − h//2 + h) and likewise columns, clipped to the image. Then

    x̃ = x outside the box, x[π] inside it,
    λ = 1 − (box area after clipping) / (H·W),    L = λ·L(ŷ, y) + (1 − λ)·L(ŷ, y[π]),

so λ is exactly the fraction of x̃'s pixels that come from x (clipping shrinks the box
near the edges; λ is recomputed from the box actually pasted). α = 1 is the paper's
default (λ₀ uniform). `mode="batch"` draws one λ₀ and one box for the batch (the paper's
implementation), from the CPU generator; `mode="elem"` one λ₀ and one box per sample, on
the batch's device (λ then has shape (N,)). The losses are mixed, never the labels.

Each batch is mixed with probability `prob`; `off_epoch=k` mixes only the first k epochs.
"""

from __future__ import annotations

import math

import torch

from regx.aug.base import (
    BetaSampler,
    Concentration,
    MixedBatch,
    Mixer,
    MixMode,
    OffEpoch,
    Probability,
    box_mask,
    box_span,
    mix_this_batch,
    partner_images,
    random_partners,
)
from regx.params import check_params


def paste_box_batch(
    x: torch.Tensor, partners: torch.Tensor, lam0: float
) -> tuple[torch.Tensor, float]:
    """One box for the whole batch (centre from the CPU generator): (x̃, exact λ)."""
    h, w = x.shape[-2:]
    cut = math.sqrt(1.0 - lam0)
    cy, cx = _centre(h, w)
    top, bottom = box_span(cy, round(h * cut), h)
    left, right = box_span(cx, round(w * cut), w)
    mixed = x.clone()
    mixed[..., top:bottom, left:right] = x[partners, ..., top:bottom, left:right]
    return mixed, 1.0 - (bottom - top) * (right - left) / (h * w)


def _centre(h: int, w: int) -> tuple[int, int]:
    """A uniform pixel (row, column) from the CPU generator."""
    return int(torch.randint(0, h, ())), int(torch.randint(0, w, ()))


def paste_box_elem(
    x: torch.Tensor, partners: torch.Tensor, lam0: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One box per sample, drawn on x's device: (x̃, exact λ (N,))."""
    n, h, w = x.shape[0], *x.shape[-2:]
    cut = (1.0 - lam0).clamp_min(0).sqrt()
    cy = torch.randint(0, h, (n,), device=x.device)
    cx = torch.randint(0, w, (n,), device=x.device)
    top, bottom = box_span(cy, (h * cut).round().long(), h)
    left, right = box_span(cx, (w * cut).round().long(), w)
    inside = box_mask(top, bottom, left, right, h, w)  # (N, H, W)
    mixed = torch.where(inside[:, None], partner_images(x, partners), x)
    area = ((bottom - top) * (right - left)).to(torch.float32)
    return mixed, 1.0 - area / (h * w)


class CutMix(Mixer):
    name = "cutmix"

    @check_params
    def __init__(
        self,
        alpha: Concentration = 1.0,
        mode: MixMode = "batch",
        prob: Probability = 1.0,
        off_epoch: OffEpoch = None,
    ) -> None:
        self.alpha = float(alpha)
        self.mode = mode
        self.prob = float(prob)
        self.off_epoch = off_epoch
        self._beta = BetaSampler(alpha)

    def active(self, epoch: int, num_epochs: int) -> bool:
        return self.off_epoch is None or epoch < self.off_epoch

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> MixedBatch | None:
        if not mix_this_batch(self.prob):
            return None
        return self.mix(x, y)

    def mix(self, x: torch.Tensor, y: torch.Tensor) -> MixedBatch:
        """Always mix (no `prob` coin): what `__call__` does once the coin says so."""
        n = x.shape[0]
        partners = random_partners(n, x.device)
        if self.mode == "batch":
            mixed, lam = paste_box_batch(x, partners, self._beta.sample(None, x.device))
        else:
            mixed, lam = paste_box_elem(x, partners, self._beta.sample(n, x.device))
        return MixedBatch(
            inputs=mixed,
            lam=lam,
            partner_targets=y.index_select(0, partners),
            partner_index=partners,
        )
