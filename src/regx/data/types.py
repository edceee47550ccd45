"""The data types every layer shares: a dataset's images (`ImageData`) and the per-batch
training augmentation settings (`Augment`)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch


@dataclass
class ImageData:
    """Train and test images of one dataset, as uint8 tensors of shape (N, C, H, W)."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: list[str]
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    info: dict[str, Any] = field(default_factory=dict)

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
