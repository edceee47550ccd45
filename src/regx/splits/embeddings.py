"""Image embeddings for `split.discriminator=features`: the discriminator sees φ(x), not pixels.

φ comes from `SmallConvNet` (three 3×3 conv blocks — conv, batch norm, ReLU — of `width`,
2·`width`, 2·`width` channels, pooling while the map is ≥ 8 px): the global average of each
block's ReLU output, concatenated, a 5·`width`-dimensional vector. Taking every block, not
only the last, keeps the low-level statistics (the first block's channels are local
intensity and edge detectors) next to the class-level ones, so that a shift in brightness
or stroke width stays visible to the discriminator; the last block alone is nearly
invariant to them once trained (measured on digits: out-of-fold AUC 0.47–0.52 under
`subpop` brightness tilt 2, against 0.69–0.70 with every block).

- `features=random`: the network at its seeded random initialization (PyTorch's default
  Kaiming-uniform init), never trained: a fixed nonlinear projection of the pixels.
- `features=trained`: the same network with a linear classifier on top, trained on the
  *training* images and labels only (cross-entropy, AdamW, lr `lr`, `epochs` epochs,
  batches of `batch_size`), then the classifier is dropped and φ kept. It never sees a
  test image while training, so it cannot learn the domain, only what separates classes.

The logistic regression then sees the first `feature_pca` (default 8) principal components
of φ: out of fold, a discriminator with many weakly informative inputs scores held-out
images of each side *against* their side (the fit set's side means move away from the
held-out images), so with no shift the AUC falls below 0.5 (measured on digits, 10 seeds:
0.46 on all 80 dimensions, 0.49 on 8 components).

Measured on digits (`subpop`, keep 0.5, seeds 0 and 1, out-of-fold AUC): no shift —
random 0.46 / 0.55, trained 0.45 / 0.53; brightness tilt 2 — random 0.69 / 0.69, trained
0.69 / 0.68 (the true score itself as discriminator: 0.71); class_subgroup tilt 2 —
random 0.54 / 0.55, trained 0.47 / 0.51 (true score 0.69). `random` is the default: as
good or better everywhere, and it costs a forward pass instead of a training run.

Inputs are standardized per channel with the training images' mean and std. In both cases
the batch-norm statistics are then set once from the training images (a no-grad pass in
train mode, plain averages), and φ is evaluated in eval mode for every image, train and
test alike. Training uses a private RNG (`torch.random.fork_rng`) seeded with `seed`, so
the global stream the trainer seeded does not move.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from regx.params import Range, check_params
from regx.splits.convnets import SmallConvNet

FEATURE_KINDS = ("random", "trained")


def resolve_device(name: str) -> torch.device:
    """`auto`: CUDA when available, else the CPU; otherwise the named device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@dataclass
class Embedded:
    """Embeddings (float32, on the CPU) of the training and test images, and how φ was made."""

    train: torch.Tensor
    test: torch.Tensor
    train_acc: float | None  # accuracy of the discarded classifier on its training images


class FeatureEmbedding:
    # `kind` and `epochs` are limited where users set them: AdversarialSplit's `features`
    # (one of FEATURE_KINDS) and `feature_epochs` (an integer ≥ 1).
    @check_params
    def __init__(
        self,
        kind: str = "random",
        epochs: int = 3,
        width: Annotated[int, Range(1, integer=True)] = 16,
        batch_size: int = 128,
        lr: float = 1e-2,
        device: str = "auto",
    ) -> None:
        self.kind, self.epochs, self.width = kind, int(epochs), int(width)
        self.batch_size, self.lr, self.device_name = int(batch_size), float(lr), device

    def __call__(
        self, train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, seed: int
    ) -> Embedded:
        device = resolve_device(self.device_name)
        x = train_x.to(device, torch.float32) / 255.0
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        std = x.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-3)
        x = (x - mean) / std
        x_test = (test_x.to(device, torch.float32) / 255.0 - mean) / std
        y = train_y.to(device)
        classes = int(train_y.max()) + 1 if len(train_y) else 1
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            net = SmallConvNet(x.shape[1], x.shape[-1], self.width, outputs=classes).to(device)
            train_acc = None
            if self.kind == "trained":
                self._train(net, x, y, np.random.default_rng(seed))
            _set_norm_statistics(net, x, self.batch_size)
            if self.kind == "trained":
                train_acc = float((_apply(net, x).argmax(dim=1) == y).float().mean())
            return Embedded(
                train=block_means(net, x).cpu(),
                test=block_means(net, x_test).cpu(),
                train_acc=train_acc,
            )

    def _train(
        self, net: SmallConvNet, x: torch.Tensor, y: torch.Tensor, rng: np.random.Generator
    ) -> None:
        opt = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=1e-4)
        net.train()
        for _ in range(self.epochs):
            _reset_norm_statistics(net)
            order = torch.from_numpy(rng.permutation(len(x))).to(x.device)
            for batch in order.split(self.batch_size):
                loss = F.cross_entropy(net(x[batch]), y[batch])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()


def _reset_norm_statistics(net: nn.Module) -> None:
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.reset_running_stats()


@torch.no_grad()
def _set_norm_statistics(net: nn.Module, x: torch.Tensor, batch_size: int) -> None:
    """Batch-norm running statistics = plain averages over batches of the images `x`."""
    _reset_norm_statistics(net)
    net.train()
    for chunk in x.split(batch_size):
        net(chunk)
    net.eval()


@torch.no_grad()
def _apply(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    module.eval()
    return torch.cat([module(chunk) for chunk in x.split(1024)]).float()


@torch.no_grad()
def block_means(net: SmallConvNet, x: torch.Tensor) -> torch.Tensor:
    """φ(x): the spatial mean of every ReLU output of `net.body`, concatenated (eval mode)."""
    net.eval()
    out = []
    for chunk in x.split(1024):
        h, parts = chunk, []
        for layer in net.body:
            h = layer(h)
            if isinstance(layer, nn.ReLU):
                parts.append(h.mean(dim=(2, 3)))
        out.append(torch.cat(parts, dim=1))
    return torch.cat(out).float()
