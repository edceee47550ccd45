"""Temperature scaling (Guo et al., 2017): one scalar T > 0, probabilities softmax(z / T).

T minimizes the (optionally importance-weighted) validation NLL

    NLL(T) = Σ_i w_i·[logsumexp_k(z_ik / T) − z_iy / T] / Σ_i w_i,

a convex function of β = 1/T, with

    NLL′(β) = Σ_i w_i·(E_{p_i}[z_i] − z_iy) / Σ_i w_i,   NLL″(β) = Σ_i w_i·Var_{p_i}[z_i] / Σ_i w_i ≥ 0,

p_i = softmax(β·z_i). The minimizer over β ∈ [1/t_max, 1/t_min] is a bound where NLL′ has
one sign on the whole interval, else the root of NLL′, found in float64 by Newton's method
kept inside a bracket that shrinks with every step (bisection where Newton would leave
it): exact to float64 rounding, where a general optimizer stops once the loss changes by
less than its tolerance.

When is the fit ill-posed? If no validation example (with w > 0) has another logit
strictly above its true-class logit, every term of NLL(T) decreases as T → 0: there is no
minimizer, and following the slope only sharpens predictions that were never seen to be
wrong (on small, easy validation sets this gave T ≈ 0.03 and a worse test NLL). Then T is
kept at 1 (no scaling) and the fit says so. A fit that ends worse than T = 1 on the data it
was fitted on also falls back to T = 1, so temperature scaling never increases the
validation NLL.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

T_MIN = 0.05
T_MAX = 20.0


@dataclass(frozen=True)
class TemperatureFit:
    """The fitted temperature and how it was obtained.

    status: `fitted` (interior minimizer), `at_bound` (the minimizer lies at or beyond
    t_min/t_max), `no_errors` (validation has no errors: T kept at 1), `no_improvement`
    (the optimizer did not beat T = 1: T kept at 1), `empty` (no validation data).
    """

    temperature: float
    status: str
    val_nll_before: float
    val_nll_after: float
    t_min: float = T_MIN
    t_max: float = T_MAX

    @property
    def note(self) -> str:
        """One sentence for report.md."""
        t = self.temperature
        if self.status == "fitted":
            return "the minimizer of the validation NLL."
        if self.status == "at_bound":
            return (
                f"the validation NLL keeps falling beyond the search range "
                f"[{self.t_min:g}, {self.t_max:g}]; T is held at the bound {t:.4g}."
            )
        if self.status == "no_errors":
            return (
                "the validation set has no misclassified example, so its NLL falls "
                "without limit as T → 0 and has no minimizer; T is kept at 1 (no scaling)."
            )
        if self.status == "no_improvement":
            return "the fit did not improve the validation NLL over T = 1; T is kept at 1."
        return "there is no validation data to fit on; T is kept at 1."

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "note": self.note}


def scaled_nll(
    logits: torch.Tensor,
    labels: torch.Tensor,
    weights: torch.Tensor | None,
    temperature: torch.Tensor | float,
) -> torch.Tensor:
    """Σ w·CE(z / T, y) / Σ w (mean cross-entropy when `weights` is None)."""
    per = F.cross_entropy(logits / temperature, labels, reduction="none")
    if weights is None:
        return per.mean()
    return (weights * per).sum() / weights.sum()


def has_errors(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None) -> bool:
    """Whether some example (with w > 0) has another logit strictly above its true logit."""
    true = logits.gather(1, labels[:, None])
    wrong = (logits > true).any(dim=1)
    if weights is not None:
        wrong &= weights > 0
    return bool(wrong.any())


def fit_temperature(
    logits: torch.Tensor,
    labels: torch.Tensor,
    weights: torch.Tensor | None = None,
    t_min: float = T_MIN,
    t_max: float = T_MAX,
) -> TemperatureFit:
    """The T in [t_min, t_max] minimizing NLL of `logits / T` on (`logits`, `labels`, `weights`)."""
    if len(labels) == 0:
        return TemperatureFit(1.0, "empty", math.nan, math.nan, t_min, t_max)
    z = logits.detach().to("cpu", torch.float64)
    y = labels.detach().to("cpu", torch.long)
    w = None if weights is None else weights.detach().to("cpu", torch.float64)
    with torch.no_grad():
        nll_one = float(scaled_nll(z, y, w, 1.0))
    if not has_errors(z, y, w):
        return TemperatureFit(1.0, "no_errors", nll_one, nll_one, t_min, t_max)

    beta, at_bound = minimizing_beta(z, y, w, 1.0 / t_max, 1.0 / t_min)
    t = 1.0 / beta
    with torch.no_grad():
        nll_t = float(scaled_nll(z, y, w, t))
    if not (math.isfinite(nll_t) and nll_t <= nll_one + 1e-12 * abs(nll_one)):  # float rounding
        return TemperatureFit(1.0, "no_improvement", nll_one, nll_one, t_min, t_max)
    return TemperatureFit(t, "at_bound" if at_bound else "fitted", nll_one, nll_t, t_min, t_max)


def nll_slope(
    z: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None, beta: float
) -> tuple[float, float]:
    """(NLL′(β), NLL″(β)) of the module docstring."""
    p = torch.softmax(beta * z, dim=1)
    mean = (p * z).sum(dim=1)
    first = mean - z.gather(1, y[:, None]).squeeze(1)
    second = (p * (z - mean[:, None]) ** 2).sum(dim=1)
    if w is None:
        return float(first.mean()), float(second.mean())
    return float((w * first).sum() / w.sum()), float((w * second).sum() / w.sum())


def minimizing_beta(
    z: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None, lo: float, hi: float
) -> tuple[float, bool]:
    """(β in [lo, hi] minimizing NLL, whether it is a bound): see the module docstring."""
    if nll_slope(z, y, w, lo)[0] >= 0:
        return lo, True
    if nll_slope(z, y, w, hi)[0] <= 0:
        return hi, True
    beta = min(max(1.0, lo), hi)
    for _ in range(200):
        slope, curvature = nll_slope(z, y, w, beta)
        if slope == 0:
            break
        lo, hi = (beta, hi) if slope < 0 else (lo, beta)  # the root stays inside [lo, hi]
        newton = beta - slope / curvature if curvature > 0 else math.nan
        previous, beta = beta, newton if lo < newton < hi else 0.5 * (lo + hi)
        if abs(beta - previous) <= 1e-15 * beta or hi - lo <= 1e-15 * hi:
            break
    return beta, False
