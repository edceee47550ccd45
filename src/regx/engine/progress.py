"""The training bar (on a terminal only; the logs carry the per-epoch lines): epoch k/n,
steps, the running mean training loss, images/s and the time left in the epoch.

The loss lives on the device (`EpochSums.step_loss`); reading it is a host sync, so the
bar reads it at most once per `REFRESH_SECONDS` of wall time and at the end of the epoch,
never per step, and not at all when the bar is off. The running mean is the epoch's
training loss so far, Σ_s n_s·ℓ_s / Σ_s n_s over the steps s done (n_s images, mean loss
ℓ_s): at the last step it is the epoch's `train_loss`. images/s counts the images this
process trained on since the epoch (or its resumed part) started.
"""

from __future__ import annotations

import math
import time
from types import TracebackType
from typing import Any

import torch

from regx import progress as work_progress
from regx.engine.state import EpochSums

REFRESH_SECONDS = 0.5  # at most two host syncs a second for the bar


def _bar() -> Any:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]epoch {task.fields[epoch]}/{task.fields[epochs]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[shown]}"),
        TimeRemainingColumn(),
        console=Console(stderr=True, force_terminal=True),
        transient=True,
    )


class EpochProgress:
    def __init__(self, steps_per_epoch: int, epochs: int, enabled: bool = True) -> None:
        self.steps, self.epochs = steps_per_epoch, epochs
        shown = enabled and work_progress.stderr_is_terminal()
        self.progress = _bar() if shown else None
        self.task = None
        self.clock = time.perf_counter  # wall time, read once per step (no sync)
        self.reads = 0  # host reads of the loss (each one sync), for the record
        self.epoch_started = self.last_read = 0.0
        self.images = 0  # trained on since the epoch (or its resumed part) started

    @property
    def enabled(self) -> bool:
        """Whether the bar is drawn (on a terminal, when asked for)."""
        return self.progress is not None

    def __enter__(self) -> EpochProgress:
        if self.progress is not None:
            self.progress.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.progress is not None:
            self.progress.__exit__(exc_type, exc, tb)

    def start_epoch(self, epoch: int) -> None:
        if self.progress is None:
            return
        if self.task is not None:
            self.progress.remove_task(self.task)
        self.task = self.progress.add_task(
            "train",
            total=self.steps,
            epoch=epoch + 1,
            epochs=self.epochs,
            loss=math.nan,
            images_per_s=0.0,
            shown="loss -",
        )
        self.epoch_started = self.last_read = self.clock()
        self.images = 0

    def advance(self, sums: EpochSums) -> None:
        """After a step whose loss and size `sums` holds; reads the loss only when due."""
        if self.task is None:
            return
        done = len(sums.step_sizes)  # steps of this epoch, those before a resume included
        self.images += sums.step_sizes[-1]
        self.progress.update(self.task, completed=done)
        now = self.clock()
        if done >= self.steps or now - self.last_read >= REFRESH_SECONDS:
            self.refresh(sums, now)

    def refresh(self, sums: EpochSums, now: float) -> None:
        """The running mean loss and images/s on the bar: one host read of the loss."""
        self.reads += 1
        self.last_read = now
        n = len(sums.step_sizes)
        losses = sums.step_loss[:n].detach().to("cpu", torch.float64)  # the sync
        sizes = torch.tensor(sums.step_sizes, dtype=torch.float64)
        loss = float((losses * sizes).sum()) / max(sums.seen, 1)
        rate = self.images / max(now - self.epoch_started, 1e-9)
        shown = (
            f"loss {loss:.4f}  {rate:,.0f} img/s"
            if rate >= 10
            else f"loss {loss:.4f}  {rate:.2g} img/s"
        )
        self.progress.update(self.task, loss=loss, images_per_s=rate, shown=shown)
