"""Helpers of the fault tests: run `regx train` in-process or as a process, compare runs.

"Identical runs" compare everything a run computed and nothing about when, where or how
fast: summary.json's COMPARED fields (all test/val/temperature-scaled metrics, retrieval,
split diagnostics, best and last epoch, dataset sizes, seed, status) must be equal
exactly (floats bit for bit, as JSON keeps them), metrics.csv must be equal without its
`seconds` column, and predictions.npz must hold the same arrays byte for byte. Timings
(`*_time_s`, `compile_seconds`), timestamps (`started`, `finished`), `device`, `versions`,
`overrides` and `config_hash` (a fault plugin changes the loss's `_target_`, not its
numbers) are not compared.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from regx.app.hydra_task import run_hydra

TESTS_DIR = Path(__file__).resolve().parent
FAST = ["trainer.progress=false", "trainer.threads=1"]
COMPARED = (
    "status",
    "test",
    "test_ts",
    "temperature",
    "val",
    "retrieval",
    "split",
    "best_epoch",
    "epochs_run",
    "dataset",
    "seed",
)


def read_summary(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "summary.json").read_text())


def metric_fields(summary: dict[str, Any]) -> dict[str, Any]:
    return {key: summary.get(key) for key in COMPARED}


def metric_rows(run_dir: Path) -> list[dict[str, str]]:
    """metrics.csv as written (strings), without the wall-clock `seconds` column."""
    lines = (run_dir / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    return [{k: v for k, v in zip(header, line.split(",")) if k != "seconds"} for line in lines[1:]]


def assert_same_run(run_dir: Path, reference_dir: Path) -> None:
    """The run in `run_dir` computed exactly what the run in `reference_dir` computed."""
    assert metric_fields(read_summary(run_dir)) == metric_fields(read_summary(reference_dir))
    assert metric_rows(run_dir) == metric_rows(reference_dir)
    with (
        np.load(run_dir / "predictions.npz") as got,
        np.load(reference_dir / "predictions.npz") as want,
    ):
        assert sorted(got.files) == sorted(want.files)
        for name in want.files:
            assert got[name].tobytes() == want[name].tobytes(), name


def hydra_in_process(args: list[str]) -> tuple[int, str, str]:
    """`regx train ARGS` in this process: (exit code, stdout, stderr).

    Hydra points the root logger at the streams of the moment; they are put back after,
    so later tests do not log into a closed buffer.
    """
    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = run_hydra([*args, *FAST])
    finally:
        for handler in root.handlers:
            if handler not in handlers:
                handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)
    return code, out.getvalue(), err.getvalue()


def error_line(stderr: str) -> str:
    """The one `error: …` line of a failed command (asserting there is exactly one line)."""
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{stderr}"
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def regx_process(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`python -m regx ARGS` as a child process (fault plugins importable), output captured;
    `env` adds to the environment."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "CUDA_VISIBLE_DEVICES": "", **(env or {})}
    env.pop("HYDRA_FULL_ERROR", None)
    env.pop("REGX_DEBUG", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS_DIR), env.get("PYTHONPATH")]))
    return subprocess.Popen(
        [sys.executable, "-m", "regx", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(condition, proc: subprocess.Popen, what: str, timeout: float = 240.0) -> None:
    """Poll `condition()` every 10 ms; fail if `proc` ends first or time runs out."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            _, err = proc.communicate()
            raise AssertionError(f"the run ended (rc {proc.returncode}) before {what}:\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def file_identity(path: Path) -> tuple[int, int] | None:
    """(inode, mtime_ns) of `path`, or None: an atomic replace changes the inode."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns
