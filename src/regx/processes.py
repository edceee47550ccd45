"""Whether a process still runs (for run locks, stale cache temp files, killed runs)."""

from __future__ import annotations

import os


def process_alive(pid: int) -> bool:
    """True while process `pid` exists on this machine (also another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True
