"""The run report's figures, drawn by a forked helper process off the run's critical path.

Importing matplotlib and the first draw of each kind of figure (fonts, glyph and text-layout
caches) cost about as much as drawing a run's figures. A worker forked when a run starts
pays them while the run trains: as a process it takes no share of the training loop's GIL
(a background thread did, and so slowed the loop and torch's own imports by more than it
saved). At the end the run hands it each figure — the plot function and its arguments,
pickled — goes on with report.md, and `wait` returns once every PNG is written, re-raising
the first failure (a full disk, a bad value) in the run's own process.

The worker is used on Linux (fork is cheap and safe there: it is forked before the run
touches CUDA or torch's thread pools, and draws with one torch thread); elsewhere, or when
matplotlib is already loaded (a notebook, the second run of an in-process sweep), the
figures are drawn inline. If the worker dies, what it had not finished is drawn inline.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import signal
import sys
from collections.abc import Callable
from multiprocessing.connection import Connection, Pipe
from pathlib import Path
from typing import Any

import torch

Plot = Callable[..., Any]  # plot(path, *args): writes one PNG at path
Draw = Callable[..., None]  # draw(plot, path, *args)


def draw_inline(plot: Plot, path: Path, *args: Any) -> None:
    plot(path, *args)


def warm_up() -> None:
    """Draw each run-report figure once, on made-up data, into memory: the one-time costs of
    fonts, text sizes, hatches, log axes and legends are then paid."""
    from regx.report.run_plots import plot_confidence, plot_curves, plot_reliability

    n, k = 60, 10
    probs = torch.linspace(-3.0, 3.0, n * k).reshape(n, k).softmax(dim=1)
    labels = torch.arange(n) % k
    metrics = {"acc": 0.5, "ece": 0.1, "mce": 0.2, "mean_confidence": 0.6, "overconfidence": 0.1}
    summary = {"test": metrics, "test_ts": metrics, "temperature": 2.0}
    row = {"train_loss": 1.0, "val_loss": 1.0, "train_acc": 0.5, "val_acc": 0.5, "val_ece": 0.1}
    history = [{"epoch": e, **row} for e in (1, 2)]
    plot_reliability(io.BytesIO(), probs, probs, labels, 15, summary)
    plot_confidence(io.BytesIO(), probs, labels, summary)
    plot_curves(io.BytesIO(), history, 1)


def _serve(jobs: Connection, results: Connection) -> None:
    """The worker's loop: draw each job; on a `None` job send back the first failure since
    the last one (or None); end when the run closes its end of the pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the run's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    torch.set_num_threads(1)
    with contextlib.suppress(Exception):  # only a warm-up: a real figure that fails says why
        warm_up()
    failure: BaseException | None = None
    while True:
        try:
            job = pickle.loads(jobs.recv_bytes())
        except EOFError:
            return
        if job is None:
            results.send_bytes(_pickled_failure(failure))
            failure = None
        elif failure is None:
            try:
                draw_inline(*job)
            except Exception as e:
                failure = e


def _pickled_failure(failure: BaseException | None) -> bytes:
    try:
        return pickle.dumps(failure)
    except Exception:  # an exception that does not pickle: its type and message
        return pickle.dumps(RuntimeError(f"{type(failure).__name__}: {failure}"))


class FigureWorker:
    """A forked process that draws figures: `draw(plot, path, *args)` queues one, `wait()`
    returns when all are written; `close()` ends the process. A context manager."""

    def __init__(self) -> None:
        self._jobs: list[tuple[Any, ...]] = []  # sent since the last wait, kept for a redraw
        self._pid: int | None = None
        job_reader, self._job_writer = Pipe(duplex=False)
        self._result_reader, result_writer = Pipe(duplex=False)
        try:
            pid = os.fork()
        except OSError:
            for end in (job_reader, self._job_writer, self._result_reader, result_writer):
                end.close()
            raise
        if pid == 0:  # the worker
            code = 0
            try:
                self._job_writer.close()
                self._result_reader.close()
                _serve(job_reader, result_writer)
            except BaseException:
                code = 1
            finally:
                os._exit(code)  # none of the run's exit handlers, buffers or files
        self._pid = pid
        job_reader.close()
        result_writer.close()

    @classmethod
    def start(cls) -> FigureWorker | None:
        """A worker where it pays (see the module docstring), else None."""
        if sys.platform != "linux" or "matplotlib" in sys.modules:
            return None
        try:
            return cls()
        except OSError:  # no process to be had (EAGAIN, ENOMEM): the figures are drawn inline
            return None

    @property
    def pid(self) -> int | None:
        """The worker's process id; None once closed or lost."""
        return self._pid

    @property
    def alive(self) -> bool:
        return self._pid is not None

    def draw(self, plot: Plot, path: Path, *args: Any) -> None:
        job = (plot, path, *args)
        if self.alive:
            try:
                self._job_writer.send_bytes(pickle.dumps(job))
                self._jobs.append(job)
                return
            except OSError:  # the worker is gone
                self._lost()
        draw_inline(*job)

    def wait(self) -> None:
        """Block until every figure queued so far is written; raise the worker's first error."""
        if not self.alive:
            return
        try:
            self._job_writer.send_bytes(pickle.dumps(None))
            failure = pickle.loads(self._result_reader.recv_bytes())
        except (OSError, EOFError):  # it died: draw here what it may not have finished
            pending = self._jobs
            self._lost()
            for job in pending:
                draw_inline(*job)
            return
        self._jobs = []
        if failure is not None:
            raise failure

    def _lost(self) -> None:
        self.close()
        self._jobs = []

    def close(self) -> None:
        if self._pid is None:
            return
        pid, self._pid = self._pid, None
        self._job_writer.close()  # the worker reads EOF and ends after its current job
        self._result_reader.close()
        # ChildProcessError: already reaped (a program embedding regx ignores SIGCHLD)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)

    def __enter__(self) -> FigureWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
