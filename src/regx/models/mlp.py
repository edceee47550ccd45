"""Multi-layer perceptron on flattened pixels: Linear → BN → ReLU (→ Dropout) per hidden layer.

Mixable points (manifold mixup): the input and the output of each hidden layer but the last.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from regx.models.base import Classifier, Dropout, positive_widths
from regx.params import check_params


class MLP(Classifier):
    @check_params
    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        image_size: int,
        hidden: Sequence[int] = (256, 256),
        dropout: Dropout = 0.0,
    ) -> None:
        hidden = positive_widths("hidden", hidden, "widths")
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_channels * image_size * image_size
        block_starts = []
        for h in hidden:
            block_starts.append(len(layers))
            layers += [nn.Linear(width, h), nn.BatchNorm1d(h), nn.ReLU(inplace=True)]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = h
        super().__init__(nn.Sequential(*layers), width, num_classes)
        # position 0 (before Flatten) is the input; then each hidden layer after the first
        self.mix_points = (0, *block_starts[1:])
