"""AM-Softmax (additive margin softmax, Wang et al. 2018) with a cosine head.

Head: features f and class weights w_j are L2-normalized, and the head outputs
s·cos θ_j with cos θ_j = ⟨f/‖f‖, w_j/‖w_j‖⟩ — no margin, so evaluation, temperature
scaling and calibration apply softmax to it like to any head: p = softmax(s·cos θ).

Loss: cross-entropy on the margin logits s·(cos θ_j − m·[j = y]), i.e. the head's output
minus s·m at the target column:

    L = −log( e^{s(cos θ_y − m)} / (e^{s(cos θ_y − m)} + Σ_{j≠y} e^{s cos θ_j}) ).

With m = 0 it is plain normalized-softmax cross-entropy at scale s.

Margin (`margin`):
- `fixed`: m is the configured `m` throughout.
- `auto`: m = 0 for the first `margin_warmup` epochs; then, at the start of that epoch
  and every `margin_every` epochs after, m is set to the mean class diameter of the
  L2-normalized training features (embedded by the current model, eval mode, no
  augmentation). With z_i = f_i/‖f_i‖, class centre μ_c = mean of z_i over class c and
  class radius r_c = mean over class c of ‖z_i − μ_c‖, the diameter of a pair of classes
  (a, b) is r_a + r_b (the average distance of samples to their class centre, summed
  over the two classes of the pair); averaged over all pairs of classes this is
  2·mean_c r_c. As the z_i are unit vectors, mean ‖z_i − μ_c‖² = 1 − ‖μ_c‖², so
  r_c ≤ √(1 − ‖μ_c‖²) ≤ 1 (Jensen) and m stays in [0, 2], the range where a margin
  between cosines can be met at all (the clamp to 2 only guards against rounding).
"""

from __future__ import annotations

import logging
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from torch import nn

from regx.losses.base import EpochContext, Loss
from regx.params import Range, check_params

log = logging.getLogger("regx")

MAX_MARGIN = 2.0  # cos θ_y − cos θ_j ≤ 2: a larger margin can never be satisfied


class CosineHead(nn.Module):
    """s·cos θ_j between the L2-normalized features and the L2-normalized class weights."""

    def __init__(self, feature_dim: int, num_classes: int, scale: float) -> None:
        super().__init__()
        self.scale = float(scale)
        self.weight = nn.Parameter(torch.empty(num_classes, feature_dim))
        nn.init.normal_(self.weight, std=feature_dim**-0.5)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        # float32 even under autocast: bf16 cosines carry ~3 digits, which s = 30 would
        # turn into logit errors of ~0.1.
        with torch.autocast(device_type=features.device.type, enabled=False):
            cos = F.linear(
                F.normalize(features.float(), dim=1), F.normalize(self.weight.float(), dim=1)
            )
        return self.scale * cos

    def extra_repr(self) -> str:
        return f"in={self.weight.shape[1]}, classes={self.weight.shape[0]}, s={self.scale:g}"


def mean_class_diameter(features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """2·mean_c r_c of the L2-normalized features (see the module doc); a 0-dim tensor."""
    z = F.normalize(features.float(), dim=1)
    _, cls, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    n_cls = counts.shape[0]
    centres = torch.zeros(n_cls, z.shape[1], device=z.device).index_add_(0, cls, z)
    centres = centres / counts[:, None]
    dist = (z - centres[cls]).norm(dim=1)
    radius = torch.zeros(n_cls, device=z.device).index_add_(0, cls, dist) / counts
    return 2.0 * radius.mean()


class AMSoftmax(Loss):
    @check_params
    def __init__(
        self,
        s: Annotated[float, Range(0, None, lo_open=True)] = 30.0,
        m: Annotated[float, Range(0, MAX_MARGIN)] = 0.35,
        margin: Literal["fixed", "auto"] = "fixed",
        margin_warmup: Annotated[int, Range(0, integer=True, note="epochs")] = 5,
        margin_every: Annotated[int, Range(1, integer=True, note="epochs")] = 5,
    ) -> None:
        super().__init__()
        self.s = float(s)
        self.m = float(m)
        self.margin_mode = margin
        self.margin_warmup = margin_warmup
        self.margin_every = margin_every
        # The margin in use: a buffer, so checkpoints keep an estimated margin and the
        # loss reads it on the device without a host sync.
        initial = self.m if margin == "fixed" else 0.0
        self.register_buffer("margin", torch.tensor(initial, dtype=torch.float32))

    def make_head(self, feature_dim: int, num_classes: int) -> nn.Module:
        return CosineHead(feature_dim, num_classes, self.s)

    def start_epoch(self, ctx: EpochContext) -> None:
        if self.margin_mode != "auto":
            return
        if ctx.epoch == 0 and self.margin_warmup >= ctx.num_epochs:
            log.warning(
                "loss.margin=auto: margin_warmup=%d ≥ %d epochs, so the margin stays 0",
                self.margin_warmup,
                ctx.num_epochs,
            )
        if ctx.epoch < self.margin_warmup:
            self.margin.zero_()
        elif (ctx.epoch - self.margin_warmup) % self.margin_every == 0:
            # Depends only on the weights at the start of this epoch, which a resumed run
            # restores, so re-estimating after a resume gives the same margin.
            features, labels = ctx.embed_train()
            self.margin.copy_(mean_class_diameter(features, labels).clamp(max=MAX_MARGIN))

    def epoch_stats(self) -> dict[str, float]:
        return {"margin": float(self.margin)}

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        scaled_cos = outputs.float()
        at_target = F.one_hot(targets, scaled_cos.shape[1]).to(scaled_cos.dtype)
        margin_logits = scaled_cos - (self.s * self.margin) * at_target
        return F.cross_entropy(margin_logits, targets, reduction="none")

    def extra_repr(self) -> str:
        return (
            f"s={self.s:g}, m={float(self.margin):g}, margin={self.margin_mode}, "
            f"margin_warmup={self.margin_warmup}, margin_every={self.margin_every}"
        )
