"""Bootstrap 95 % intervals of accuracy, ECE and val acc − test acc (regx.metrics.bootstrap)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from regx.metrics.bootstrap import (
    STREAMS,
    bootstrap_ci,
    confidence_intervals,
    index_blocks,
    per_image,
    resampled_statistics,
)
from regx.metrics.calibration import calibration_metrics, expected_calibration_error


def bootstrap_index(n: int, resamples: int, seed: int, stream: int) -> np.ndarray:
    """The whole index matrix (resamples, n), which the statistics build only in blocks."""
    return np.concatenate(list(index_blocks(n, resamples, seed, stream)))


def predictions(n: int, seed: int = 0, k: int = 10, signal: float = 2.5):
    """Over-confident softmax predictions that are right about 75 % of the time."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, k, (n,), generator=g)
    logits = torch.randn(n, k, generator=g) * 1.5
    logits[torch.arange(n), labels] += signal
    return (2.0 * logits).softmax(dim=1), labels


def test_the_interval_contains_the_point_estimate():
    probs, labels = predictions(600)
    point = calibration_metrics(probs, labels)
    ci = bootstrap_ci(probs, labels, n_bins=15, resamples=1000, seed=0)
    assert set(ci) == {"acc", "ece"}
    for key in ("acc", "ece"):
        lo, hi = ci[key]
        assert lo < point[key] < hi
        assert hi - lo > 0.01  # a real interval, not a point


def test_the_interval_narrows_with_n():
    small = bootstrap_ci(*predictions(400, seed=1), resamples=1000, seed=0)
    large = bootstrap_ci(*predictions(4000, seed=1), resamples=1000, seed=0)
    for key in ("acc", "ece"):
        ratio = (large[key][1] - large[key][0]) / (small[key][1] - small[key][0])
        assert ratio < 0.5  # √(400/4000) ≈ 0.32


def test_the_accuracy_interval_matches_the_normal_approximation():
    # 1,000 images, 800 right: the binomial interval is 0.8 ± 1.96·√(0.8·0.2/1000) = ± 0.0248.
    labels = torch.zeros(1000, dtype=torch.long)
    probs = torch.zeros(1000, 2)
    probs[:800, 0], probs[800:, 1] = 1.0, 1.0  # 800 predicted 0 (right), 200 predicted 1
    order = torch.randperm(1000, generator=torch.Generator().manual_seed(3))
    lo, hi = bootstrap_ci(probs[order], labels, resamples=1000, seed=0)["acc"]
    half = 1.96 * np.sqrt(0.8 * 0.2 / 1000)
    assert lo == pytest.approx(0.8 - half, abs=0.004)
    assert hi == pytest.approx(0.8 + half, abs=0.004)


def test_the_intervals_are_seeded():
    probs, labels = predictions(300)
    a = bootstrap_ci(probs, labels, resamples=200, seed=4)
    b = bootstrap_ci(probs, labels, resamples=200, seed=4)
    c = bootstrap_ci(probs, labels, resamples=200, seed=5)
    assert a == b and a != c


@pytest.mark.parametrize("weighted", [False, True])
def test_each_resample_equals_the_metrics_on_the_resampled_data(weighted):
    probs, labels = predictions(250, seed=2)
    weights = torch.rand(250, generator=torch.Generator().manual_seed(9)) if weighted else None
    data = per_image(probs, labels, 15, weights)
    acc, ece = resampled_statistics(data, 15, resamples=230, seed=7, stream=1)
    index = bootstrap_index(250, 230, seed=7, stream=1)
    assert index.shape == (230, 250) and len(acc) == len(ece) == 230
    for r in (0, 99, 100, 229):  # rows from the first, second and last block
        idx = torch.from_numpy(index[r])
        w = None if weights is None else weights.double()[idx]
        p, y = probs.double()[idx], labels[idx]
        expected_ece = expected_calibration_error(p, y, 15, w).item()
        correct = (p.argmax(dim=1) == y).double()
        ww = torch.ones_like(correct) if w is None else w
        assert ece[r] == pytest.approx(expected_ece, abs=1e-12)
        assert acc[r] == pytest.approx(((ww * correct).sum() / ww.sum()).item(), abs=1e-12)


def test_more_resamples_extend_the_same_sequence():
    data = per_image(*predictions(120), 15)
    acc_100, _ = resampled_statistics(data, 15, 100, seed=1, stream=1)
    acc_250, _ = resampled_statistics(data, 15, 250, seed=1, stream=1)
    np.testing.assert_array_equal(acc_250[:100], acc_100)


@pytest.mark.parametrize("optimistic", [True, False])
def test_the_gap_interval_is_signed_and_resamples_both_sets_independently(optimistic):
    good = predictions(200, seed=3, signal=4.0)  # about 90 % right
    poor = predictions(500, seed=4, signal=1.5)  # about 60 % right
    (vp, vl), (tp, tl) = (good, poor) if optimistic else (poor, good)
    lo, hi = confidence_intervals(tp, tl, tp, vp, vl, resamples=500, seed=0)["val_test_gap"]
    gap = (vp.argmax(1) == vl).double().mean().item() - (tp.argmax(1) == tl).double().mean().item()
    assert (0 < lo < gap < hi) if optimistic else (lo < gap < hi < 0)
    # The same numbers from the two index matrices of the documented streams, which differ.
    assert STREAMS["val"] != STREAMS["test"]
    val_ok, test_ok = per_image(vp, vl).correct, per_image(tp, tl).correct
    iv = bootstrap_index(len(vl), 500, 0, STREAMS["val"])
    it = bootstrap_index(len(tl), 500, 0, STREAMS["test"])
    diffs = val_ok[iv].mean(axis=1) - test_ok[it].mean(axis=1)
    assert [lo, hi] == pytest.approx(list(np.quantile(diffs, [0.025, 0.975])), abs=1e-12)


def test_confidence_intervals_for_summary_json():
    test_probs, test_labels = predictions(300, seed=5)
    val_probs, val_labels = predictions(100, seed=6)
    ts_probs = (test_probs.log() / 1.7).softmax(dim=1)
    ci = confidence_intervals(
        test_probs, test_labels, ts_probs, val_probs, val_labels, resamples=300, seed=0
    )
    assert set(ci) == {"resamples", "level", "test", "test_ts", "val", "val_test_gap"}
    assert ci["resamples"] == 300 and ci["level"] == 0.95
    # test and test_ts share resamples: same accuracy interval (T keeps the argmax).
    assert ci["test"]["acc"] == ci["test_ts"]["acc"] and ci["test"]["ece"] != ci["test_ts"]["ece"]
    assert ci["test"] == bootstrap_ci(test_probs, test_labels, 15, 300, 0, None, STREAMS["test"])
    # val and the gap, recomputed here from the documented streams' index matrices
    iv = bootstrap_index(100, 300, 0, STREAMS["val"])
    it = bootstrap_index(300, 300, 0, STREAMS["test"])
    val_ok = (val_probs.argmax(dim=1) == val_labels).double().numpy()
    test_ok = (test_probs.argmax(dim=1) == test_labels).double().numpy()
    val_acc, test_acc = val_ok[iv].mean(axis=1), test_ok[it].mean(axis=1)
    interval = [0.025, 0.975]
    assert ci["val"]["acc"] == pytest.approx(list(np.quantile(val_acc, interval)), abs=1e-12)
    gap = val_acc - test_acc
    assert ci["val_test_gap"] == pytest.approx(list(np.quantile(gap, interval)), abs=1e-12)
    # a weighted split's validation weights reach the val interval
    weights = torch.rand(100, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    weighted = confidence_intervals(
        test_probs, test_labels, ts_probs, val_probs, val_labels, weights + 0.5, resamples=300
    )
    ww = (weights + 0.5).numpy()[iv]
    val_acc_w = (ww * val_ok[iv]).sum(axis=1) / ww.sum(axis=1)
    expected = list(np.quantile(val_acc_w, interval))
    assert weighted["val"]["acc"] == pytest.approx(expected, abs=1e-12)
    assert weighted["val"]["acc"] != ci["val"]["acc"]
    off = confidence_intervals(
        test_probs, test_labels, ts_probs, val_probs, val_labels, resamples=0
    )
    assert off == {}
