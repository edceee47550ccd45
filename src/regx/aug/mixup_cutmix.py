"""Mixup or CutMix, switched per batch (the common timm recipe).

Each mixed batch is, with probability `switch_prob`, a CutMix batch (box from x[π], λ the
kept area, λ₀ ~ Beta(`cutmix_alpha`, `cutmix_alpha`); see aug/cutmix.py), and otherwise a
mixup batch (x̃ = λ·x + (1 − λ)·x[π], λ ~ Beta(`mixup_alpha`, `mixup_alpha`); see
aug/mixup.py). Either way the loss is λ·L(ŷ, y) + (1 − λ)·L(ŷ, y[π]). timm's defaults are
mixup_alpha = 0.8, cutmix_alpha = 1, switch_prob = 0.5. `mode` (batch | elem), `prob`
and `off_epoch` apply to both. Random draws: whether to mix, then which of the two (both
from the CPU generator), then the chosen mixer's own draws.
"""

from __future__ import annotations

import torch

from regx.aug.base import (
    Concentration,
    MixedBatch,
    Mixer,
    MixMode,
    OffEpoch,
    Probability,
    mix_this_batch,
)
from regx.aug.cutmix import CutMix
from regx.aug.mixup import Mixup
from regx.params import check_params


class MixupCutMix(Mixer):
    name = "mixup_cutmix"

    @check_params
    def __init__(
        self,
        mixup_alpha: Concentration = 0.8,
        cutmix_alpha: Concentration = 1.0,
        switch_prob: Probability = 0.5,
        mode: MixMode = "batch",
        prob: Probability = 1.0,
        off_epoch: OffEpoch = None,
    ) -> None:
        self.mixup_alpha = float(mixup_alpha)
        self.cutmix_alpha = float(cutmix_alpha)
        self.switch_prob = float(switch_prob)
        self.mode = mode
        self.prob = float(prob)
        self.off_epoch = off_epoch
        # the two mixers always mix when asked: the coins above decide
        self._mixup = Mixup(lam="beta", alpha=mixup_alpha, mode=mode, prob=1.0)
        self._cutmix = CutMix(alpha=cutmix_alpha, mode=mode, prob=1.0)

    def active(self, epoch: int, num_epochs: int) -> bool:
        return self.off_epoch is None or epoch < self.off_epoch

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> MixedBatch | None:
        if not mix_this_batch(self.prob):
            return None
        use_cutmix = self.switch_prob >= 1.0 or (
            self.switch_prob > 0.0 and bool(torch.rand(()) < self.switch_prob)
        )
        return self._cutmix.mix(x, y) if use_cutmix else self._mixup(x, y)
