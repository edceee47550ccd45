"""Test-set shifts (`dataset.test_shift`), so that validation splits can be compared under shift.

A shift changes the *test set only*, after the dataset is loaded (and subset), and is a
pure function of the images and the run's seed. The settings live in the top-level
`shift:` config node (`kind`, `severity`, `strength`).

- `none`: the test set as loaded.
- `prior` (label shift, p(x|y) unchanged): with K classes and strength s ∈ [0, 1) the
  target test class frequencies are

      π_c = (1 − s)^(c/(K−1)) / Σ_j (1 − s)^(j/(K−1)),   c = 0 … K−1 (class index),

  so class 0 is the most frequent and the largest/smallest frequency ratio is 1/(1 − s)
  (s = 0.8: 5×). With m_c test images of class c, the kept total is the largest
  N* = min_c m_c / π_c for which every class has enough images; class c keeps
  n_c = floor(N* · π_c) of its images, drawn at random without replacement.
- `corrupt` (covariate shift, p(y|x) roughly unchanged): a CIFAR-10-C style corruption
  (Hendrycks & Dietterich, 2019) at `severity` 1–5, on pixel values x ∈ [0, 1], then
  clipped to [0, 1] and rounded back to uint8:

      brightness  x + b,              b = 0.05, 0.10, 0.15, 0.20, 0.30
                  (CIFAR-10-C adds b to the HSV value; here to every channel, the same
                  for gray images)
      contrast    (x − m)·c + m,      m the image's mean, c = 0.75, 0.50, 0.40, 0.30, 0.15
      blur        Gaussian blur,      σ = 0.4, 0.6, 0.7, 0.8, 1.0 pixels (edges replicated)
      noise       x + σ·ε, ε~N(0, 1), σ = 0.04, 0.06, 0.08, 0.09, 0.10
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

from regx.data.types import ImageData
from regx.errors import check, check_choice, check_range

MODES = ("none", "prior", "corrupt")
SEVERITY_PARAMS: dict[str, tuple[float, ...]] = {
    "brightness": (0.05, 0.10, 0.15, 0.20, 0.30),
    "contrast": (0.75, 0.50, 0.40, 0.30, 0.15),
    "blur": (0.4, 0.6, 0.7, 0.8, 1.0),
    "noise": (0.04, 0.06, 0.08, 0.09, 0.10),
}
KINDS = tuple(SEVERITY_PARAMS)
# Mixed into the seed so the shift's draws are independent of the subset/split draws.
SHIFT_STREAM = 0x5EED


class Shift:
    """The `shift:` settings; `apply(data, mode, seed)` shifts the test set of `data`."""

    def __init__(self, kind: str = "noise", severity: int = 3, strength: float = 0.8) -> None:
        check_choice("kind", kind, KINDS)
        check(
            isinstance(severity, int) and not isinstance(severity, bool) and 1 <= severity <= 5,
            "severity",
            severity,
            "must be an integer in [1, 5]",
        )
        check_range("strength", strength, 0, 1, hi_open=True)
        self.kind, self.severity, self.strength = kind, severity, float(strength)

    def describe(self, mode: str) -> dict[str, object]:
        """The settings that matter for `mode`, for the record."""
        if mode == "prior":
            return {"mode": mode, "strength": self.strength}
        if mode == "corrupt":
            return {"mode": mode, "kind": self.kind, "severity": self.severity}
        return {"mode": mode}

    def apply(self, data: ImageData, mode: str, seed: int) -> ImageData:
        check_choice("test_shift", mode, MODES)
        rng = np.random.default_rng([seed, SHIFT_STREAM])
        info = {**data.info, "test_shift": self.describe(mode)}
        if mode == "prior":
            keep = prior_shift_indices(data.test_y, self.strength, rng)
            return replace(data, test_x=data.test_x[keep], test_y=data.test_y[keep], info=info)
        if mode == "corrupt":
            generator = torch.Generator().manual_seed(int(rng.integers(2**63)))
            shifted = corrupt(data.test_x, self.kind, self.severity, generator)
            return replace(data, test_x=shifted, info=info)
        return replace(data, info=info)


def prior_class_frequencies(num_classes: int, strength: float) -> np.ndarray:
    """π_c ∝ (1 − s)^(c/(K−1)): class 0 most frequent, ratio 1/(1 − s) to the rarest."""
    ranks = np.arange(num_classes) / max(num_classes - 1, 1)
    unnormalized = (1.0 - strength) ** ranks
    return unnormalized / unnormalized.sum()


def prior_shift_indices(
    labels: torch.Tensor, strength: float, rng: np.random.Generator
) -> torch.Tensor:
    """Sorted indices of the test items kept so class frequencies follow `prior_class_frequencies`."""
    y = labels.numpy()
    num_classes = int(y.max()) + 1
    target = prior_class_frequencies(num_classes, strength)
    available = np.bincount(y, minlength=num_classes)
    present = available > 0
    # The largest total whose per-class share fits into what each class has.
    total = np.min(available[present] / target[present])
    take = np.floor(total * target + 1e-9).astype(int)
    take = np.minimum(take, available)
    parts = [
        rng.choice(np.flatnonzero(y == c), size=k, replace=False)
        for c, k in enumerate(take)
        if k > 0
    ]
    return torch.from_numpy(np.sort(np.concatenate(parts)))


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of float images (N, C, H, W), replicated edges."""
    radius = max(1, math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    c = x.shape[1]
    padded = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    rows = F.conv2d(padded, kernel.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(rows, kernel.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def corrupt(
    images: torch.Tensor, kind: str, severity: int, generator: torch.Generator
) -> torch.Tensor:
    """`images` (uint8, N×C×H×W) with corruption `kind` at `severity` 1–5 (formulas above)."""
    param = SEVERITY_PARAMS[kind][severity - 1]
    x = images.to(torch.float32) / 255.0
    if kind == "brightness":
        out = x + param
    elif kind == "contrast":
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        out = (x - mean) * param + mean
    elif kind == "blur":
        out = gaussian_blur(x, param)
    else:
        out = x + param * torch.randn(x.shape, generator=generator)
    return (out.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
