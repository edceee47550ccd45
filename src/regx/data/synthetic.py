"""Synthetic images for tests: each class is a fixed random template plus Gaussian noise.

x = clip(128 + 60·t_c + noise·N(0, 1)) with t_c a smooth per-class pattern; the data are a
pure function of (`data_seed`, sizes), so tests get the same images every time.
"""

from __future__ import annotations

from typing import Annotated

import torch

from regx.data.base import DatasetSource
from regx.data.types import ImageData
from regx.params import Range, check_params


class Synthetic(DatasetSource):
    name = "synthetic"

    @check_params
    def __init__(
        self,
        num_train: Annotated[int, Range(1)] = 512,
        num_test: Annotated[int, Range(1)] = 256,
        noise: Annotated[float, Range(0)] = 40.0,  # σ of the Gaussian pixel noise
        data_seed: int = 1234,
        **common,
    ) -> None:
        common.setdefault("num_classes", 4)
        common.setdefault("image_size", 8)
        common.setdefault("channels", 1)
        super().__init__(**common)
        self.num_train, self.num_test, self.noise, self.data_seed = (
            num_train,
            num_test,
            noise,
            data_seed,
        )

    def _load_raw(self) -> ImageData:
        k, c, s = self.num_classes, self.channels, self.image_size
        g = torch.Generator().manual_seed(self.data_seed)
        coarse = torch.randn(k, c, max(2, s // 4), max(2, s // 4), generator=g)
        templates = torch.nn.functional.interpolate(
            coarse, size=s, mode="bilinear", align_corners=False
        )
        templates = templates / templates.flatten(1).std(dim=1).view(k, 1, 1, 1)

        def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
            y = torch.arange(n) % k
            y = y[torch.randperm(n, generator=g)]
            x = 128 + 60 * templates[y] + self.noise * torch.randn(n, c, s, s, generator=g)
            return x.round().clamp(0, 255).to(torch.uint8), y

        train_x, train_y = draw(self.num_train)
        test_x, test_y = draw(self.num_test)
        return ImageData(
            name=self.name,
            train_x=train_x,
            train_y=train_y,
            test_x=test_x,
            test_y=test_y,
            classes=[f"class{i}" for i in range(k)],
        )
