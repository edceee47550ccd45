"""The `regx` command, and `python -m regx …`, the same (used by torchrun and tests).

The signal handling is installed first, before the CLI module imports typer (about 0.1 s),
so that Ctrl-C then also ends in one line and 130; what is left uncovered is Python's own
start-up.
"""

import os
import sys
from typing import Any

from regx.engine.signals import (
    InterruptOutsideTraining,
    exit_without_teardown,
    interrupt_exit,
    leave_now,
)
from regx.errors import Interrupted


class SurvivesClosedPipe:
    """stdout whose reader may go away (`regx train … | head`): the first write into the
    closed pipe points the descriptor at /dev/null, and the command goes on without its
    output (a run still finishes and saves) instead of failing mid-print."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._to_devnull()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._to_devnull()

    def _to_devnull(self) -> None:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, self._stream.fileno())
        os.close(fd)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def usable_streams() -> None:
    """Output that cannot fail the command: a closed stdout/stderr (`2>&-`) goes to
    /dev/null, text the terminal's encoding cannot show is escaped (`PYTHONIOENCODING=ascii`
    with a path like outputs/ü), and a closed pipe on stdout is survived."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is None:
            stream = open(os.devnull, "w")  # noqa: SIM115 (for the whole process)
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
        setattr(sys, name, stream)
    sys.stdout = SurvivesClosedPipe(sys.stdout)


def main() -> None:
    # SIGINT/SIGTERM outside training end the command with one line and 130/143 (during
    # training the engine's own handler finishes the step and checkpoints first). They
    # raise from the moment a command's body begins (`signals.command_body`); before that,
    # while the CLI imports and typer parses, they are only remembered.
    signals = InterruptOutsideTraining().install()
    usable_streams()
    try:
        os.getcwd()
    except FileNotFoundError:
        print("error: the current folder no longer exists: cd to one that does", file=sys.stderr)
        sys.exit(2)
    if len(sys.argv) <= 1:  # bare `regx`: help, successfully (click would exit 2)
        sys.argv.append("--help")
    try:
        from regx.cli import app

        app()
    except SystemExit as e:
        code = e.code
    if signals.signum is None:
        signals.release()
        if "torch" in sys.modules and (code is None or isinstance(code, int)):
            exit_without_teardown(code or 0)  # freeing torch's modules takes 1-2 s
        sys.exit(code)
    if not signals.command_ran:  # nothing reported it (--help, a usage error)
        code, line = interrupt_exit(Interrupted(signals.signum))
        print(line, file=sys.stderr)
    leave_now(code if isinstance(code, int) else 1)


if __name__ == "__main__":
    main()
