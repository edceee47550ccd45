"""The dataset contract: every source yields the same `ImageData` (uint8 NCHW tensors).

A config in `conf/dataset/` names a `DatasetSource` subclass as `_target_`; its common
keys (root, num_classes, image_size, channels, mean/std, train_augment, subset,
test_shift, label_noise, holdout_classes) are validated here, and the subclass only
implements `_load_raw()`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch

from regx.data.holdout import apply_holdout, parse_holdout
from regx.data.label_noise import apply_label_noise, parse_label_noise
from regx.data.quota import largest_remainder
from regx.data.shift import MODES as TEST_SHIFTS
from regx.data.shift import Shift
from regx.data.types import Augment, ImageData
from regx.errors import ConfigError, DataError, check, check_range
from regx.params import Choice, Range, check_params

FINITE = "must be finite numbers (one per channel)"
MIN_CLASSES = 2  # one class cannot be classified: every prediction would be right


class DatasetSource:
    """Base class of the `dataset` config group.

    Subclasses implement `_load_raw()` returning an `ImageData` with the full train and
    test sets; `load()` then applies, in this order, the stratified `subset` (over all
    classes), `holdout_classes`, `label_noise` (among the kept classes, training pool
    only) and the configured `test_shift` (the classification test set only), and fills
    mean/std from the resulting training images.

    `shift` holds the settings of the top-level `shift:` node (kind, severity, strength);
    the config builder sets it, so every `load()` of a run applies the same shift.
    """

    name = "dataset"

    @check_params
    def __init__(
        self,
        root: str | None = None,
        num_classes: Annotated[int | None, Range(2)] = None,
        image_size: Annotated[int | None, Range(1)] = None,
        channels: int | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        train_augment: dict[str, Any] | None = None,
        subset: int | None = None,
        test_shift: Annotated[str, Choice(TEST_SHIFTS)] = "none",
        download: bool = True,
        label_noise: dict[str, Any] | None = None,
        holdout_classes: Any = None,  # null | int k | list of indices/names: see data/holdout
    ) -> None:
        self.root = Path(root).expanduser() if root else None
        self.num_classes = num_classes
        self.image_size = image_size
        self.channels = channels
        self.mean = tuple(mean) if mean is not None else ()
        self.std = tuple(std) if std is not None else ()
        augment = dict(train_augment or {})
        unknown = set(augment) - {"crop_padding", "flip"}
        check(not unknown, "train_augment", sorted(unknown), "allowed keys: crop_padding, flip")
        self.augment = Augment(**augment)
        self.subset = subset
        self.test_shift = test_shift
        self.download = download
        self.label_noise = parse_label_noise(label_noise)
        self.holdout_classes = parse_holdout(holdout_classes)
        self.shift = Shift()
        if channels is not None:
            check(channels in (1, 3), "channels", channels, "must be 1 or 3")
        check_range("train_augment.crop_padding", self.augment.crop_padding, 0)
        if subset is not None:
            check(
                isinstance(subset, int) and not isinstance(subset, bool) and subset > 0,
                "subset",
                subset,
                "must be a positive number of training images (or null)",
            )
        if self.mean or self.std:
            n = len(self.mean)
            check(n > 0, "mean", "null", "must be set together with std (one value per channel)")
            check(n == len(self.std), "std", list(self.std), f"must have {n} values like mean")
            check(all(math.isfinite(m) for m in self.mean), "mean", list(self.mean), FINITE)
            # nan/inf would train on nan or zeros instead of failing here
            check(
                all(math.isfinite(s) and s > 0 for s in self.std),
                "std",
                list(self.std),
                "must be finite positive numbers (one per channel)",
            )

    # -- to implement ---------------------------------------------------------------
    def _load_raw(self) -> ImageData:
        """Return the full dataset (uint8 tensors); subclasses implement this."""
        raise TypeError(f"{type(self).__name__} must implement _load_raw()")

    def _load_subset(self, seed: int) -> ImageData:
        """The raw data with the stratified `subset` of its training images applied.

        A source that can read labels before decoding (ImageFolder) overrides this to
        decode only the chosen images; it must pick them with `stratified_subset` on the
        same labels and seed, so the subset is the same either way.
        """
        data = self._load_raw()
        if self.subset is None:
            return data
        check_subset_size(self.subset, len(data.train_y), data.name)
        idx = stratified_subset(data.train_y, self.subset, seed)
        return replace(data, train_x=data.train_x[idx], train_y=data.train_y[idx])

    # -- shared pipeline ------------------------------------------------------------
    def load(self, seed: int = 0) -> ImageData:
        """The dataset as configured: raw data, stratified subset, held-out classes, label
        noise, test shift, stats."""
        data = self._load_subset(seed)
        if self.num_classes is not None and data.num_classes != self.num_classes:
            raise ConfigError(
                "dataset.num_classes",
                self.num_classes,
                f"the data in {self.root} has {data.num_classes} classes; "
                f"set dataset.num_classes={data.num_classes} or null",
            )
        self._check_classes(data)
        all_classes = list(data.classes)
        data = apply_holdout(data, self.holdout_classes)
        self._check_classes(data)  # label noise and the model need 2 kept classes
        data = apply_label_noise(data, self.label_noise, seed, all_classes)
        # Test images only; mean/std below still come from the (unshifted) training images.
        data = self.shift.apply(data, self.test_shift, seed)
        if self.mean:
            check(
                len(self.mean) == data.channels,
                "dataset.mean",
                list(self.mean),
                f"must have one value per channel ({data.channels})",
            )
            data = replace(data, mean=self.mean, std=self.std)
        return data.with_stats()

    def _check_classes(self, data: ImageData) -> None:
        """Refuse fewer than 2 classes, or training labels covering fewer than 2."""
        where = f"{data.name} ({self.root})" if self.root else data.name
        if data.num_classes < MIN_CLASSES:
            raise DataError(
                f"{where} has {data.num_classes} class ({', '.join(data.classes) or 'none'}): "
                f"classification needs at least {MIN_CLASSES} classes (with one, every "
                f"prediction is right); add images of more classes (ImageFolder: more "
                f"train/<class>/ folders) or choose another dataset"
            )
        present = torch.unique(data.train_y).tolist()
        if len(present) >= MIN_CLASSES:
            return
        names = ", ".join(data.classes[int(c)] for c in present) or "none"
        if self.subset is not None:
            raise ConfigError(
                "dataset.subset",
                self.subset,
                f"keeps training images of {len(present)} class only ({names}): "
                "use a larger subset (at least one image per class)",
            )
        raise DataError(
            f"{where}: the training images are all of {len(present)} class ({names}) of "
            f"{data.num_classes}: classification needs at least {MIN_CLASSES} classes to train on"
        )


def check_subset_size(subset: int, available: int, name: str) -> None:
    if subset > available:
        raise ConfigError(
            "dataset.subset", subset, f"must be at most the {available} training images of {name}"
        )


def stratified_subset(labels: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """Indices of `n` items whose class proportions match `labels` (largest remainder)."""
    y = labels.numpy()
    classes, counts = np.unique(y, return_counts=True)
    take = largest_remainder(counts, n)
    rng = np.random.default_rng(seed)
    parts = [
        rng.choice(np.flatnonzero(y == c), size=k, replace=False) for c, k in zip(classes, take)
    ]
    idx = np.sort(np.concatenate(parts))
    return torch.from_numpy(idx)


def stratified_split(
    labels: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (rest, held_out) with `fraction` of each class held out, rounded
    per class; where that rounds every class to 0 (small classes: 10 % of 5 images), the
    round(fraction·N) ≥ 1 held-out images are shared among the classes by largest remainder."""
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    sizes = np.array([len(g) for g in groups])
    take = np.array([round(fraction * n) for n in sizes], dtype=int)
    if take.sum() == 0 and len(labels) >= 2:
        take = largest_remainder(sizes, max(1, round(fraction * len(labels))))
    held = [rng.choice(g, size=k, replace=False) for g, k in zip(groups, take)]
    held_out = np.sort(np.concatenate(held))
    rest = np.setdiff1d(np.arange(len(labels)), held_out)
    return rest, held_out
