"""Progress of long work (decoding, discriminator folds, evaluation sweeps, reports over many
runs): a rich bar (count, rate, ETA) when stderr is a terminal, else one log line at the
start and one at the end, so CI logs and error output stay clean."""

from __future__ import annotations

import logging
import sys
import time
from types import TracebackType
from typing import Any

log = logging.getLogger("regx")


def stderr_is_terminal() -> bool:
    """Whether progress bars are drawn: stderr is a terminal. (rich is imported only then:
    it costs a run about 0.1 s of start-up.)"""
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


class WorkProgress:
    """`with WorkProgress(n, "images", doing, done) as p: … p.advance(k) …`.

    `doing` is the start line and the bar's label ("decoding 10 images of X"), `done` the
    start of the end line, to which the time and the rate of `unit` per second are added
    ("decoded 10 images of X in 1.2 s (8 images/s)").
    """

    def __init__(self, total: int, unit: str, doing: str, done: str) -> None:
        self.total, self.unit, self.doing, self.done_line = total, unit, doing, done
        self.bar = self._bar() if stderr_is_terminal() else None
        self.task = None
        self.started = 0.0
        self.done = 0

    def _bar(self) -> Any:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
        )

        return Progress(
            TextColumn(self.doing),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]} " + self.unit + "/s"),
            TimeRemainingColumn(),
            console=Console(stderr=True, force_terminal=True),
            transient=True,
        )

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
