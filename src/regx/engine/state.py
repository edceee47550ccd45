"""The training loop's state: what a checkpoint restores besides the weights."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch


@dataclass
class EpochSums:
    """Running sums of one epoch, kept on the device and read once at its end.

    Each step's mean loss goes into `step_loss[step]` (one tiny op, no host sync); the
    epoch's loss, the periodic non-finite check and the divergence message all read it.
    """

    step_loss: torch.Tensor  # (steps per epoch,)
    correct: torch.Tensor  # () long
    lr: float
    step_sizes: list[int] = field(default_factory=list)
    lam_sum: float | torch.Tensor = 0.0
    n_mixed: int = 0
    seen: int = 0

    @classmethod
    def fresh(cls, steps: int, device: torch.device, lr: float) -> EpochSums:
        return cls(
            step_loss=torch.zeros(steps, device=device),
            correct=torch.zeros((), device=device, dtype=torch.long),
            lr=lr,
        )

    def to(self, device: torch.device | str) -> EpochSums:
        """A copy on `device` (the CPU for a checkpoint, the training device on resume)."""

        def move(t: float | torch.Tensor) -> Any:
            return t.detach().to(device, copy=True) if isinstance(t, torch.Tensor) else t

        return EpochSums(
            step_loss=move(self.step_loss),
            correct=move(self.correct),
            lr=self.lr,
            step_sizes=list(self.step_sizes),
            lam_sum=move(self.lam_sum),
            n_mixed=self.n_mixed,
            seen=self.seen,
        )


@dataclass
class PausedEpoch:
    """An epoch a signal stopped: where, its sums so far, and the seconds it had run."""

    epoch: int
    next_step: int
    sums: EpochSums
    seconds: float


@dataclass
class TrainState:
    epoch: int = 0  # epochs completed
    history: list[dict[str, Any]] = field(default_factory=list)
    best_key: tuple[float, ...] | None = None
    best_epoch: int | None = None
    stale_epochs: int = 0
    paused: PausedEpoch | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain containers for the checkpoint (no regx classes inside the pickle)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainState:
        paused = d.get("paused")
        if paused is not None:
            paused = PausedEpoch(
                epoch=paused["epoch"],
                next_step=paused["next_step"],
                sums=EpochSums(**paused["sums"]),
                seconds=paused["seconds"],
            )
        best_key = d.get("best_key")
        return cls(
            epoch=d["epoch"],
            history=list(d["history"]),
            best_key=tuple(best_key) if best_key is not None else None,
            best_epoch=d.get("best_epoch"),
            stale_epochs=d.get("stale_epochs", 0),
            paused=paused,
        )
