"""γ-cross-entropy: L = −log(γ + (1−γ)·p_y) / (1−γ), γ ∈ [0, 1].

γ = 0 is cross-entropy (−log p_y). As γ → 1 the loss tends to 1 − p_y (the article writes
−p_y, the same up to a constant; 1 − p_y keeps L continuous in γ); γ = 1 uses that limit.
The gradient with respect to the logits is −∇p_y / (γ + (1−γ)·p_y): a confidently wrong
sample (p_y → 0) no longer gets the unbounded push of cross-entropy, which is what
curbs over-confidence.

Numerics: everything starts from log p_y (log-softmax in float32), never from p_y, so
p_y down to 1e-30 (and below) gives finite values and gradients, under bf16 autocast too.
log(γ + (1−γ)p) is computed as logaddexp(log γ, log(1−γ) + log p), except when
q = (1−γ)(1−p) ≤ 1/2, where log1p(−q) keeps full relative precision of the small loss
of a confident correct sample (logaddexp would subtract two nearly equal numbers there).

Schedule: `schedule=constant` uses `gamma`; `linear` / `cosine` move γ from `gamma_start`
(first epoch) to `gamma_end` (last epoch), one value per epoch.

Threshold (`threshold=b`): the article's gradient form −w·log p_y with
w = stop_gradient(max(b, p_y / (γ + (1−γ)p_y))). Since ∇(−log p_y)·p_y/(γ+(1−γ)p_y) is
the plain form's gradient, b = 0 trains exactly like the plain form; b > 0 keeps at
least a fraction b of cross-entropy's gradient on hard samples. The value returned (and
logged as train_loss) is still the plain γ-CE, so runs with and without a threshold
report comparable losses.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import torch
import torch.nn.functional as F

from regx.losses.base import EpochContext, Loss, target_log_prob
from regx.params import Range, check_params


def log_mix_prob(log_p: torch.Tensor, gamma: float) -> torch.Tensor:
    """log(γ + (1−γ)·p) from log p, accurate for tiny p and for p near 1 (see module doc)."""
    if gamma == 0.0:
        return log_p
    if gamma == 1.0:
        return torch.zeros_like(log_p)
    q = (1.0 - gamma) * -torch.expm1(log_p)  # 1 − (γ + (1−γ)p)
    # The clamp keeps the unused log1p lanes finite, so torch.where's backward sees no inf·0.
    via_log1p = torch.log1p(-q.clamp(max=0.5))
    via_logaddexp = torch.logaddexp(
        torch.full_like(log_p, math.log(gamma)), log_p + math.log1p(-gamma)
    )
    return torch.where(q <= 0.5, via_log1p, via_logaddexp)


def gamma_ce_from_log_prob(log_p: torch.Tensor, gamma: float) -> torch.Tensor:
    """Per-sample γ-CE from log p_y; γ = 1 returns the limit 1 − p_y."""
    if gamma == 1.0:
        return -torch.expm1(log_p)
    return -log_mix_prob(log_p, gamma) / (1.0 - gamma)


def scheduled_gamma(
    schedule: str, gamma_start: float, gamma_end: float, epoch: int, num_epochs: int
) -> float:
    """γ for a 0-based `epoch`: `gamma_start` at the first epoch, `gamma_end` at the last."""
    t = epoch / (num_epochs - 1) if num_epochs > 1 else 1.0
    t = min(max(t, 0.0), 1.0)
    if schedule == "linear":
        shape = t
    elif schedule == "cosine":
        shape = (1.0 - math.cos(math.pi * t)) / 2.0
    else:
        return gamma_end
    if shape == 1.0:
        return gamma_end
    return gamma_start + (gamma_end - gamma_start) * shape


UNIT = Range(0, 1)  # γ and the threshold b are fractions


class GammaCrossEntropy(Loss):
    @check_params
    def __init__(
        self,
        gamma: Annotated[float, UNIT] = 0.1,
        schedule: Literal["constant", "linear", "cosine"] = "constant",
        gamma_start: Annotated[float, UNIT] = 0.0,
        gamma_end: Annotated[float | None, UNIT] = None,
        threshold: Annotated[float | None, UNIT] = None,
    ) -> None:
        super().__init__()
        gamma_end = gamma if gamma_end is None else gamma_end
        self.schedule = schedule
        self.gamma_start = float(gamma_start)
        self.gamma_end = float(gamma if schedule == "constant" else gamma_end)
        self.threshold = None if threshold is None else float(threshold)
        initial = self.gamma_end if schedule == "constant" else self.gamma_start
        # The current γ lives in a float64 buffer so checkpoints restore it exactly; the
        # Python copy lets forward() branch on it without a host sync per step.
        self.register_buffer("current_gamma", torch.tensor(initial, dtype=torch.float64))
        self._gamma = initial
        self.register_load_state_dict_post_hook(_sync_gamma_after_load)

    @property
    def gamma(self) -> float:
        """The γ in use now."""
        return self._gamma

    def set_gamma(self, gamma: float) -> None:
        self._gamma = float(gamma)
        self.current_gamma.fill_(self._gamma)

    def start_epoch(self, ctx: EpochContext) -> None:
        # A pure function of the epoch: calling it again (after a resume) sets the same γ.
        self.set_gamma(
            scheduled_gamma(
                self.schedule, self.gamma_start, self.gamma_end, ctx.epoch, ctx.num_epochs
            )
        )

    def epoch_stats(self) -> dict[str, float]:
        return {"gamma": self._gamma}

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        gamma = self._gamma
        if gamma == 0.0:
            # Exactly CrossEntropy's computation, so γ = 0 reproduces a CE run bit for bit
            # (the threshold weight max(b, 1) is then 1 as well).
            return F.cross_entropy(outputs.float(), targets, reduction="none")
        log_p = target_log_prob(outputs, targets)
        loss = gamma_ce_from_log_prob(log_p, gamma)
        if self.threshold is None:
            return loss
        weight = torch.exp(log_p - log_mix_prob(log_p, gamma)).clamp(min=self.threshold)
        weight = weight.detach()
        # Value: the plain loss; gradient: −w·∇log p_y.
        return loss.detach() - weight * (log_p - log_p.detach())

    def extra_repr(self) -> str:
        return (
            f"gamma={self._gamma:g}, schedule={self.schedule}, "
            f"gamma_start={self.gamma_start:g}, gamma_end={self.gamma_end:g}, "
            f"threshold={self.threshold}"
        )


def _sync_gamma_after_load(module: GammaCrossEntropy, incompatible_keys: object) -> None:
    module._gamma = float(module.current_gamma)
