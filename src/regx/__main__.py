"""The `regx` command, and `python -m regx …`, the same (used by torchrun and tests).

The signal handling is installed first, before the CLI module imports typer (about 0.1 s),
so that Ctrl-C then also ends in one line and 130; what is left uncovered is Python's own
start-up.
"""

import sys

from regx.engine.signals import (
    InterruptOutsideTraining,
    exit_without_teardown,
    interrupt_exit,
    leave_now,
)
from regx.errors import Interrupted


def main() -> None:
    # SIGINT/SIGTERM outside training end the command with one line and 130/143 (during
    # training the engine's own handler finishes the step and checkpoints first). They
    # raise from the moment a command's body begins (`signals.command_body`); before that,
    # while the CLI imports and typer parses, they are only remembered.
    signals = InterruptOutsideTraining().install()
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
