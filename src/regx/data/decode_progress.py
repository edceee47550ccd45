"""Progress of a long decode: a rich bar (count, rate, ETA) when stderr is a terminal, else
one log line at the start and one at the end, so CI logs and error output stay clean."""

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


class DecodeProgress:
    """`with DecodeProgress(n, what, workers) as p: ... p.advance(k) ...`."""

    def __init__(self, total: int, what: str, workers: int) -> None:
        self.total, self.what, self.workers = total, what, workers
        console = Console(stderr=True)
        self.bar = (
            Progress(
                TextColumn(f"decoding {what}"),
                BarColumn(),
                MofNCompleteColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[rate]} images/s"),
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

    def __enter__(self) -> DecodeProgress:
        self.started = time.perf_counter()
        how = f"{self.workers} processes" if self.workers > 1 else "1 process"
        if self.bar is None:
            log.info("decoding %d images of %s (%s)", self.total, self.what, how)
        else:
            self.bar.start()
            self.task = self.bar.add_task("decode", total=self.total, rate="-")
        return self

    def advance(self, images: int) -> None:
        self.done += images
        if self.bar is not None:
            rate = self.done / max(time.perf_counter() - self.started, 1e-9)
            self.bar.update(self.task, advance=images, rate=f"{rate:.0f}")

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
                "decoded %d images of %s in %.1f s (%.0f images/s)",
                self.total,
                self.what,
                seconds,
                self.total / max(seconds, 1e-9),
            )
