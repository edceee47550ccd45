"""Freed host memory kept for reuse (trainer.reuse_host_memory, regx.engine.host_memory): a
block above glibc's own mmap limit comes from the heap, and the user's MALLOC_* choice wins."""

from __future__ import annotations

import ctypes
import json
import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc" or not hasattr(ctypes.CDLL(None), "mallinfo2"),
    reason="needs glibc ≥ 2.33 (mallinfo2)",
)

# In a fresh process: bytes newly mmapped for one 64 MiB tensor (glibc maps any block above
# its adaptive threshold, at most 32 MiB, on its own), before and after the run's runtime
# setup with trainer.reuse_host_memory true ("reuse") or false.
PROBE = """
import ctypes, json, sys, torch
from regx.engine.device import configure_runtime

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2

def mapped_for_one_block():
    before = libc.mallinfo2().hblkhd
    block = torch.empty(64 << 20, dtype=torch.uint8)
    after = libc.mallinfo2().hblkhd
    del block
    return after - before

untouched = mapped_for_one_block()
configure_runtime(torch.device("cpu"), None, 1, reuse_host_memory=sys.argv[1] == "reuse")
print(json.dumps({"untouched": untouched, "after": mapped_for_one_block()}))
"""


def _probe(setting: str, extra_env: dict[str, str]) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, setting], env={**env, **extra_env},
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_block_above_glibcs_own_limit_comes_from_the_heap_when_host_memory_is_reused():
    result = _probe("reuse", {})
    assert result["untouched"] >= 64 << 20  # glibc maps it: page faults at every step
    assert result["after"] == 0


def test_reuse_host_memory_false_leaves_malloc_as_it_was():
    result = _probe("keep-malloc", {})
    assert result["untouched"] >= 64 << 20 and result["after"] >= 64 << 20


def test_thresholds_the_user_set_in_the_environment_are_left_as_they_are():
    result = _probe("reuse", {"MALLOC_MMAP_THRESHOLD_": str(1 << 20)})
    assert result["after"] >= 64 << 20
