"""Files written whole or not at all, and a run's .hydra/ record; no torch here, so the
commands that only look at run dirs stay quick to start.

`atomic_write_bytes` writes to a temp file in the same folder, fsyncs, renames, fsyncs the
folder: a crash (or SIGKILL) mid-write leaves the previous file intact, and readers only
ever see a complete old file or a complete new one. The temp files a killed writer left are
removed by the next write of the same file.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from regx.processes import process_alive

HYDRA_FILES = ("config.yaml", "hydra.yaml", "overrides.yaml")  # what Hydra writes to .hydra/


def atomic_write_bytes(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Call `write(file)` on a temp file next to `path`, then atomically replace `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        if e.filename is None:  # a failed write names no file: name the one being written
            raise OSError(e.errno, e.strerror or str(e), str(path)) from None
        raise
    finally:
        if tmp.exists():
            tmp.unlink()
    try:
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:  # some file systems cannot fsync a directory
        pass


def _remove_stale_temporaries(path: Path) -> None:
    """Temp files of earlier writes of `path` whose process is gone (killed mid-write)."""
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        pid = stale.name[len(path.name) + 2 : -len(".tmp")]
        if pid.isdigit() and int(pid) != os.getpid() and not process_alive(int(pid)):
            with contextlib.suppress(OSError):
                stale.unlink()


def read_hydra_files(run_dir: Path) -> dict[str, str]:
    """The text of the run's .hydra/*.yaml (empty outside Hydra, e.g. in-process tests)."""
    folder = run_dir / ".hydra"
    return {n: (folder / n).read_text() for n in HYDRA_FILES if (folder / n).is_file()}


def put_back_hydra_files(run_dir: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        atomic_write_bytes(run_dir / ".hydra" / name, lambda f, t=text: f.write(t.encode()))


def summary_of(run_dir: Path) -> dict[str, Any] | None:
    """The run's summary.json as a dict; None if absent or not a JSON object."""
    try:
        summary = json.loads((Path(run_dir) / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) else None
