"""The mixing-augmentation contract.

A `Mixer` takes a normalized batch (x, y) already on the device and returns a
`MixedBatch`, or None to leave this batch as it is. The engine computes the per-sample
loss with `MixedBatch.loss`:

    λ·L(ŷ, y) + (1 − λ)·L(ŷ, y[π])      if `partner_targets` is given (mixup),
    L(ŷ, y)                             otherwise (SamplePairing keeps y),

always mixing per-sample losses, never one-hot labels: for cross-entropy the two agree,
for γ-CE and AM-Softmax they do not. `lam` is the weight of the first image in the input
mix: a float (one λ for the batch) or a tensor (N,) (one per sample). `active(epoch,
num_epochs)` switches mixing on or off for a whole epoch (schedules).

Randomness comes from torch's global generators (seeded by the run, saved in its
checkpoints), so a resumed run mixes exactly as the uninterrupted one: scalars (λ per
batch, whether to mix a batch) from the CPU generator, which never waits for the GPU;
anything of batch size (π, λ per sample) on the batch's device, so no step copies or
syncs between host and device.

Adding an augmentation is one module with a `Mixer` subclass plus one YAML file in
conf/aug/ whose `_target_` names it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class MixedBatch:
    """A mixed batch: what the model sees and how its loss is formed."""

    inputs: torch.Tensor
    # Weight of the first image in the input mix: float, or (N,) per sample.
    lam: float | torch.Tensor
    # y[π] when the loss mixes two labels; None keeps the first image's label alone.
    partner_targets: torch.Tensor | None = None
    # π, the partner of each sample (for inspection and tests; the engine needs none).
    partner_index: torch.Tensor | None = None

    def loss(self, loss_fn: LossFn, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Per-sample loss (N,): λ·L(ŷ, y) + (1 − λ)·L(ŷ, y[π]), or L(ŷ, y) alone."""
        per_sample = loss_fn(outputs, targets)
        if self.partner_targets is None:
            return per_sample
        lam = self.lam
        return lam * per_sample + (1 - lam) * loss_fn(outputs, self.partner_targets)


class Mixer:
    """Base class of mixing augmentations; `name` is what summary.json calls it."""

    name = "mixer"

    def active(self, epoch: int, num_epochs: int) -> bool:
        """Whether to mix during 0-based `epoch` of a `num_epochs` run."""
        return True

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> MixedBatch | None:
        raise TypeError(f"{type(self).__name__} must implement __call__()")

    def describe(self) -> dict[str, Any]:
        """The mixer's settings for summary.json."""
        settings = {k: v for k, v in vars(self).items() if not k.startswith("_")}
        return {"name": self.name, **settings}


def mix_this_batch(prob: float) -> bool:
    """A coin with P(True) = prob, from torch's global CPU generator (no device sync)."""
    if prob >= 1.0:
        return True  # no draw: the common case costs nothing
    return bool(torch.rand(()) < prob)


def random_partners(n: int, device: torch.device) -> torch.Tensor:
    """π: a uniformly random permutation of range(n), drawn on `device`."""
    return torch.randperm(n, device=device)
