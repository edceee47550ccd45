"""AirNet: a small, fast CIFAR-size net in the spirit of the CIFAR-10 speedrun recipes.

The ideas, written here from their descriptions:

- a **whitening first layer**: a 2×2 convolution whose filters are the eigenvectors of
  the training images' 2×2-patch covariance, each divided by the square root of its
  eigenvalue (plus `whiten_eps`), used with both signs. Its output is decorrelated and of
  unit variance in every direction from the first step, which lets a large learning rate
  work at once. The filters are set from data by `init_from_data` (the engine calls it
  before training) and stay frozen; only the layer's bias learns;
- three blocks of conv → 2×2 max-pool → BN → GELU → conv → BN → GELU (widths 64/256/256
  by default): pooling early keeps the expensive convs on small maps;
- global max pooling to the embedding, multiplied by `output_scale` (1/8): a linear
  head's logits start small, so a large learning rate does not saturate the softmax in
  the first steps (a cosine head normalizes the embedding and is unaffected);
- optional flip test-time augmentation (`tta=flip`): in eval mode the embedding is the
  mean of the image's and its mirror image's, so logits average too (any head is linear
  in the embedding or, for a cosine head, sees the averaged direction).

Mixable points (manifold mixup): the input and the boundaries between the conv blocks.
Manifold mixup is a training-time operation: `forward(x, hidden_mix)` runs without TTA.

With label smoothing, a large batch and a one-cycle schedule (`experiment=cifar10_speed`)
this is meant to reach 94 % CIFAR-10 test accuracy in a few GPU-seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Literal

import torch
from torch import nn

from regx.errors import check_range
from regx.models.base import Classifier, HiddenMixLike, positive_widths
from regx.params import Range, check_params

Positive = Annotated[float, Range(0, None, lo_open=True)]


class ConvBlock(nn.Module):
    """conv → (2×2 max-pool) → BN → GELU → conv → BN → GELU."""

    def __init__(self, c_in: int, c_out: int, pool: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.pool = nn.MaxPool2d(2) if pool else nn.Identity()
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn1(self.pool(self.conv1(x))))
        return self.act(self.bn2(self.conv2(x)))


class AirNet(Classifier):
    @check_params
    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        image_size: int,
        widths: Sequence[int] = (64, 256, 256),
        whiten_kernel: int = 2,
        whiten_eps: Positive = 5e-4,
        output_scale: Positive = 0.125,
        tta: Literal["none", "flip"] = "flip",
    ) -> None:
        widths = positive_widths("widths", widths)
        check_range("whiten_kernel", whiten_kernel, 1, image_size)
        patch_dim = in_channels * whiten_kernel**2
        whiten = nn.Conv2d(in_channels, 2 * patch_dim, whiten_kernel, bias=True)
        whiten.weight.requires_grad_(False)  # set by init_from_data, then frozen
        nn.init.zeros_(whiten.bias)
        layers: list[nn.Module] = [whiten, nn.GELU()]
        c, size = 2 * patch_dim, image_size - whiten_kernel + 1
        mix_points = [0]
        for i, w in enumerate(widths):
            if i > 0:
                mix_points.append(len(layers))
            pool = size >= 2  # tiny inputs (tests on 8×8 images) run out of pixels to pool
            layers.append(ConvBlock(c, w, pool))
            c, size = w, size // 2 if pool else size
        layers += [nn.AdaptiveMaxPool2d(1), nn.Flatten()]
        super().__init__(nn.Sequential(*layers), c, num_classes)
        self.mix_points = tuple(mix_points)
        self.whiten = whiten
        self.whiten_eps = whiten_eps
        self.output_scale = output_scale
        self.tta = tta

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or self.tta == "none":
            return self.backbone(x) * self.output_scale
        # both views in one batch: one pass of large kernels instead of two of half size
        both = self.backbone(torch.cat([x, x.flip(-1)]))
        return (both[: len(x)] + both[len(x) :]) * (0.5 * self.output_scale)

    def forward(self, x: torch.Tensor, hidden_mix: HiddenMixLike | None = None) -> torch.Tensor:
        if hidden_mix is None:
            return self.head(self.features(x))
        return self.head(self.backbone_mixed(x, hidden_mix) * self.output_scale)

    @torch.no_grad()
    def init_from_data(self, sample: Callable[[], torch.Tensor], chunk: int = 256) -> None:
        """Set the whitening filters from normalized training images (N, C, H, W)."""
        images = sample()
        k = self.whiten.kernel_size[0]
        dim = self.whiten.in_channels * k * k
        total = torch.zeros(dim, device=images.device, dtype=torch.float64)
        outer = torch.zeros(dim, dim, device=images.device, dtype=torch.float64)
        count = 0
        for i in range(0, len(images), chunk):  # bounded memory: patches of `chunk` images
            x = images[i : i + chunk].float()
            # (n, C, H', W', k, k) → (n·H'·W', C·k·k), laid out as the conv weight (C, k, k)
            patches = x.unfold(2, k, 1).unfold(3, k, 1).permute(0, 2, 3, 1, 4, 5)
            patches = patches.reshape(-1, dim).double()
            total += patches.sum(dim=0)
            outer += patches.T @ patches
            count += len(patches)
        if count == 0:
            return
        mean = total / count
        cov = outer / count - torch.outer(mean, mean)
        eigenvalues, eigenvectors = torch.linalg.eigh(cov)
        scale = (eigenvalues.clamp_min(0) + self.whiten_eps).rsqrt()
        filters = (eigenvectors.T * scale[:, None]).view(dim, *self.whiten.weight.shape[1:])
        weight = torch.cat([filters, -filters]).to(self.whiten.weight.dtype)
        self.whiten.weight.copy_(weight)
