"""Accuracy, calibration and selective-prediction metrics of predicted class probabilities.

Notation: p ∈ [0, 1]^{N×K} (rows normally sum to 1), labels y, top-label confidence
c_i = max_k p_ik, prediction ŷ_i = argmax_k p_ik (the first maximum on ties), optional
non-negative weights w_i (importance weights; all 1 when absent), W = Σ w.

- accuracy = Σ w·[ŷ = y] / W
- NLL = −Σ w·log max(p_iy, 1e-12) / W
- Brier = Σ w·Σ_k (p_ik − [k = y_i])² / W   (summed over classes, range [0, 2])
- mean confidence = Σ w·c / W;  over-confidence = mean confidence − accuracy
- ECE: B equal-width bins of c, bin b = (b/B, (b+1)/B], the first bin closed at 0, so
  c = 1.0 falls in the last bin. With W_b the weight in bin b, acc_b and conf_b the
  weighted accuracy and mean confidence there: ECE = Σ_b (W_b/W)·|acc_b − conf_b|.
- MCE = max over non-empty equal-width bins of |acc_b − conf_b|.
- ACE (adaptive ECE): the same sum over B equal-mass bins. Example i goes to bin
  min(B − 1, ⌊B·M_i/W⌋), where M_i = Σ_{j: c_j < c_i} w_j is the weight strictly below
  its confidence: without ties and with N divisible by B every bin holds N/B examples;
  tied confidences always share a bin, so the result does not depend on sort order.
- classwise ECE (Kull et al., 2019): for each class k, bin p_ik in the equal-width bins
  and compare the mean p_ik with the frequency of y = k per bin:
  ECE_k = Σ_b (W_bk/W)·|freq_bk − mean_bk|; classwise ECE = (1/K)·Σ_k ECE_k.
- AURC: area under the risk–coverage curve of selective prediction by confidence.
  Keeping the examples with c ≥ t has risk r(t) = Σ_{c_j ≥ t} w_j·[ŷ_j ≠ y_j] / Σ_{c_j ≥ t} w_j;
  AURC = Σ_i w_i·r(c_i) / W (without ties and weights: the mean over coverages i/N of the
  error rate of the i most confident examples; tied confidences are accepted together).
"""

from __future__ import annotations

import torch


def _weights(n: int, weights: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    if weights is None:
        return torch.ones(n, dtype=like.dtype, device=like.device)
    return weights.to(dtype=like.dtype, device=like.device)


def bin_index(confidence: torch.Tensor, n_bins: int) -> torch.Tensor:
    """Equal-width bin of each confidence: bin b = (b/B, (b+1)/B], bin 0 = [0, 1/B].

    The bin is the number of interior edges 1/B, …, (B−1)/B strictly below c. The edges
    are the float64 numbers b/B and c is compared in float64 (float32 on MPS, which has no
    float64), so c = 1.0 lands in bin B − 1 and a c exactly on an edge in the bin below it.
    """
    dtype = torch.float32 if confidence.device.type == "mps" else torch.float64
    c = confidence.to(dtype)
    interior = torch.arange(1, n_bins, dtype=dtype, device=c.device) / n_bins
    return torch.searchsorted(interior, c.contiguous(), right=False)


def reliability_bins(
    probs: torch.Tensor,
    labels: torch.Tensor,
    n_bins: int = 15,
    weights: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Per equal-width bin: weight (the count when unweighted), mean confidence, accuracy.

    Empty bins have weight 0 and confidence = accuracy = 0.
    """
    conf, pred = probs.max(dim=1)
    correct = (pred == labels).to(probs.dtype)
    w = _weights(len(labels), weights, probs)
    return _binned(bin_index(conf, n_bins), n_bins, w, conf, correct)


def _binned(
    index: torch.Tensor,
    n_bins: int,
    w: torch.Tensor,
    conf: torch.Tensor,
    correct: torch.Tensor,
) -> dict[str, torch.Tensor]:
    zeros = torch.zeros(n_bins, dtype=conf.dtype, device=conf.device)
    weight = zeros.index_add(0, index, w)
    conf_sum = zeros.index_add(0, index, w * conf)
    correct_sum = zeros.index_add(0, index, w * correct)
    # Empty bins: 0/tiny = 0, and they carry weight 0 in every sum below.
    safe = weight.clamp_min(torch.finfo(conf.dtype).tiny)
    return {"weight": weight, "confidence": conf_sum / safe, "accuracy": correct_sum / safe}


def _gap_sum(bins: dict[str, torch.Tensor]) -> torch.Tensor:
    total = bins["weight"].sum()
    return (bins["weight"] * (bins["accuracy"] - bins["confidence"]).abs()).sum() / total


def expected_calibration_error(
    probs: torch.Tensor,
    labels: torch.Tensor,
    n_bins: int = 15,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """ECE = Σ_b (W_b/W)·|acc_b − conf_b| over `n_bins` equal-width bins (module docstring)."""
    return _gap_sum(reliability_bins(probs, labels, n_bins, weights))


def maximum_calibration_error(
    probs: torch.Tensor,
    labels: torch.Tensor,
    n_bins: int = 15,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """MCE = max over non-empty equal-width bins of |acc_b − conf_b|."""
    bins = reliability_bins(probs, labels, n_bins, weights)
    gaps = (bins["accuracy"] - bins["confidence"]).abs()
    return torch.where(bins["weight"] > 0, gaps, torch.zeros_like(gaps)).max()


def adaptive_calibration_error(
    probs: torch.Tensor,
    labels: torch.Tensor,
    n_bins: int = 15,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """ACE: ECE over equal-mass bins, bin of example i = min(B−1, ⌊B·M_i/W⌋).

    M_i is the weight of the examples with confidence strictly below c_i, so ties share a bin.
    """
    conf, pred = probs.max(dim=1)
    correct = (pred == labels).to(probs.dtype)
    w = _weights(len(labels), weights, probs)
    sorted_conf, order = conf.sort(stable=True)
    mass_before = torch.cumsum(w[order], 0) - w[order]  # exclusive prefix sums, sorted order
    first_of_tie = torch.searchsorted(sorted_conf, sorted_conf, right=False)
    below = torch.empty_like(mass_before)
    below[order] = mass_before[first_of_tie]
    index = torch.floor(n_bins * below / w.sum()).long().clamp_(0, n_bins - 1)
    return _gap_sum(_binned(index, n_bins, w, conf, correct))


def classwise_calibration_error(
    probs: torch.Tensor,
    labels: torch.Tensor,
    n_bins: int = 15,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Classwise ECE = (1/K)·Σ_k Σ_b (W_bk/W)·|freq_bk − mean_bk| (equal-width bins of p_ik)."""
    n, k = probs.shape
    w = _weights(n, weights, probs)
    onehot = torch.nn.functional.one_hot(labels, k).to(probs.dtype)
    # One bin set per class: flat index class·B + bin.
    index = (bin_index(probs, n_bins) + n_bins * torch.arange(k, device=probs.device)).reshape(-1)
    ww = w[:, None].expand(n, k).reshape(-1)
    bins = _binned(index, n_bins * k, ww, probs.reshape(-1), onehot.reshape(-1))
    gaps = bins["weight"] * (bins["accuracy"] - bins["confidence"]).abs()
    return gaps.sum() / (w.sum() * k)


def area_under_risk_coverage(
    probs: torch.Tensor,
    labels: torch.Tensor,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """AURC = Σ_i w_i·r(c_i) / W, r(t) the weighted error rate of the examples with c ≥ t."""
    conf, pred = probs.max(dim=1)
    error = (pred != labels).to(probs.dtype)
    w = _weights(len(labels), weights, probs)
    sorted_conf, order = conf.sort(stable=True)
    # Suffix sums over ascending confidence: weight and errors of {j : c_j ≥ sorted_conf[i]}.
    kept_w = torch.flip(torch.cumsum(torch.flip(w[order], [0]), 0), [0])
    kept_err = torch.flip(torch.cumsum(torch.flip((w * error)[order], [0]), 0), [0])
    first_of_tie = torch.searchsorted(sorted_conf, sorted_conf, right=False)
    kept = kept_w[first_of_tie]
    risk = torch.where(kept > 0, kept_err[first_of_tie] / kept.clamp_min(1e-300), 0.0)
    return (w[order] * risk).sum() / w.sum()


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
    """acc, nll, brier, ece, ace, mce, classwise_ece, mean_confidence, overconfidence, aurc
    and n, as Python floats, computed in float64 on the CPU.

    `probs` are used as given (float32 probabilities are upcast exactly), so the numbers can
    be recomputed from predictions.npz. Empty input gives {}.
    """
    p = probs.detach().to("cpu", torch.float64)
    y = labels.detach().to("cpu", torch.long)
    w = None if weights is None else weights.detach().to("cpu", torch.float64)
    if len(y) == 0:
        return {}
    out = {k: float(v) for k, v in basic_metrics(p, y, n_bins, w).items()}
    out["ace"] = float(adaptive_calibration_error(p, y, n_bins, w))
    out["mce"] = float(maximum_calibration_error(p, y, n_bins, w))
    out["classwise_ece"] = float(classwise_calibration_error(p, y, n_bins, w))
    ww = _weights(len(y), w, p)
    out["mean_confidence"] = float((ww * p.max(dim=1).values).sum() / ww.sum())
    out["overconfidence"] = out["mean_confidence"] - out["acc"]
    out["aurc"] = float(area_under_risk_coverage(p, y, w))
    out["n"] = len(y)
    return out
