"""`dataset.test_shift=subpop`: a different mix of natural test images, inside the training support.

The test set is re-drawn from its own unmodified images, without replacement, with
probability ∝ exp(t·z(x)): t = `tilt`, z a standardized per-image score (`score`):

    brightness      s(x) = mean pixel value (all channels, x ∈ [0, 1])
    ink             s(x) = share of pixels above the image's own mean (per pixel the mean
                    over channels); on digits: stroke thickness
    contrast        s(x) = standard deviation of the pixel values (all channels)
    hue             RGB only. Per pixel the opponent colour (a, b) = (R − (G + B)/2,
                    √3/2·(G − B)), whose angle is the hue; s(x) = the angle of the image's
                    mean (a, b), as a signed difference to the circular mean of the
                    training images' angles, wrapped to (−π, π]
    class_subgroup  within each class, a 2-means clustering (fitted on that class's
                    training images) of a fixed random projection (seed `PROJECTION_SEED`,
                    16 Gaussian directions) of the pixels; z = +1 in the cluster that is
                    the smaller one in training, −1 in the other, so t > 0 over-represents
                    one sub-type per class (classes absent from training get z = 0)

For the first four, z = (s − μ)/σ with μ, σ the mean and standard deviation of s over the
*training* images, so train and test are on one scale (train z has mean 0, std 1).

The draw: k = max(1, round(`keep`·m)) of the m test images (default keep = 0.5, so a
tilt can move the mix without the kept set being nearly the whole test set). Successive
sampling ∝ w = exp(t·z) without replacement is done at once by the Gumbel-top-k trick:
keep the k largest t·z_i + G_i, G_i i.i.d. standard Gumbel. t = 0 is a uniform random
subset: the natural test distribution.

How far the mix moves: image i is kept with probability close to π_i = 1 − exp(−λ·w_i),
λ solving Σ π_i = k (Hájek's approximation for successive sampling), so the kept mean
score is ≈ Σ π_i z_i / Σ π_i (`expected_kept_mean`). As keep → 0 this is the exponential
tilt E[z·e^{tz}]/E[e^{tz}], which for Gaussian z equals t; with keep = 0.5, t = 2 and
Gaussian z it is ≈ 0.68, with t = 1 ≈ 0.52 (the top half alone has mean 0.80).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from regx.errors import ConfigError

SCORES = ("brightness", "ink", "contrast", "class_subgroup", "hue")
PROJECTION_SEED = 0x5B9
PROJECTION_DIMS = 16
# σ of a score at or below this share of its magnitude is rounding error: the score is
# constant. Real spreads of uint8 images are far larger (one level in one pixel of a
# 224×224×3 image moves brightness by ~3e-8).
CONSTANT_RTOL = 1e-12


@dataclass
class SubpopInfo:
    """The realized shift, for the record (summary.json `shift`)."""

    mode: str
    score: str
    tilt: float
    keep: float
    test_size_before: int
    test_size_after: int
    train_mean: float  # mean raw score s (z for class_subgroup) of the training images
    test_mean_before: float
    test_mean_after: float
    z_test_before: float  # the same in standardized units (train: 0)
    z_test_after: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _unit(x: torch.Tensor) -> np.ndarray:
    return x.to(torch.float64).numpy() / 255.0


def _hue_angle(x: torch.Tensor) -> np.ndarray:
    rgb = _unit(x).mean(axis=(2, 3))  # the mean colour; (a, b) is linear in it
    a = rgb[:, 0] - 0.5 * (rgb[:, 1] + rgb[:, 2])
    b = 0.5 * math.sqrt(3.0) * (rgb[:, 1] - rgb[:, 2])
    return np.arctan2(b, a)


def raw_scores(x: torch.Tensor, score: str) -> np.ndarray:
    """s(x) per image of uint8 (N, C, H, W) for brightness, ink, contrast; hue's angle."""
    if score == "hue":
        return _hue_angle(x)
    v = _unit(x)
    flat = v.reshape(len(v), -1)
    if score == "brightness":
        return flat.mean(axis=1)
    if score == "contrast":
        return flat.std(axis=1)
    gray = v.mean(axis=1).reshape(len(v), -1)  # ink
    return (gray > gray.mean(axis=1, keepdims=True)).mean(axis=1)


def _wrap(angle: np.ndarray) -> np.ndarray:
    return np.angle(np.exp(1j * angle))


def standardized_scores(
    train_x: torch.Tensor, test_x: torch.Tensor, score: str
) -> tuple[np.ndarray, np.ndarray]:
    """(s, z) of the training images and of the test images for a per-image `score`."""
    s_train, s_test = raw_scores(train_x, score), raw_scores(test_x, score)
    if score == "hue":
        centre = np.angle(np.exp(1j * s_train).mean())
        s_train, s_test = _wrap(s_train - centre), _wrap(s_test - centre)
    mu, sigma = s_train.mean(), s_train.std()
    # A constant score leaves rounding noise (σ ≈ 1e-16): compare σ to the scores' scale.
    if not sigma > CONSTANT_RTOL * max(1.0, float(np.abs(s_train).max())):
        raise ConfigError("shift.score", score, "is constant on the training images")
    return np.stack([s_train, (s_train - mu) / sigma]), np.stack([s_test, (s_test - mu) / sigma])


def subgroup_scores(
    train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor
) -> tuple[np.ndarray, np.ndarray]:
    """z = ±1 per image: its class's 2-means cluster, +1 for the one smaller in training."""
    from sklearn.cluster import KMeans

    dims = train_x[0].numel()
    projection = np.random.default_rng(PROJECTION_SEED).standard_normal((dims, PROJECTION_DIMS))
    u_train = _unit(train_x).reshape(len(train_x), -1) @ projection
    u_test = _unit(test_x).reshape(len(test_x), -1) @ projection
    y_train, y_test = train_y.numpy(), test_y.numpy()
    z_train, z_test = np.zeros(len(y_train)), np.zeros(len(y_test))
    for c in np.unique(y_train):
        in_train, in_test = y_train == c, y_test == c
        if in_train.sum() < 2:
            continue
        kmeans = KMeans(n_clusters=2, n_init=4, random_state=0).fit(u_train[in_train])
        sizes = np.bincount(kmeans.labels_, minlength=2)
        plus = int(np.argmin(sizes)) if sizes[0] != sizes[1] else 1
        z_train[in_train] = np.where(kmeans.labels_ == plus, 1.0, -1.0)
        if in_test.any():
            z_test[in_test] = np.where(kmeans.predict(u_test[in_test]) == plus, 1.0, -1.0)
    return np.stack([z_train, z_train]), np.stack([z_test, z_test])


def tilted_draw(z: np.ndarray, tilt: float, keep: float, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of k = max(1, round(keep·m)) items drawn ∝ exp(tilt·z), no replacement."""
    k = max(1, round(keep * len(z)))
    keys = tilt * z + rng.gumbel(size=len(z))
    return np.sort(np.argsort(-keys, kind="stable")[:k])


def inclusion_probabilities(z: np.ndarray, tilt: float, keep: float) -> np.ndarray:
    """Hájek's π_i = 1 − exp(−λ·w_i), w = exp(tilt·(z − max z)), λ with Σ π_i = k."""
    k = max(1, round(keep * len(z)))
    w = np.exp(tilt * (z - z.max()))
    if k >= len(z):
        return np.ones(len(z))
    lo, hi = 0.0, 1.0
    while np.sum(-np.expm1(-hi * w)) < k:
        hi *= 2.0
    for _ in range(200):  # bisection on the monotone Σ π(λ)
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if np.sum(-np.expm1(-mid * w)) < k else (lo, mid)
    return -np.expm1(-0.5 * (lo + hi) * w)


def expected_kept_mean(z: np.ndarray, tilt: float, keep: float) -> float:
    """≈ E[mean z of the kept images] = Σ π_i z_i / Σ π_i (see the module docstring)."""
    pi = inclusion_probabilities(z, tilt, keep)
    return float((pi * z).sum() / pi.sum())


def subpop_indices(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    score: str,
    tilt: float,
    keep: float,
    rng: np.random.Generator,
) -> tuple[torch.Tensor, SubpopInfo]:
    """The kept test indices (sorted) and the realized shift."""
    if score == "hue" and test_x.shape[1] != 3:
        raise ConfigError(
            "shift.score", score, f"needs RGB images; this dataset has {test_x.shape[1]} channel"
        )
    if score == "class_subgroup":
        (s_train, _), (s_test, z_test) = subgroup_scores(train_x, train_y, test_x, test_y)
    else:
        (s_train, _), (s_test, z_test) = standardized_scores(train_x, test_x, score)
    keep_idx = tilted_draw(z_test, tilt, keep, rng)
    info = SubpopInfo(
        mode="subpop",
        score=score,
        tilt=float(tilt),
        keep=float(keep),
        test_size_before=len(z_test),
        test_size_after=len(keep_idx),
        train_mean=float(s_train.mean()),
        test_mean_before=float(s_test.mean()),
        test_mean_after=float(s_test[keep_idx].mean()),
        z_test_before=float(z_test.mean()),
        z_test_after=float(z_test[keep_idx].mean()),
    )
    return torch.from_numpy(keep_idx), info
