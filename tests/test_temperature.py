"""Temperature scaling: recovers a known T, never worsens validation NLL, handles ill-posed fits."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.optimize import brentq, minimize_scalar
from scipy.special import log_softmax

from regx.metrics.temperature import T_MAX, T_MIN, fit_temperature

pytestmark = pytest.mark.usefixtures("one_thread")  # small fits, shared machines


def np_nll(logits: np.ndarray, labels: np.ndarray, t: float, w: np.ndarray | None = None) -> float:
    per = -log_softmax(logits / t, axis=1)[np.arange(len(labels)), labels]
    w = np.ones(len(labels)) if w is None else w
    return float((w * per).sum() / w.sum())


def np_slope(logits: np.ndarray, labels: np.ndarray, beta: float, w: np.ndarray | None) -> float:
    """d NLL / d β at β = 1/T: the weighted mean of E_softmax(βz)[z] − z_y."""
    p = np.exp(log_softmax(beta * logits, axis=1))
    per = (p * logits).sum(axis=1) - logits[np.arange(len(labels)), labels]
    w = np.ones(len(labels)) if w is None else w
    return float((w * per).sum() / w.sum())


def calibrated_sample(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """True logits z and labels drawn from softmax(z): T = 1 is exactly calibrated."""
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=2.5, size=(n, k))
    p = np.exp(log_softmax(z, axis=1))
    labels = (p.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    return z, labels


@pytest.mark.parametrize("t0", [0.5, 1.0, 2.0, 3.5])
def test_recovers_a_known_temperature(t0):
    z, labels = calibrated_sample(20_000, 10, seed=int(10 * t0))
    # The model reports z·T0: over-confident for T0 > 1. Dividing by T = T0 calibrates it.
    fit = fit_temperature(torch.as_tensor(z * t0, dtype=torch.float32), torch.as_tensor(labels))
    assert fit.status == "fitted"
    assert fit.temperature == pytest.approx(t0, rel=0.05)


def test_the_fit_is_the_minimizer_found_by_an_independent_search():
    z, labels = calibrated_sample(3000, 5, seed=1)
    logits = 1.7 * z
    weights = np.random.default_rng(2).uniform(0.2, 3.0, len(labels))
    fit = fit_temperature(
        torch.as_tensor(logits), torch.as_tensor(labels), torch.as_tensor(weights)
    )
    ref = minimize_scalar(
        lambda log_t: np_nll(logits, labels, math.exp(log_t), weights),
        bounds=(math.log(T_MIN), math.log(T_MAX)),
        method="bounded",
        options={"xatol": 1e-10},
    )
    assert fit.temperature == pytest.approx(math.exp(ref.x), rel=1e-4)
    # exact: the root of NLL'(β), β = 1/T, found by an independent bracketing solver
    root = brentq(
        lambda beta: np_slope(logits, labels, beta, weights), 1 / T_MAX, 1 / T_MIN, xtol=1e-15
    )
    assert fit.temperature == pytest.approx(1 / root, rel=1e-10)
    assert fit.val_nll_after == pytest.approx(
        np_nll(logits, labels, fit.temperature, weights), abs=1e-9
    )
    assert fit.val_nll_before == pytest.approx(np_nll(logits, labels, 1.0, weights), abs=1e-9)


def test_integer_weights_equal_repeated_examples():
    z, labels = calibrated_sample(500, 4, seed=3)
    logits = 2.3 * z
    reps = np.random.default_rng(4).integers(1, 4, len(labels))
    weighted = fit_temperature(
        torch.as_tensor(logits), torch.as_tensor(labels), torch.as_tensor(reps.astype(float))
    )
    repeated = fit_temperature(
        torch.as_tensor(np.repeat(logits, reps, axis=0)), torch.as_tensor(np.repeat(labels, reps))
    )
    assert weighted.temperature == pytest.approx(repeated.temperature, rel=1e-6)
    unweighted = fit_temperature(torch.as_tensor(logits), torch.as_tensor(labels))
    assert abs(unweighted.temperature - weighted.temperature) > 1e-4  # the weights matter


@pytest.mark.parametrize("seed", range(6))
def test_never_increases_validation_nll(seed):
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(5, 400)), int(rng.integers(2, 12))
    logits = rng.normal(scale=rng.uniform(0.1, 20), size=(n, k))
    labels = rng.integers(0, k, n)  # often unrelated to the logits
    weights = rng.uniform(0.01, 5, n) if seed % 2 else None
    fit = fit_temperature(
        torch.as_tensor(logits),
        torch.as_tensor(labels),
        None if weights is None else torch.as_tensor(weights),
    )
    assert T_MIN <= fit.temperature <= T_MAX
    assert (
        np_nll(logits, labels, fit.temperature, weights)
        <= np_nll(logits, labels, 1.0, weights) + 1e-12
    )


def test_no_validation_errors_keeps_t_at_one():
    # Every validation example right (the digits case): NLL falls without limit as T → 0.
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(143, 10))
    labels = logits.argmax(axis=1)
    logits[np.arange(143), labels] += 3.0
    fit = fit_temperature(torch.as_tensor(logits), torch.as_tensor(labels))
    assert fit.status == "no_errors" and fit.temperature == 1.0
    assert fit.val_nll_after == fit.val_nll_before
    assert np_nll(logits, labels, 0.05) < np_nll(logits, labels, 1.0)  # a fit would have shrunk T
    assert "no misclassified example" in fit.note

    # One error is enough for a finite minimizer, and the fit uses it.
    labels[0] = (labels[0] + 1) % 10
    fit = fit_temperature(torch.as_tensor(logits), torch.as_tensor(labels))
    assert fit.status == "fitted" and fit.temperature < 1.0


def test_errors_with_zero_weight_do_not_count():
    logits = np.array([[3.0, 0.0], [0.0, 3.0], [3.0, 0.0]])
    labels = np.array([0, 1, 1])  # the last is wrong, but weighted 0
    fit = fit_temperature(
        torch.as_tensor(logits), torch.as_tensor(labels), torch.as_tensor([1.0, 1.0, 0.0])
    )
    assert fit.status == "no_errors" and fit.temperature == 1.0


def test_a_minimizer_beyond_the_range_is_held_at_the_bound():
    # Labels = the least likely class: the NLL keeps falling as T → ∞.
    rng = np.random.default_rng(6)
    logits = rng.normal(scale=3, size=(200, 5))
    labels = logits.argmin(axis=1)
    fit = fit_temperature(torch.as_tensor(logits), torch.as_tensor(labels))
    assert fit.status == "at_bound" and fit.temperature == pytest.approx(T_MAX)
    assert fit.val_nll_after < fit.val_nll_before
    assert "search range" in fit.note


def test_empty_validation_set():
    fit = fit_temperature(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))
    assert fit.temperature == 1.0 and fit.status == "empty"
