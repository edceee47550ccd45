"""Errors a user can cause, each rendered as one line with the cause and the fix.

The CLI prints `str(error)` and exits with `error.exit_code`; nothing here imports torch.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any


class UserError(Exception):
    """A failure the user can fix (bad config, missing data, divergence…): no traceback."""

    exit_code = 1


class ConfigError(UserError):
    """A config value outside what is allowed: `key=value: must be …`.

    Components raise it with their own local key (``gamma``); the code that built
    the component from a config group prefixes the group (``loss.gamma``).
    """

    exit_code = 2

    def __init__(self, key: str, value: Any, allowed: str) -> None:
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key}={_fmt(value)}: {allowed}")

    def under(self, prefix: str) -> ConfigError:
        """The same error with `prefix.` in front of the key."""
        return ConfigError(f"{prefix}.{self.key}" if prefix else self.key, self.value, self.allowed)


class RefusedTargetError(UserError):
    """A config names a `_target_` regx does not instantiate (regx.config.trust)."""

    exit_code = 2


class DataError(UserError):
    """Missing, corrupt or inconsistent data: names the file or folder and the fix."""

    exit_code = 3


class DivergedError(UserError):
    """The loss or the gradients became NaN/Inf."""

    exit_code = 4


class ResumeMismatchError(ConfigError):
    """A resume was refused: the run dir's checkpoint was written by a different config.

    The run dir is left exactly as it was (its summary.json is not replaced by a failure).
    """

    keeps_run_files = True


class RunInterrupted(UserError):
    """SIGINT/SIGTERM stopped training after the current step; checkpoint and summary written.

    The exit code follows the shell convention 128 + signal number (130 SIGINT, 143 SIGTERM).
    """

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum


class RunPruned(UserError):
    """A search trial's per-epoch objective was hopeless: the search's pruner stopped it
    after `epoch` (1-based), with that epoch's checkpoint and metrics kept."""

    exit_code = 5

    def __init__(self, epoch: int) -> None:
        super().__init__(f"pruned by the search at epoch {epoch}")
        self.epoch = epoch


class Interrupted(KeyboardInterrupt):
    """SIGINT/SIGTERM outside training (importing, composing, loading data, waiting on a
    sweep's workers): there is nothing to save, so the command ends, exit code 128 + signal.

    A `KeyboardInterrupt`, so no `except Exception` on the way up can swallow it, launchers
    stop their workers and `finally` blocks run.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.exit_code = 128 + signum


class RunAborted(Interrupted):
    """A second SIGINT/SIGTERM while stopping: leave at once, writing nothing more."""


class MissingExtraError(UserError):
    """An optional dependency is not installed: names the pip extra that provides it."""

    exit_code = 2

    def __init__(self, package: str, extra: str, what: str) -> None:
        super().__init__(
            f"{what} needs the '{package}' package, which is not installed: "
            f"pip install 'regx[{extra}]'"
        )


def _fmt(value: Any) -> str:
    if value is None:
        return "null"  # as the user writes it in YAML and on the command line
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return repr(value)
    return str(value)


def check(ok: bool, key: str, value: Any, allowed: str) -> None:
    """Raise `ConfigError(key, value, allowed)` unless `ok`."""
    if not ok:
        raise ConfigError(key, value, allowed)


def check_range(
    key: str,
    value: Any,
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
) -> None:
    """Check lo ≤ value ≤ hi (or strict where `*_open`), with a message in interval notation."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(key, value, "must be a number")
    # an unbounded side is open: (0, inf) holds every finite positive number, not inf
    below = value == -math.inf if lo is None else (value <= lo if lo_open else value < lo)
    above = value == math.inf if hi is None else (value >= hi if hi_open else value > hi)
    if below or above or value != value:  # value != value: NaN
        if lo is None and hi is None:
            raise ConfigError(key, value, "must be a finite number")
        left = "(" if lo_open else "["
        right = ")" if hi_open else "]"
        lo_s = "-inf" if lo is None else _num(lo)
        hi_s = "inf" if hi is None else _num(hi)
        if lo is None:
            left = "("
        if hi is None:
            right = ")"
        raise ConfigError(key, value, f"must be in {left}{lo_s}, {hi_s}{right}")


def check_choice(key: str, value: Any, choices: tuple[str, ...] | list[str]) -> None:
    if value not in choices:
        raise ConfigError(key, value, "must be one of " + ", ".join(map(str, choices)))


def _num(x: float) -> str:
    """1, 0.5, 1e+06 … 3.40282e+38: integers as integers while they stay short."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e6 else f"{x:g}"


def dangling_link(path: Path) -> str | None:
    """Why `path` cannot be a folder to write into when it is a link to nothing, else None
    (mkdir would fail with the OS's bare "File exists")."""
    if path.is_symlink() and not path.exists():
        return f"is a link to {os.readlink(path)}, which does not exist: create that folder, or pass another"
    return None
