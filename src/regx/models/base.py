"""The model contract shared by every architecture.

`features(x)` returns the embedding (N, D) used for retrieval metrics; `head` maps it to
class scores and can be swapped, e.g. for AM-Softmax's cosine head. `forward(x)` is
`head(features(x))`.

Mixable points (manifold mixup): a model whose `backbone` is an `nn.Sequential` may list
in `mix_points` the positions in it before which a hidden state can be mixed; point k is
the input of `backbone[mix_points[k]]`, and point 0 is position 0, the input image.
`forward(x, hidden_mix)` runs the backbone module by module and, at point
`hidden_mix.layer`, replaces the hidden state h by λ·h + (1 − λ)·h[π] (λ a float or one
per sample, broadcast over h's other dimensions). Without `hidden_mix` the forward pass is
exactly the plain one. The points are a plain attribute, not a buffer: state_dict keys do
not depend on them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Protocol

import torch
from torch import nn

from regx.errors import check
from regx.params import Range

Dropout = Annotated[float, Range(0, 1, hi_open=True)]  # the probability of zeroing a unit


class HiddenMixLike(Protocol):
    """What the model reads from a hidden mix (regx.aug.base.HiddenMix has these fields)."""

    layer: int
    lam: float | torch.Tensor
    partners: torch.Tensor


def mix_hidden(h: torch.Tensor, lam: float | torch.Tensor, partners: torch.Tensor) -> torch.Tensor:
    """λ·h + (1 − λ)·h[π]; a per-sample λ (N,) is broadcast over h's other dimensions.

    One pass of torch.lerp, the same arithmetic as mixup's input mix (regx.aug.mixup), so
    a mix at point 0 (the input) is mixup to the bit."""
    if isinstance(lam, torch.Tensor):
        lam = lam.view(-1, *([1] * (h.dim() - 1))).to(h.dtype)
    return torch.lerp(h[partners], h, lam)


class Classifier(nn.Module):
    # Positions in `backbone` before which a hidden state may be mixed; () = none.
    mix_points: tuple[int, ...] = ()

    def __init__(self, backbone: nn.Module, feature_dim: int, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.feature_dim = feature_dim
        self.num_classes = num_classes
        self.head: nn.Module = nn.Linear(feature_dim, num_classes)

    def mixable_points(self) -> int:
        """How many mixable points the model has (0: it cannot be manifold-mixed)."""
        return len(self.mix_points)

    def init_from_data(self, sample: Callable[[], torch.Tensor]) -> None:
        """Data-dependent initialisation before training; `sample()` gives normalized
        training images (N, C, H, W). Most models need none and never call it."""

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward(self, x: torch.Tensor, hidden_mix: HiddenMixLike | None = None) -> torch.Tensor:
        if hidden_mix is None:
            return self.head(self.backbone(x))
        return self.head(self.backbone_mixed(x, hidden_mix))

    def backbone_mixed(self, x: torch.Tensor, hidden_mix: HiddenMixLike) -> torch.Tensor:
        """The backbone's output with the hidden state at point `hidden_mix.layer` mixed."""
        if not self.mix_points:
            raise ValueError(f"{type(self).__name__} declares no mixable points")
        at = self.mix_points[hidden_mix.layer]
        h = x
        for position, module in enumerate(self.backbone):
            if position == at:
                h = mix_hidden(h, hidden_mix.lam, hidden_mix.partners)
            h = module(h)
        return h


def positive_widths(key: str, values: Sequence[int], what: str = "channel counts") -> list[int]:
    """`values` as a list, refused (ConfigError) unless it is a non-empty list of positive
    numbers: the layer widths of a model."""
    values = list(values)
    check(
        len(values) > 0 and all(v > 0 for v in values),
        key,
        values,
        f"must be a non-empty list of positive {what}",
    )
    return values
