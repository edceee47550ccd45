"""Progress of long work (decoding, discriminator folds, evaluation sweeps, reports over many
runs): a rich bar (count, rate, ETA) when stderr is a terminal, else one log line at the
start and one at the end, so CI logs and error output stay clean."""

from __future__ import annotations

import logging
import time
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

log = logging.getLogger("regx")


class WorkProgress:
    """`with WorkProgress(n, "images", doing, done) as p: … p.advance(k) …`.

    `doing` is the start line and the bar's label ("decoding 10 images of X"), `done` the
    start of the end line, to which the time and the rate of `unit` per second are added
    ("decoded 10 images of X in 1.2 s (8 images/s)").
    """

    def __init__(self, total: int, unit: str, doing: str, done: str) -> None:
        self.total, self.unit, self.doing, self.done_line = total, unit, doing, done
        console = Console(stderr=True)
        self.bar = (
            Progress(
                TextColumn(doing),
                BarColumn(),
                MofNCompleteColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[rate]} " + unit + "/s"),
                TimeRemainingColumn(),
                console=console,
                transient=True,
            )
            if console.is_terminal
            else None
        )
        self.task = None
        self.started = 0.0
        self.done = 0

    def __enter__(self) -> WorkProgress:
        self.started = time.perf_counter()
        if self.bar is None:
            log.info("%s", self.doing)
        else:
            self.bar.start()
            self.task = self.bar.add_task(self.doing, total=self.total, rate="-")
        return self

    def advance(self, count: int = 1) -> None:
        self.done += count
        if self.bar is not None:
            rate = self.done / max(time.perf_counter() - self.started, 1e-9)
            self.bar.update(self.task, advance=count, rate=f"{rate:.3g}")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.bar is not None:
            self.bar.stop()
        if exc_type is None:
            seconds = time.perf_counter() - self.started
            log.info(
                "%s in %.1f s (%.3g %s/s)",
                self.done_line,
                seconds,
                self.done / max(seconds, 1e-9),
                self.unit,
            )
