"""The data types every layer shares: a dataset's images (`ImageData`) and the per-batch
training augmentation settings (`Augment`)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch


@dataclass
class ImageData:
    """Train and test images of one dataset, as uint8 tensors of shape (N, C, H, W).

    Under `dataset.label_noise`, `train_y` holds the labels training sees (some flipped)
    and `train_clean_y` the true ones (None without noise). Under
    `dataset.holdout_classes`, `classes` lists the kept classes (labels 0..K'−1) and
    `open_x`/`open_y`/`open_classes` hold the held-out classes' test images, labelled
    0..H−1 in the order of `open_classes` (the open-set retrieval set; None/[] otherwise).
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: list[str]
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    info: dict[str, Any] = field(default_factory=dict)
    train_clean_y: torch.Tensor | None = None
    open_x: torch.Tensor | None = None
    open_y: torch.Tensor | None = None
    open_classes: list[str] = field(default_factory=list)

    @property
    def train_true_y(self) -> torch.Tensor:
        """The true training labels: `train_clean_y` under label noise, else `train_y`."""
        return self.train_y if self.train_clean_y is None else self.train_clean_y

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.train_x.shape[-1])

    def with_stats(self) -> ImageData:
        """Fill mean/std (per channel, in [0, 1] units) from the training images if unset."""
        if self.mean and self.std:
            return self
        mean, std = channel_stats(self.train_x)
        return replace(self, mean=mean, std=std)


def channel_stats(x: torch.Tensor, max_images: int = 10_000) -> tuple[tuple[float, ...], ...]:
    """Per-channel mean and std of uint8 images, scaled to [0, 1] (on at most `max_images`)."""
    sample = x[:max_images].to(torch.float64) / 255.0
    mean = sample.mean(dim=(0, 2, 3))
    std = sample.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return tuple(mean.tolist()), tuple(std.tolist())


@dataclass
class Augment:
    """Per-batch training augmentation, done with tensor ops on the device."""

    crop_padding: int = 0
    flip: bool = False
