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


def stat_fields(pid: int) -> list[str] | None:
    """Fields 3… of /proc/PID/stat (state, ppid, …, starttime at index 19), or None where
    there is no such file: the command name before them is in parentheses and may hold
    spaces, so the split starts after its last ')'."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()


def running(pid: int) -> bool:
    """Alive and not a zombie (ended, waiting for its parent to collect its status)."""
    fields = stat_fields(pid)
    if not fields:
        return process_alive(pid)
    return fields[0] != "Z"


def child_processes(pid: int) -> dict[int, str]:
    """{child pid: its command line} of process `pid`'s running children."""
    children = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            fields = stat_fields(int(entry.name))  # state, ppid, …: one read per process
            if fields and int(fields[1]) == pid and fields[0] != "Z":
                cmdline = entry.joinpath("cmdline").read_bytes().replace(b"\0", b" ")
                children[int(entry.name)] = cmdline.decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue  # ended meanwhile, or not a process folder
    return children
