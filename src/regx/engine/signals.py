"""SIGINT/SIGTERM, everywhere: during training the loop finishes its step, checkpoints and
stops (`StopRequest`); outside training the command ends with one line and 128 + signal
(`InterruptOutsideTraining`, `command_body`), leaving at once if the signal lands in an import."""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType, TracebackType
from typing import Any, NoReturn

from regx.errors import Interrupted, RunAborted

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """A context manager that turns SIGINT/SIGTERM into a flag for the duration of training.

    Outside the main thread (where Python cannot install handlers) it does nothing and
    signals keep their previous behaviour.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}
        self._error: Callable[[], BaseException] | None = None

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    def raise_at_once(self, error: Callable[[], BaseException]) -> None:
        """From now on a signal raises `error()` wherever the program is: for work with no
        step boundary to stop at (the scoring after the last epoch)."""
        self._error = error

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            raise RunAborted(signum)
        self.signum = signum
        if self._error is not None:
            raise self._error()

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                if signal.getsignal(sig) is signal.SIG_IGN:
                    continue  # ignored on purpose (a sweep worker's SIGINT, nohup): it stays so
                previous = signal.signal(sig, self._handle)
                self._previous[sig] = previous
                if self.signum is None and isinstance(previous, InterruptOutsideTraining):
                    # a signal before training whose KeyboardInterrupt something swallowed
                    self.signum = previous.signum
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()


class InterruptOutsideTraining:
    """The `regx` command's SIGINT/SIGTERM handler outside training (see the module docstring):
    remembers the first signal in `signum` and, inside `raising()`, raises `Interrupted`.

    Outside `raising()` a signal is only remembered: typer would turn a KeyboardInterrupt
    raised while it parses the command line (it imports pydantic there) into a silent exit
    130, also for SIGTERM. The CLI wraps each command's body in `raising()`, which raises
    at once for a signal that came before it. Where Python cannot raise (a weakref
    callback, a `__del__`) it would print "Exception ignored …" with a traceback; `install`
    silences exactly those, since the signal is remembered and honoured all the same.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self.raises = False
        self.command_ran = False  # a `raising()` block has been entered
        # run before leaving mid-import, where no exception can carry them out (see below)
        self.before_leaving: list[Callable[[], None]] = []
        # told where the first signal landed, before anything is raised (`noting_signal`)
        self.notes: list[Callable[[FrameType | None], None]] = []
        self._unraisablehook = sys.unraisablehook

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
            for note in self.notes:
                with contextlib.suppress(Exception):
                    note(frame)
        if not self.raises:
            return
        if inside_import(frame):
            # nothing to save mid-import, and an exception would leave modules half-built
            code, line = interrupt_exit(Interrupted(signum))
            for cleanup in reversed(self.before_leaving):
                with contextlib.suppress(Exception):
                    cleanup()
            os.write(2, f"{line}\n".encode())  # print() may be mid-write to this stream
            leave_now(code)
        raise Interrupted(signum)

    @contextlib.contextmanager
    def raising(self) -> Iterator[None]:
        """A signal raises `Interrupted` within this block; one that came before it too."""
        self.raises = self.command_ran = True
        try:
            if self.signum is not None:
                raise Interrupted(self.signum)
            yield
        finally:
            self.raises = False

    def _drop_ignored_interrupt(self, unraisable: Any) -> None:
        if not isinstance(unraisable.exc_value, Interrupted):
            self._unraisablehook(unraisable)

    def install(self, signals: tuple[int, ...] = STOP_SIGNALS) -> InterruptOutsideTraining:
        if threading.current_thread() is threading.main_thread():
            for sig in signals:
                signal.signal(sig, self)
            self._unraisablehook = sys.unraisablehook
            sys.unraisablehook = self._drop_ignored_interrupt
        return self

    def release(self) -> None:
        """Give the signals their default action back, for a command that has finished: an
        exception raised during the interpreter's shutdown only prints noise."""
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                signal.signal(sig, signal.SIG_DFL)
            sys.unraisablehook = self._unraisablehook


def before_leaving_mid_import(cleanup: Callable[[], None]) -> contextlib.AbstractContextManager:
    """Within this block, `cleanup()` runs if a signal ends the command inside an import
    (where the `Interrupted` that `except`/`finally` blocks would see is never raised)."""
    return _listed_while_inside("before_leaving", cleanup)


def noting_signal(note: Callable[[FrameType | None], None]) -> contextlib.AbstractContextManager:
    """Within this block, the first signal calls `note(frame)` with the frame it landed in,
    before it raises: for state that the exception's unwinding would reset."""
    return _listed_while_inside("notes", note)


@contextlib.contextmanager
def _listed_while_inside(listing: str, fn: Callable[..., None]) -> Iterator[None]:
    """`fn` in the command handler's list `listing` for the duration of the block (a no-op
    where the handler is not regx's, e.g. in-process tests without the CLI)."""
    handler = _command_handler()
    if handler is None:
        yield
        return
    getattr(handler, listing).append(fn)
    try:
        yield
    finally:
        getattr(handler, listing).remove(fn)


def _command_handler() -> InterruptOutsideTraining | None:
    """regx's outside-training handler (a sweep worker has it on SIGTERM only), or None."""
    for sig in STOP_SIGNALS:
        handler = signal.getsignal(sig)
        if isinstance(handler, InterruptOutsideTraining):
            return handler
    return None


def signal_received() -> int | None:
    """The signal the command's outside-training handler has remembered, if any."""
    handler = _command_handler()
    return handler.signum if handler is not None else None


def inside_import(frame: FrameType | None) -> bool:
    """Whether `frame` runs inside an `import` (the import machinery is on its stack)."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib._bootstrap"):
            return True
        frame = frame.f_back
    return False


def leave_now(code: int) -> NoReturn:
    """End the process with `code` after flushing output and logs, without the interpreter's
    shutdown (unsafe after a signal interrupted a native import; see the module docstring)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed stream must not keep us here
            stream.flush()
    with contextlib.suppress(Exception):
        logging.shutdown()
    os._exit(code)


def exit_without_teardown(code: int) -> NoReturn:
    """End a command that finished normally as the interpreter would, minus its last step.

    Python's own exit joins the non-daemon threads, runs the threading and `atexit` hooks
    (executors, trackers, loggers), flushes the streams, then frees every module; with torch
    loaded that last step alone takes 1-2 s and writes nothing. This does the first steps
    the same way and leaves the last out.
    """
    threading._shutdown()  # joins non-daemon threads, runs threading's exit hooks
    atexit._run_exitfuncs()
    leave_now(code)


def interrupt_exit(e: KeyboardInterrupt) -> tuple[int, str]:
    """The exit code and the one `error:` line of a command ended by `e`."""
    signum = getattr(e, "signum", signal.SIGINT)  # a bare KeyboardInterrupt is Ctrl-C
    how = "aborted by a second signal" if isinstance(e, RunAborted) else "interrupted"
    name = signal.Signals(signum).name
    return 128 + signum, f"error: {how} ({name}); files already written are kept"


@contextlib.contextmanager
def command_body() -> Iterator[None]:
    """The body of a command: within it SIGINT/SIGTERM raise (see regx.__main__) and end the
    command with its `error:` line and 130/143 (typer would exit 130 without a word)."""
    handler = signal.getsignal(signal.SIGINT)
    raising = (
        handler.raising()
        if isinstance(handler, InterruptOutsideTraining)
        else contextlib.nullcontext()
    )
    try:
        with raising:
            yield
    except KeyboardInterrupt as e:
        code, line = interrupt_exit(e)
        print(line, file=sys.stderr, flush=True)
        raise SystemExit(code) from None
