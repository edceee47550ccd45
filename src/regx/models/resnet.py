"""Pre-activation ResNet for small images (He et al., 2016), as used in the mixup paper.

CIFAR-style stem (one 3×3 conv, no max-pool), four stages of pre-activation basic blocks
(BN → ReLU → conv, twice, plus identity or 1×1 projection shortcut) with widths
w, 2w, 4w, 8w and strides 1, 2, 2, 2; BN → ReLU → global average pool gives the
embedding. `depth`: 10 ([1,1,1,1]), 18 ([2,2,2,2], PreAct ResNet-18 at width 64) or 34.
Mixable points (manifold mixup): the input and the boundaries after stages 1, 2 and 3, as
in the Manifold Mixup paper's PreAct ResNet (no point between the stem and stage 1).
"""

from __future__ import annotations

from typing import Annotated

import torch
import torch.nn.functional as F
from torch import nn

from regx.models.base import Classifier
from regx.params import Choice, Range, check_params

BLOCKS = {10: (1, 1, 1, 1), 18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}


class PreActBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.shortcut = (
            nn.Conv2d(c_in, c_out, 1, stride, bias=False) if stride != 1 or c_in != c_out else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        skip = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + skip


class PreActResNet(Classifier):
    @check_params
    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        image_size: int,
        depth: Annotated[int, Choice(tuple(BLOCKS))] = 18,
        width: Annotated[int, Range(1)] = 64,
    ) -> None:
        layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)]
        c = width
        mix_points = [0]
        for stage, n_blocks in enumerate(BLOCKS[depth]):
            if stage > 0:
                mix_points.append(len(layers))
            c_out = width * 2**stage
            for i in range(n_blocks):
                layers.append(PreActBlock(c, c_out, 2 if (i == 0 and stage > 0) else 1))
                c = c_out
        layers += [nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        super().__init__(nn.Sequential(*layers), c, num_classes)
        self.mix_points = tuple(mix_points)
