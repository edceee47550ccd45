"""SIGINT/SIGTERM during training: finish the step, save, then stop; a second signal aborts.

The handler only records the signal (no I/O inside a signal handler: it may run in the
middle of a checkpoint write or a logging call). The training loop reads `requested`
between steps, a plain attribute read that costs nothing on the hot path, then writes
the checkpoint and summary.json itself. A second signal while stopping raises
`RunAborted` from the handler, so a hung write can always be left with another Ctrl-C.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any

from regx.errors import RunAborted

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """A context manager that turns SIGINT/SIGTERM into a flag for the duration of training.

    Outside the main thread (where Python cannot install handlers) it does nothing and
    signals keep their previous behaviour.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            raise RunAborted(signum)
        self.signum = signum

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
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
