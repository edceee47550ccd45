"""Whether a process still runs (for run locks, stale cache temp files, killed runs), and a
process's children (Linux /proc; elsewhere none are found)."""

from __future__ import annotations

import os
from pathlib import Path


def process_alive(pid: int) -> bool:
    """True while process `pid` exists on this machine (also another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def running(pid: int) -> bool:
    """Alive and not a zombie (ended, waiting for its parent to collect its status)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return process_alive(pid)
    return stat.rpartition(")")[2].split()[0] != "Z"  # the state follows the command name


def child_processes(pid: int) -> dict[int, str]:
    """{child pid: its command line} of process `pid`'s running children."""
    children = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            ppid = int(entry.joinpath("stat").read_text().rpartition(")")[2].split()[1])
            if ppid == pid and running(int(entry.name)):
                cmdline = entry.joinpath("cmdline").read_bytes().replace(b"\0", b" ")
                children[int(entry.name)] = cmdline.decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue  # ended meanwhile, or not a process folder
    return children
