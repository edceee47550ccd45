"""A small VGG-style conv net that adapts to the input size.

Each stage is `convs_per_stage` × (3×3 conv → BN → ReLU), then 2×2 max-pooling while the
feature map is larger than 2×2; global average pooling gives the embedding (last width).
On 8×8 digits the default has about 0.1 M parameters and trains in seconds on a CPU.
Mixable points (manifold mixup): the input and the boundary after each stage but the last.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from torch import nn

from regx.models.base import Classifier, Dropout, positive_widths
from regx.params import Range, check_params


def conv_bn(c_in: int, c_out: int) -> list[nn.Module]:
    return [
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    ]


class SmallCNN(Classifier):
    @check_params
    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        image_size: int,
        widths: Sequence[int] = (32, 64, 128),
        convs_per_stage: Annotated[int, Range(1)] = 1,
        dropout: Dropout = 0.0,
    ) -> None:
        widths = positive_widths("widths", widths)
        layers: list[nn.Module] = []
        c, size = in_channels, image_size
        stage_starts = []
        for w in widths:
            stage_starts.append(len(layers))
            for _ in range(convs_per_stage):
                layers += conv_bn(c, w)
                c = w
            if size > 2:
                layers.append(nn.MaxPool2d(2))
                size //= 2
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        super().__init__(nn.Sequential(*layers), c, num_classes)
        self.mix_points = tuple(stage_starts)  # stage_starts[0] = 0: the input
