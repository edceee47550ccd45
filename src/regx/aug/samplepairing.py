"""SamplePairing (Inoue, 2018): average each image with a random partner, keep its own label.

For a batch (x, y) and a uniformly random permutation π of its indices,

    x̃ = (x + x[π]) / 2,        L = L(ŷ, y),

so the input weight is λ = 1/2 but the label weight is 1 (`partner_targets=None`). Over
many draws each pair carries either label, so it is symmetric in expectation.

The paper's schedule, for 0-based epoch e of a run of E epochs: no mixing for the first
`start_epoch` epochs; then cycles of `on_epochs` epochs mixed and `off_epochs` clean; no
mixing for the last `final_off_epochs` epochs (fine-tuning on clean data):

    active(e) ⇔ start ≤ e < E − final_off  and  (e − start) mod (on + off) < on.

The paper (CIFAR/SVHN) waits 100 epochs, then alternates 8 on / 2 off, and ends with clean
fine-tuning. A null key takes a default scaled to E so short runs keep every phase:
start = final_off = ⌊E/10⌋; on/off = 8/2 for E ≥ 100 (the paper's) and 4/1 below, the same
4:1 ratio in a cycle that fits a short run. E = 10 gives epochs 1–4 and 6–8 (1-based 2–5,
7–9) on, 0, 5 and 9 off. Runs under 10 epochs have no clean start or end.

`prob` mixes that fraction of the batches of an "on" epoch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated, Any

import torch

from regx.aug.base import (
    MixedBatch,
    Mixer,
    Probability,
    mix_this_batch,
    partner_images,
    random_partners,
)
from regx.params import Range, check_params


@dataclass(frozen=True)
class Schedule:
    start_epoch: int
    on_epochs: int
    off_epochs: int
    final_off_epochs: int

    def active(self, epoch: int, num_epochs: int) -> bool:
        if not self.start_epoch <= epoch < num_epochs - self.final_off_epochs:
            return False
        return (epoch - self.start_epoch) % (self.on_epochs + self.off_epochs) < self.on_epochs


def default_schedule(num_epochs: int) -> Schedule:
    """The schedule for a run of `num_epochs` epochs when no key is set (see the module doc)."""
    edge = num_epochs // 10
    off = 2 if num_epochs >= 100 else 1
    return Schedule(start_epoch=edge, on_epochs=4 * off, off_epochs=off, final_off_epochs=edge)


def _epochs(lowest: int) -> Range:
    """A schedule key: epochs, null for the default scaled to the run."""
    return Range(lowest, integer=True, note="scaled to the run")


Epochs = Annotated[int | None, _epochs(0)]
PositiveEpochs = Annotated[int | None, _epochs(1)]


class SamplePairing(Mixer):
    name = "samplepairing"

    @check_params
    def __init__(
        self,
        start_epoch: Epochs = None,
        on_epochs: PositiveEpochs = None,
        off_epochs: Epochs = None,
        final_off_epochs: Epochs = None,
        prob: Probability = 1.0,
    ) -> None:
        self.start_epoch = start_epoch
        self.on_epochs = on_epochs
        self.off_epochs = off_epochs
        self.final_off_epochs = final_off_epochs
        self.prob = float(prob)
        self._resolved: tuple[int, Schedule] | None = None  # (num_epochs, its schedule)

    def schedule(self, num_epochs: int) -> Schedule:
        """The configured keys, with the defaults for `num_epochs` where a key is null."""
        if self._resolved is not None and self._resolved[0] == num_epochs:
            return self._resolved[1]
        default = default_schedule(num_epochs)
        resolved = Schedule(
            start_epoch=_or(self.start_epoch, default.start_epoch),
            on_epochs=_or(self.on_epochs, default.on_epochs),
            off_epochs=_or(self.off_epochs, default.off_epochs),
            final_off_epochs=_or(self.final_off_epochs, default.final_off_epochs),
        )
        self._resolved = (num_epochs, resolved)  # the run's: summary.json records it
        return resolved

    def active(self, epoch: int, num_epochs: int) -> bool:
        return self.schedule(num_epochs).active(epoch, num_epochs)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> MixedBatch | None:
        if not mix_this_batch(self.prob):
            return None
        partners = random_partners(x.shape[0], x.device)
        # Scaling by 1/2 is exact in floating point, so this is (x + x[π]) / 2 bit for bit.
        return MixedBatch(
            inputs=(x + partner_images(x, partners)).mul_(0.5), lam=0.5, partner_index=partners
        )

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        # The schedule actually used (nulls resolved for the run's length), when known.
        if self._resolved is not None:
            num_epochs, resolved = self._resolved
            out["schedule"] = {"num_epochs": num_epochs, **asdict(resolved)}
        return out


def _or(value: int | None, default: int) -> int:
    return default if value is None else value
