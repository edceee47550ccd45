"""The model contract shared by every architecture.

`features(x)` returns the embedding (N, D) used for retrieval metrics; `head` maps it to
class scores and can be swapped, e.g. for AM-Softmax's cosine head. `forward(x)` is
`head(features(x))`.
"""

from __future__ import annotations

import torch
from torch import nn


class Classifier(nn.Module):
    def __init__(self, backbone: nn.Module, feature_dim: int, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.feature_dim = feature_dim
        self.num_classes = num_classes
        self.head: nn.Module = nn.Linear(feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))
