"""Wide ResNet WRN-d-k (Zagoruyko & Komodakis, 2016) for small images.

Three stages of (d − 4)/6 pre-activation basic blocks with widths 16k, 32k, 64k and
strides 1, 2, 2; optional dropout between the two convs of each block.
Mixable points (manifold mixup): the input and the boundaries after stages 1 and 2.
"""

from __future__ import annotations

from typing import Annotated

import torch
import torch.nn.functional as F
from torch import nn

from regx.errors import check
from regx.models.base import Classifier, Dropout
from regx.params import Range, check_params


class WideBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.dropout = dropout
        self.shortcut = (
            nn.Conv2d(c_in, c_out, 1, stride, bias=False) if stride != 1 or c_in != c_out else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        skip = self.shortcut(out) if self.shortcut is not None else x
        out = F.relu(self.bn2(self.conv1(out)))
        if self.dropout:
            out = F.dropout(out, self.dropout, self.training)
        return self.conv2(out) + skip


class WideResNet(Classifier):
    @check_params
    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        image_size: int,
        depth: int = 28,
        widen: Annotated[int, Range(1)] = 10,
        dropout: Dropout = 0.0,
    ) -> None:
        check(
            depth >= 10 and (depth - 4) % 6 == 0,
            "depth",
            depth,
            "must be 6n+4 with n ≥ 1 (10, 16, 22, 28, …)",
        )
        n = (depth - 4) // 6
        widths = [16 * widen, 32 * widen, 64 * widen]
        layers: list[nn.Module] = [nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)]
        c = 16
        mix_points = [0]
        for stage, w in enumerate(widths):
            if stage > 0:
                mix_points.append(len(layers))
            for i in range(n):
                layers.append(WideBlock(c, w, 2 if (i == 0 and stage > 0) else 1, dropout))
                c = w
        layers += [nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        super().__init__(nn.Sequential(*layers), c, num_classes)
        self.mix_points = tuple(mix_points)
