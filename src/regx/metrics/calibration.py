"""Accuracy and calibration of predicted class probabilities.

Notation: p ∈ [0, 1]^{N×K} rows summing to 1, labels y, top-label confidence
c_i = max_k p_ik, prediction ŷ_i = argmax_k p_ik, optional non-negative weights w_i
(importance weights; uniform when absent).

- accuracy = Σ w·[ŷ = y] / Σ w
- NLL = −Σ w·log p_iy / Σ w  (p clamped at 1e-12)
- Brier = Σ w·Σ_k (p_ik − [k = y_i])² / Σ w   (sum over classes, range [0, 2])
- ECE with B equal-width bins of c: bins (lo, hi], the first closed at 0, so c = 1.0
  falls in the last bin; ECE = Σ_b (W_b/W)·|acc_b − conf_b|.
"""

from __future__ import annotations

import torch


def _weights(n: int, weights: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    if weights is None:
        return torch.ones(n, dtype=like.dtype, device=like.device)
    return weights.to(dtype=like.dtype, device=like.device)


def bin_index(confidence: torch.Tensor, n_bins: int) -> torch.Tensor:
    """Bin of each confidence for `n_bins` equal-width bins (lo, hi], first bin [0, 1/B].

    The bin is ceil(c·B) − 1, clamped to [0, B − 1]; c = 0 goes to bin 0, c = 1 to bin B − 1.
    """
    return (torch.ceil(confidence * n_bins).long() - 1).clamp_(0, n_bins - 1)


def reliability_bins(
    probs: torch.Tensor,
    labels: torch.Tensor,
    n_bins: int = 15,
    weights: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Per-bin weight (count), mean confidence and accuracy for the reliability diagram."""
    conf, pred = probs.max(dim=1)
    correct = (pred == labels).to(probs.dtype)
    w = _weights(len(labels), weights, probs)
    b = bin_index(conf, n_bins)
    zeros = torch.zeros(n_bins, dtype=probs.dtype, device=probs.device)
    weight = zeros.index_add(0, b, w)
    conf_sum = zeros.index_add(0, b, w * conf)
    correct_sum = zeros.index_add(0, b, w * correct)
    safe = weight.clamp_min(torch.finfo(probs.dtype).tiny)
    return {"weight": weight, "confidence": conf_sum / safe, "accuracy": correct_sum / safe}


def expected_calibration_error(
    probs: torch.Tensor,
    labels: torch.Tensor,
    n_bins: int = 15,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    bins = reliability_bins(probs, labels, n_bins, weights)
    total = bins["weight"].sum()
    return (bins["weight"] * (bins["accuracy"] - bins["confidence"]).abs()).sum() / total


def basic_metrics(
    probs: torch.Tensor,
    labels: torch.Tensor,
    n_bins: int = 15,
    weights: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """acc, nll, brier, ece as 0-dim tensors on the input's device (no host sync)."""
    w = _weights(len(labels), weights, probs)
    total = w.sum()
    _conf, pred = probs.max(dim=1)
    p_true = probs.gather(1, labels[:, None]).squeeze(1)
    onehot = torch.nn.functional.one_hot(labels, probs.shape[1]).to(probs.dtype)
    return {
        "acc": (w * (pred == labels).to(probs.dtype)).sum() / total,
        "nll": -(w * p_true.clamp_min(1e-12).log()).sum() / total,
        "brier": (w * ((probs - onehot) ** 2).sum(dim=1)).sum() / total,
        "ece": expected_calibration_error(probs, labels, n_bins, weights),
    }


def calibration_metrics(
    probs: torch.Tensor,
    labels: torch.Tensor,
    n_bins: int = 15,
    weights: torch.Tensor | None = None,
) -> dict[str, float]:
    """Every scalar metric of a set of predictions, as Python floats (float64 math)."""
    p = probs.detach().to("cpu", torch.float64)
    y = labels.detach().cpu()
    w = None if weights is None else weights.detach().to("cpu", torch.float64)
    if len(y) == 0:
        return {}
    out = {k: float(v) for k, v in basic_metrics(p, y, n_bins, w).items()}
    conf = p.max(dim=1).values
    ww = _weights(len(y), w, p)
    out["mean_confidence"] = float((ww * conf).sum() / ww.sum())
    out["overconfidence"] = out["mean_confidence"] - out["acc"]
    out["n"] = len(y)
    return out
