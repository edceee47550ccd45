"""The small conv net of the `cnn` discriminator and the `features` embedding, and k copies
of it as one network, so that the k folds' discriminators train at once.

`SmallConvNet`: three 3×3 conv blocks (conv, batch norm, ReLU) of `width`, 2·`width`,
2·`width` channels, 2×2 max pooling while the map is ≥ 8 px, global average pooling, then
a linear head.

`StackedConvNet`: copy j's parameters are block j of every layer: the conv layers are grouped (groups = k,
so output block j is computed from input block j only), every batch-norm channel belongs
to one copy, and the head is one linear map per copy. An input of shape (B, k·C, H, W)
whose channel block j holds copy j's own batch of B images gives logits of shape (B, k),
column j being exactly what copy j alone gives on its batch: its batch-norm statistics
are taken over its own B images, its gradients come from its own loss only.

AdamW is elementwise (per-element moments, decoupled decay, one step count), so one AdamW
over the stacked parameters is k independent ones, and training the stack on the *sum*
of the k copies' losses trains the k networks — one forward and one backward per step
instead of k, which is what costs on a CPU where these small convs are dominated by
per-call overhead.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class SmallConvNet(nn.Module):
    """One logit (`outputs=1`, squeezed to shape (N,)) or `outputs` scores per image."""

    def __init__(self, channels: int, image_size: int, width: int, outputs: int = 1) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        size, c_in = image_size, channels
        for c_out in (width, 2 * width, 2 * width):
            # momentum=None: running stats are the plain average since the last reset
            # (each epoch), not an EMA that lags behind weights moving at a high rate.
            norm = nn.BatchNorm2d(c_out, momentum=None)
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), norm, nn.ReLU()]
            if size >= 8:
                layers.append(nn.MaxPool2d(2))
                size //= 2
            c_in = c_out
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(c_in, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.head(self.body(x))
        return out.squeeze(1) if out.shape[1] == 1 else out


class StackedConvNet(nn.Module):
    def __init__(self, nets: list[SmallConvNet]) -> None:
        super().__init__()
        self.copies = k = len(nets)
        layers: list[nn.Module] = []
        for parts in zip(*(net.body for net in nets)):
            first = parts[0]
            if isinstance(first, nn.Conv2d):
                layer: nn.Module = nn.Conv2d(
                    k * first.in_channels,
                    k * first.out_channels,
                    first.kernel_size,
                    padding=first.padding,
                    groups=k,
                )
            elif isinstance(first, nn.BatchNorm2d):
                layer = nn.BatchNorm2d(k * first.num_features, momentum=first.momentum)
            else:  # ReLU, pooling, flatten: no parameters, the same for every copy
                layer = copy.deepcopy(first)
            with torch.no_grad():
                for name, param in layer.named_parameters():
                    param.copy_(torch.cat([getattr(part, name) for part in parts]))
            if isinstance(first, nn.Conv2d):
                # Batch norm follows, so the bias's gradient is exactly 0; Adam would turn
                # its rounding noise into ±lr steps that reach the eval-mode output through
                # the running means. Frozen, it keeps its initial value, as the math says.
                layer.bias.requires_grad_(False)
            layers.append(layer)
        self.body = nn.Sequential(*layers)
        with torch.no_grad():
            self.head_weight = nn.Parameter(torch.cat([net.head.weight for net in nets]))
            self.head_bias = nn.Parameter(torch.cat([net.head.bias for net in nets]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, k·C, H, W), block j copy j's batch → (B, k) logits, column j copy j's."""
        features = self.body(x).unflatten(1, (self.copies, -1))  # (B, k, c)
        return (features * self.head_weight).sum(dim=2) + self.head_bias

    def copy_blocks(
        self, target: dict[str, torch.Tensor], which: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """`target` (a state dict of this net) with the blocks of the copies where `which`
        (bool, shape (k,)) is true replaced by this net's current ones."""
        for name, value in self.state_dict().items():
            if value.dim() == 0:  # batch norm's batch counter: the same for every copy
                target[name] = value.clone()
            else:
                blocks = target[name].unflatten(0, (self.copies, -1))  # a view: writes through
                blocks[which] = value.unflatten(0, (self.copies, -1))[which]
        return target


def stack_batches(
    x: torch.Tensor, index: torch.Tensor, mean: torch.Tensor, std: torch.Tensor
) -> torch.Tensor:
    """Copy j's images `x[index[j]]` standardized with copy j's `mean`/`std` (k, C), as one
    (B, k·C, H, W) input in channels-last memory, where the CPU's convolution and pooling
    kernels are fastest (max pooling about 8× on digits). `x` is (N, H, W, C), `index` (k, B)."""
    k, b = index.shape
    images = x[index.reshape(-1)].unflatten(0, (k, b))  # (k, B, H, W, C)
    images = (images - mean[:, None, None, None, :]) / std[:, None, None, None, :]
    return images.permute(1, 2, 3, 0, 4).flatten(3).permute(0, 3, 1, 2)
