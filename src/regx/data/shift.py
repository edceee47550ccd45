"""Test-set shifts (`dataset.test_shift`), so that validation splits can be compared under shift.

A shift changes the *test set only*, after the dataset is loaded (and subset), and is a
pure function of the images and the run's seed. The settings live in the top-level
`shift:` config node (`kind`, `severity`, `strength`, `score`, `tilt`, `keep`).

- `none`: the test set as loaded.
- `prior` (label shift, p(x|y) unchanged): with K classes and strength s ∈ [0, 1) the
  target test class frequencies are

      π_c = (1 − s)^(c/(K−1)) / Σ_j (1 − s)^(j/(K−1)),   c = 0 … K−1 (class index),

  so class 0 is the most frequent and the largest/smallest frequency ratio is 1/(1 − s)
  (s = 0.8: 5×). With m_c test images of class c, the kept total is the largest
  N* = min_c m_c / π_c for which every class has enough images; class c keeps
  n_c = floor(N* · π_c) of its images, drawn at random without replacement.
- `corrupt` (covariate shift outside the training support): corruption `kind` at
  `severity` 1–5 of every test image (formulas in `regx.data.corruptions`).
- `subpop` (covariate shift inside the support): unmodified test images re-drawn with
  probability ∝ exp(`tilt`·z(x)), z the standardized `score` (`regx.data.subpop`).

Seeding: every mode draws from numpy's `default_rng([seed, SHIFT_STREAM])`; `corrupt`
seeds its noise generator with that stream's first 63-bit integer
(`corruption_generator(seed)`), so the same seed gives the same noise wherever a
corruption is applied.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Annotated

import numpy as np
import torch

from regx.data.corruptions import KINDS, corrupt
from regx.data.subpop import SCORES, subpop_indices
from regx.data.types import ImageData
from regx.errors import ConfigError, check, check_choice, check_range
from regx.keys import SHIFT_MODE_KEYS
from regx.params import Choice, Range, check_params

log = logging.getLogger("regx")

MODES = ("none", "prior", "corrupt", "subpop")
# Mixed into the seed so the shift's draws are independent of the subset/split draws.
SHIFT_STREAM = 0x5EED
# The fewest test images a prior or subpop shift may leave: 2 per class and at least 20,
# so one image moves the accuracy by at most 5 points and every class can be represented.
MIN_SHIFTED_TEST = 20
MIN_SHIFTED_PER_CLASS = 2


def shift_rng(seed: int) -> np.random.Generator:
    return np.random.default_rng([seed, SHIFT_STREAM])


def corruption_generator(seed: int) -> torch.Generator:
    """The noise generator `dataset.test_shift=corrupt` uses for run seed `seed`."""
    return torch.Generator().manual_seed(int(shift_rng(seed).integers(2**63)))


def corrupted_copies(
    test_x: torch.Tensor, kinds: Sequence[str], severities: Sequence[int], seed: int
) -> Iterator[tuple[str, int, torch.Tensor]]:
    """(kind, severity, images) for every cell of a corruption sweep, one at a time: each the
    test set exactly as `test_shift=corrupt shift.kind=kind shift.severity=severity` makes it."""
    for kind in kinds:
        for severity in severities:
            yield kind, severity, corrupt(test_x, kind, severity, corruption_generator(seed))


class Shift:
    """The `shift:` settings; `apply(data, mode, seed)` shifts the test set of `data`."""

    @check_params
    def __init__(
        self,
        kind: Annotated[str, Choice(KINDS)] = "noise",
        severity: Annotated[int, Range(1, 5, integer=True)] = 3,
        strength: Annotated[float, Range(0, 1, hi_open=True)] = 0.8,
        score: Annotated[str, Choice(SCORES)] = "brightness",
        tilt: float = 2.0,
        keep: Annotated[float, Range(0, 1, lo_open=True)] = 0.5,
    ) -> None:
        check_range("tilt", tilt)
        check(math.isfinite(tilt), "tilt", tilt, "must be a finite number")
        self.kind, self.severity, self.strength = kind, severity, float(strength)
        self.score, self.tilt, self.keep = score, float(tilt), float(keep)

    def describe(self, mode: str) -> dict[str, object]:
        """The settings that matter for `mode` (regx.keys.SHIFT_MODE_KEYS), for the record."""
        return {"mode": mode, **{k: getattr(self, k) for k in SHIFT_MODE_KEYS.get(mode, ())}}

    def apply(self, data: ImageData, mode: str, seed: int) -> ImageData:
        check_choice("test_shift", mode, MODES)
        rng = shift_rng(seed)
        info = {**data.info, "test_shift": self.describe(mode)}
        if mode == "prior":
            keep = prior_shift_indices(data.test_y, data.num_classes, self.strength, rng)
            check_shifted_size(
                len(keep),
                data,
                "shift.strength",
                self.strength,
                "lower shift.strength, or use a test set whose rarest class has more images",
            )
            counts = torch.bincount(data.test_y[keep], minlength=data.num_classes)
            info["test_shift"] = {
                **info["test_shift"],
                "test_size": len(keep),
                "class_counts": counts.tolist(),
            }
            warn_emptied_classes(data, counts, "shift.strength", self.strength)
            return replace(data, test_x=data.test_x[keep], test_y=data.test_y[keep], info=info)
        if mode == "corrupt":
            shifted = corrupt(data.test_x, self.kind, self.severity, corruption_generator(seed))
            return replace(data, test_x=shifted, info=info)
        if mode == "subpop":
            keep, realized = subpop_indices(
                data.train_x,
                data.train_true_y,  # class_subgroup: clusters of the true classes
                data.test_x,
                data.test_y,
                self.score,
                self.tilt,
                self.keep,
                rng,
            )
            minimum = min_shifted_test_size(data.num_classes)
            needed = math.ceil(minimum / len(data.test_y) * 1000) / 1000
            fix = f"raise shift.keep to at least {needed:g}"
            check_shifted_size(len(keep), data, "shift.keep", self.keep, fix)
            info["test_shift"] = realized.as_dict()
            kept_counts = torch.bincount(data.test_y[keep], minlength=data.num_classes)
            warn_emptied_classes(data, kept_counts, "shift.keep", self.keep)
            return replace(data, test_x=data.test_x[keep], test_y=data.test_y[keep], info=info)
        return replace(data, info=info)


def min_shifted_test_size(num_classes: int) -> int:
    """The fewest test images a shift may leave (see MIN_SHIFTED_TEST)."""
    return max(MIN_SHIFTED_TEST, MIN_SHIFTED_PER_CLASS * num_classes)


def check_shifted_size(kept: int, data: ImageData, key: str, value: float, fix: str) -> None:
    """ConfigError(`key`) when a shift keeps fewer test images than `min_shifted_test_size`."""
    minimum, before = min_shifted_test_size(data.num_classes), len(data.test_y)
    if kept >= minimum:
        return
    if before < minimum:
        fix = f"the test set has only {before}: use more test images or dataset.test_shift=none"
    raise ConfigError(
        key,
        value,
        f"leaves {kept} of the {before} test images, fewer than the {minimum} a shifted "
        f"test set needs ({MIN_SHIFTED_PER_CLASS} per class and at least "
        f"{MIN_SHIFTED_TEST}, so one image moves the accuracy by at most 5 points); {fix}",
    )


def warn_emptied_classes(data: ImageData, after: torch.Tensor, key: str, value: float) -> None:
    """One warning naming the classes that had test images and have none after the shift
    (`after`: the shifted test set's images per class)."""
    before = torch.bincount(data.test_y, minlength=data.num_classes)
    emptied = [data.classes[c] for c in range(data.num_classes) if before[c] > 0 and after[c] == 0]
    if emptied:
        shown = ", ".join(emptied[:6]) + (", …" if len(emptied) > 6 else "")
        log.warning(
            "%s=%s leaves no test image of %d class(es) (%s): the shifted test set does "
            "not score them",
            key, value, len(emptied), shown,
        )  # fmt: skip


def prior_class_frequencies(num_classes: int, strength: float) -> np.ndarray:
    """π_c ∝ (1 − s)^(c/(K−1)): class 0 most frequent, ratio 1/(1 − s) to the rarest."""
    ranks = np.arange(num_classes) / max(num_classes - 1, 1)
    unnormalized = (1.0 - strength) ** ranks
    return unnormalized / unnormalized.sum()


def prior_shift_indices(
    labels: torch.Tensor, num_classes: int, strength: float, rng: np.random.Generator
) -> torch.Tensor:
    """Sorted indices of the test items kept so class frequencies follow
    `prior_class_frequencies` over all `num_classes` (a class the test set lacks keeps 0)."""
    y = labels.numpy()
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
