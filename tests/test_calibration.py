"""Every calibration metric against a direct numpy transcription of its definition.

The references below loop over bins and examples with the definitions of the SPEC / the
module docstring (bins (lo, hi] with the first closed at 0; equal-mass bins by the weight
strictly below; risk at each confidence threshold), sharing no code with regx.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from regx.metrics.calibration import (
    basic_metrics,
    bin_index,
    calibration_metrics,
    reliability_bins,
)

B = 15
METRIC_KEYS = (  # what calibration_metrics returns, besides n
    "acc",
    "nll",
    "brier",
    "ece",
    "ace",
    "mce",
    "classwise_ece",
    "mean_confidence",
    "overconfidence",
    "aurc",
)


# -- independent references (numpy, float64) ------------------------------------------------
def ref_bin(c: float, n_bins: int) -> int:
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        if (lo < c or (b == 0 and c >= 0.0)) and c <= hi:
            return b
    raise AssertionError(f"confidence {c} outside [0, 1]")


def ref_binned_gaps(index, w, conf, hit, n_bins):
    """[(weight, |acc − conf|)] for non-empty bins."""
    out = []
    for b in range(n_bins):
        m = index == b
        wb = w[m].sum()
        if wb > 0:
            out.append((wb, abs((w[m] * hit[m]).sum() / wb - (w[m] * conf[m]).sum() / wb)))
    return out


def reference(probs: np.ndarray, labels: np.ndarray, n_bins: int, w: np.ndarray | None):
    p = probs.astype(np.float64)
    n, k = p.shape
    w = np.ones(n) if w is None else w.astype(np.float64)
    W = w.sum()
    conf = p.max(axis=1)
    pred = p.argmax(axis=1)
    correct = (pred == labels).astype(float)
    onehot = np.eye(k)[labels]

    equal_width = np.array([ref_bin(c, n_bins) for c in conf])
    gaps = ref_binned_gaps(equal_width, w, conf, correct, n_bins)
    below = np.array([w[conf < c].sum() for c in conf])
    equal_mass = np.minimum(n_bins - 1, np.floor(n_bins * below / W)).astype(int)
    cw = []
    for j in range(k):
        idx = np.array([ref_bin(c, n_bins) for c in p[:, j]])
        cw.append(
            sum(wb * g for wb, g in ref_binned_gaps(idx, w, p[:, j], onehot[:, j], n_bins)) / W
        )
    risk = np.empty(n)
    for i in range(n):
        kept = conf >= conf[i]
        risk[i] = (w * (1 - correct) * kept).sum() / (w * kept).sum()
    acc = (w * correct).sum() / W
    mean_conf = (w * conf).sum() / W
    return {
        "acc": acc,
        "nll": -(w * np.log(np.maximum(p[np.arange(n), labels], 1e-12))).sum() / W,
        "brier": (w * ((p - onehot) ** 2).sum(axis=1)).sum() / W,
        "ece": sum(wb * g for wb, g in gaps) / W,
        "ace": sum(wb * g for wb, g in ref_binned_gaps(equal_mass, w, conf, correct, n_bins)) / W,
        "mce": max(g for _, g in gaps),
        "classwise_ece": float(np.mean(cw)),
        "mean_confidence": mean_conf,
        "overconfidence": mean_conf - acc,
        "aurc": (w * risk).sum() / W,
    }


def assert_matches(probs, labels, n_bins=B, weights=None):
    got = calibration_metrics(
        torch.as_tensor(probs),
        torch.as_tensor(labels),
        n_bins,
        None if weights is None else torch.as_tensor(weights),
    )
    want = reference(np.asarray(probs), np.asarray(labels), n_bins, weights)
    assert set(got) == {*METRIC_KEYS, "n"} and got["n"] == len(labels)
    for key in METRIC_KEYS:
        assert got[key] == pytest.approx(want[key], abs=1e-6), key
    return got


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# -- random inputs ----------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("weighted", [False, True])
def test_random_predictions_match_the_definitions(seed, weighted):
    rng = np.random.default_rng(seed)
    n, k = 300, 5
    logits = rng.normal(scale=rng.uniform(0.5, 4), size=(n, k))
    labels = np.where(rng.random(n) < 0.6, logits.argmax(1), rng.integers(0, k, n))
    weights = rng.uniform(0.1, 3.0, n) if weighted else None
    got = assert_matches(softmax(logits), labels, weights=weights)
    assert 0 < got["ece"] < 1 and got["ace"] > 0 and got["aurc"] > 0


def test_float32_probabilities_are_scored_exactly_as_stored():
    rng = np.random.default_rng(7)
    probs = softmax(rng.normal(scale=12, size=(400, 10))).astype(np.float32)
    labels = rng.integers(0, 10, 400)
    assert (probs.max(1) == np.float32(1.0)).sum() > 10  # saturated rows, as real nets give
    assert_matches(probs, labels)


@pytest.mark.parametrize("n_bins", [1, 2, 10, 15, 20])
def test_bin_count_is_respected(n_bins):
    rng = np.random.default_rng(n_bins)
    probs = softmax(rng.normal(scale=2, size=(200, 4)))
    labels = rng.integers(0, 4, 200)
    assert_matches(probs, labels, n_bins=n_bins)


# -- adversarial inputs ---------------------------------------------------------------------
def test_confidence_exactly_on_bin_edges_goes_to_the_bin_below():
    edges = torch.tensor([b / B for b in range(B + 1)], dtype=torch.float64)
    assert bin_index(edges, B).tolist() == [0, *range(B)]  # 0 → bin 0, b/B → bin b − 1
    just_above = torch.nextafter(edges[:-1], torch.tensor(2.0, dtype=torch.float64))
    assert bin_index(just_above, B).tolist() == list(range(B))
    # float32 confidences compare in float64: 1.0 in the last bin, 0.5 (an edge for B=2) below
    assert bin_index(torch.tensor([1.0, 0.5, 0.0], dtype=torch.float32), 2).tolist() == [1, 0, 0]


def test_confidence_one_lands_in_the_last_bin_and_counts():
    # Saturated float32 softmax: top-label probability exactly 1.0, one of them wrong.
    probs = np.array([[1.0, 0.0, 0.0]] * 9 + [[0.0, 1.0, 0.0]], dtype=np.float32)
    labels = np.array([0] * 9 + [2])
    got = assert_matches(probs, labels)
    bins = reliability_bins(torch.as_tensor(probs), torch.as_tensor(labels), B)
    assert bins["weight"].tolist() == [0.0] * (B - 1) + [10.0]
    assert got["ece"] == pytest.approx(0.1, abs=1e-12)  # |0.9 − 1.0|, all in one bin
    assert got["mce"] == pytest.approx(0.1, abs=1e-12)
    assert got["ace"] == pytest.approx(0.1, abs=1e-12)  # ties share one equal-mass bin
    assert got["aurc"] == pytest.approx(0.1, abs=1e-12)  # all tied: one threshold, risk 0.1


def test_confidence_exactly_zero_and_on_edges_match_the_definitions():
    # Rows of zeros (confidence 0, not normalized on purpose) and confidences exactly b/B.
    k = 3
    rows = [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    for b in range(1, B + 1):
        c = b / B
        rest = (1 - c) / (k - 1)
        rows.append([c, rest, rest] if c >= rest else [rest, c, rest])
    probs = np.array(rows)
    labels = np.array([0, 1] + [b % k for b in range(1, B + 1)])
    got = assert_matches(probs, labels)
    # p_y = 0 in the two zero rows is clamped at 1e-12: large but finite
    assert math.isfinite(got["nll"]) and got["nll"] > 2 * -math.log(1e-12) / len(labels)


def test_empty_bins_and_a_single_bin_in_use():
    probs = np.tile([0.7, 0.2, 0.1], (50, 1))  # every confidence in bin (0.667, 0.733]
    labels = np.array([0] * 30 + [1] * 20)
    got = assert_matches(probs, labels)
    assert got["ece"] == pytest.approx(0.1, abs=1e-12)  # |0.6 − 0.7|


def test_one_class_only():
    # K = 1: every probability is 1 and every prediction right.
    got = assert_matches(np.ones((20, 1)), np.zeros(20, dtype=int))
    assert got["acc"] == 1 and got["ece"] == 0 and got["classwise_ece"] == 0 and got["aurc"] == 0
    # K = 3 but every label the same class.
    rng = np.random.default_rng(3)
    assert_matches(softmax(rng.normal(size=(60, 3))), np.full(60, 2))


def test_single_example_and_zero_weights():
    assert_matches(np.array([[0.25, 0.75]]), np.array([0]))
    rng = np.random.default_rng(5)
    probs = softmax(rng.normal(scale=2, size=(80, 4)))
    labels = rng.integers(0, 4, 80)
    weights = rng.uniform(0.5, 2, 80)
    weights[::7] = 0.0
    got = assert_matches(probs, labels, weights=weights)
    kept = weights > 0
    unweighted_rest = calibration_metrics(
        torch.as_tensor(probs[kept]),
        torch.as_tensor(labels[kept]),
        B,
        torch.as_tensor(weights[kept]),
    )
    for key in METRIC_KEYS:  # zero weight = the example is absent
        assert got[key] == pytest.approx(unweighted_rest[key], abs=1e-12), key


# -- cross-checks with the textbook forms ------------------------------------------------------
def test_adaptive_bins_hold_equal_counts_without_ties():
    rng = np.random.default_rng(11)
    n = 150  # 10 per bin
    probs = softmax(rng.normal(scale=3, size=(n, 6)))
    labels = rng.integers(0, 6, n)
    conf, correct = probs.max(1), probs.argmax(1) == labels
    order = np.argsort(conf)
    ace = sum(
        len(part) / n * abs(correct[part].mean() - conf[part].mean())
        for part in np.array_split(order, B)
    )
    got = calibration_metrics(torch.as_tensor(probs), torch.as_tensor(labels), B)
    assert got["ace"] == pytest.approx(ace, abs=1e-12)


def test_aurc_is_the_mean_error_rate_of_the_most_confident_without_ties():
    rng = np.random.default_rng(12)
    probs = softmax(rng.normal(scale=2, size=(500, 10)))
    labels = rng.integers(0, 10, 500)
    order = np.argsort(-probs.max(1))
    errors = (probs.argmax(1) != labels)[order]
    aurc = np.mean(np.cumsum(errors) / np.arange(1, 501))
    got = calibration_metrics(torch.as_tensor(probs), torch.as_tensor(labels), B)
    assert got["aurc"] == pytest.approx(aurc, abs=1e-12)


def test_device_side_basic_metrics_agree_with_the_float64_report():
    rng = np.random.default_rng(13)
    probs = torch.as_tensor(softmax(rng.normal(scale=3, size=(1000, 10)))).float()
    labels = torch.as_tensor(rng.integers(0, 10, 1000))
    fast = basic_metrics(probs, labels, B)
    full = calibration_metrics(probs, labels, B)
    for key in ("acc", "nll", "brier", "ece"):
        assert float(fast[key]) == pytest.approx(full[key], abs=1e-5), key


def test_empty_input_gives_no_metrics():
    assert calibration_metrics(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)) == {}


def test_perfect_and_uniform_predictors():
    labels = np.arange(10) % 4
    perfect = np.eye(4)[labels]
    got = assert_matches(perfect, labels)
    assert got["ece"] == 0 and got["nll"] == pytest.approx(0) and got["brier"] == 0
    uniform = np.full((10, 4), 0.25)
    got = assert_matches(uniform, labels)
    # argmax of a tie is class 0: accuracy = share of label 0 = 3/10
    assert got["acc"] == pytest.approx(0.3) and got["nll"] == pytest.approx(math.log(4))
