"""Bootstrap 95 % intervals for accuracy, ECE and the validation–test accuracy gap.

For n scored images with correctness a_i = [ŷ_i = y_i], top-label confidence c_i, bin
b_i (`n_bins` equal-width bins (lo, hi], the first closed at 0: `calibration.bin_index`) and
weights w_i (all 1 unless given, e.g. importance weights of the validation set):

- Resample r = 1 … B draws n indices I_r1 … I_rn uniformly with replacement (an index
  matrix of shape (B, n), seeded; built in blocks of `BLOCK` resamples, each from its own
  stream [seed, stream, block], so memory stays at BLOCK·n whatever B is).
- acc_r = Σ_j w_{I_rj}·a_{I_rj} / Σ_j w_{I_rj}.
- ECE_r = Σ_b |Σ_{j: b_{I_rj} = b} w·(a − c)| / Σ_j w_{I_rj} — the same as calibration.py's
  Σ_b (W_b/W)·|acc_b − conf_b| on the resampled data; the per-(resample, bin) sums are one
  `bincount` over the flat index r·B_bins + b.
- The interval is the percentile interval [q_2.5, q_97.5] of the B values.
- val acc − test acc (signed: > 0 where validation is optimistic about the test set): the
  two sets are resampled independently (their own streams), and the interval is that of
  acc_r^val − acc_r^test, from the same resamples as the sets' own intervals.

No Python loop runs over resamples; only over blocks of `BLOCK` of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from regx.metrics.calibration import bin_index

BLOCK = 100
LEVEL = 0.95
# Stream numbers mixed into the seed, so the sets' resamples are independent.
STREAMS = {"test": 1, "val": 2}


@dataclass
class PerImage:
    """What the bootstrap needs of one set of predictions, per image (float64 / int64)."""

    correct: np.ndarray
    confidence: np.ndarray
    bins: np.ndarray
    weights: np.ndarray


def per_image(
    probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15, weights: torch.Tensor | None = None
) -> PerImage:
    p = torch.as_tensor(probs).detach().to("cpu", torch.float64)
    y = torch.as_tensor(labels).detach().to("cpu", torch.long)
    conf, pred = p.max(dim=1)
    w = np.ones(len(y)) if weights is None else torch.as_tensor(weights).double().cpu().numpy()
    return PerImage(
        correct=(pred == y).double().numpy(),
        confidence=conf.numpy(),
        bins=bin_index(conf, n_bins).numpy(),
        weights=w,
    )


def index_blocks(n: int, resamples: int, seed: int, stream: int) -> Iterator[np.ndarray]:
    """The bootstrap index matrix (resamples, n), in blocks of up to `BLOCK` rows."""
    for block, start in enumerate(range(0, resamples, BLOCK)):
        rows = min(BLOCK, resamples - start)
        rng = np.random.default_rng([seed, stream, block])
        yield rng.integers(0, n, size=(rows, n))


def resampled_statistics(
    data: PerImage, n_bins: int, resamples: int, seed: int, stream: int
) -> tuple[np.ndarray, np.ndarray]:
    """(acc_r, ECE_r) for r = 1 … `resamples` (module docstring)."""
    accs, eces = [], []
    gap = data.weights * (data.correct - data.confidence)
    for idx in index_blocks(len(data.correct), resamples, seed, stream):
        rows = len(idx)
        w = data.weights[idx]
        total = w.sum(axis=1)
        accs.append((w * data.correct[idx]).sum(axis=1) / total)
        flat = (np.arange(rows)[:, None] * n_bins + data.bins[idx]).ravel()
        per_bin = np.bincount(flat, weights=gap[idx].ravel(), minlength=rows * n_bins)
        eces.append(np.abs(per_bin.reshape(rows, n_bins)).sum(axis=1) / total)
    return np.concatenate(accs), np.concatenate(eces)


def percentile_interval(values: np.ndarray, level: float = LEVEL) -> list[float]:
    tail = (1.0 - level) / 2.0
    lo, hi = np.quantile(values, [tail, 1.0 - tail])
    return [float(lo), float(hi)]


def bootstrap_ci(
    probs: torch.Tensor,
    labels: torch.Tensor,
    n_bins: int = 15,
    resamples: int = 1000,
    seed: int = 0,
    weights: torch.Tensor | None = None,
    stream: int = 0,
) -> dict[str, list[float]]:
    """{"acc": [lo, hi], "ece": [lo, hi]}: 95 % percentile intervals; {} for no images."""
    return set_intervals(probs, labels, n_bins, resamples, seed, weights, stream)[0]


def set_intervals(
    probs: torch.Tensor,
    labels: torch.Tensor,
    n_bins: int,
    resamples: int,
    seed: int,
    weights: torch.Tensor | None,
    stream: int,
) -> tuple[dict[str, list[float]], np.ndarray | None]:
    """`bootstrap_ci`'s intervals and the resampled accuracies behind them (None: no images)."""
    if len(labels) == 0:
        return {}, None
    data = per_image(probs, labels, n_bins, weights)
    acc, ece = resampled_statistics(data, n_bins, resamples, seed, stream)
    return {"acc": percentile_interval(acc), "ece": percentile_interval(ece)}, acc


def confidence_intervals(
    test_probs: torch.Tensor,
    test_labels: torch.Tensor,
    test_ts_probs: torch.Tensor,
    val_probs: torch.Tensor,
    val_labels: torch.Tensor,
    val_weights: torch.Tensor | None = None,
    n_bins: int = 15,
    resamples: int = 1000,
    seed: int = 0,
) -> dict[str, object]:
    """summary.json `ci`: {"test"|"test_ts"|"val": {"acc": [lo, hi], "ece": [lo, hi]},
    "val_test_gap": [lo, hi]} (the interval of val acc − test acc), or {} when `resamples`
    is 0.

    test and test_ts use the same resampled indices (stream "test"), so their intervals
    describe the same resamples before and after temperature scaling.
    """
    if resamples == 0:
        return {}
    common = (n_bins, resamples, seed)
    test, test_acc = set_intervals(test_probs, test_labels, *common, None, STREAMS["test"])
    test_ts, _ = set_intervals(test_ts_probs, test_labels, *common, None, STREAMS["test"])
    val, val_acc = set_intervals(val_probs, val_labels, *common, val_weights, STREAMS["val"])
    out: dict[str, object] = {
        "resamples": resamples,
        "level": LEVEL,
        "test": test,
        "test_ts": test_ts,
        "val": val,
    }
    if val_acc is not None and test_acc is not None:
        out["val_test_gap"] = percentile_interval(val_acc - test_acc)
    return out
