"""The mixing-augmentation contract.

A `Mixer` takes a normalized batch (x, y) already on the device and returns a
`MixedBatch`, or None to leave this batch as it is. With partner indices π the engine
computes the loss as

    λ·L(ŷ, y) + (1 − λ)·L(ŷ, y[π])      if `partner_targets` is given,
    L(ŷ, y)                             otherwise (e.g. SamplePairing keeps y),

always mixing per-sample losses, never one-hot labels: for cross-entropy the two agree,
for γ-CE and AM-Softmax they do not. `lam` is a float (one λ for the batch) or a
tensor (N,) (one per sample). `active(epoch, num_epochs)` switches mixing on or off for
a whole epoch (schedules).

Adding an augmentation is one module with a `Mixer` subclass plus one YAML file in
conf/aug/ whose `_target_` names it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class MixedBatch:
    inputs: torch.Tensor
    lam: float | torch.Tensor
    partner_targets: torch.Tensor | None = None


class Mixer:
    def active(self, epoch: int, num_epochs: int) -> bool:
        return True

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> MixedBatch | None:
        raise TypeError(f"{type(self).__name__} must implement __call__()")

    def describe(self) -> dict:
        """The mixer's settings for summary.json."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}
