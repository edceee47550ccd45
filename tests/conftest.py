"""Shared test helpers: compose the real config (conf/), train in-process, run the CLI."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from omegaconf import DictConfig

from regx.config import compose_config  # the real config, as `regx train` composes it

# Keep tests on the CPU, quiet and single-threaded so they run alike everywhere.
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
# The fault tests plug in their own classes (tests/fault_plugins.py, fault_callbacks.py) as a user
# does: Hydra 1.4 instantiates only targets the user trusts (regx.config.hydra_compat).
os.environ["REGX_TRUSTED_TARGETS"] = "fault_plugins.*,fault_callbacks.*"

FAST = ["trainer.progress=false", "trainer.threads=1"]


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """torch's intra-op threads set to `count` inside, put back after (small tensors on a
    shared CPU: like the trainer's `trainer.threads=1`)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def one_thread() -> Iterator[None]:
    with torch_threads(1):
        yield


@pytest.fixture
def compose_cfg() -> Callable[..., DictConfig]:
    return compose_config


def train_in_process(overrides: list[str], run_dir: Path) -> dict[str, Any]:
    """Build the spec from the real config and train in this process; returns summary.json."""
    from regx.config.build import build_spec
    from regx.engine.run import train

    cfg = compose_config([*FAST, *overrides])
    spec = build_spec(cfg, overrides)
    return train(spec, run_dir)


@pytest.fixture
def train_run(tmp_path: Path) -> Callable[..., dict[str, Any]]:
    def run(overrides: list[str], run_dir: Path | None = None) -> dict[str, Any]:
        return train_in_process(overrides, run_dir or tmp_path / "run")

    return run


def run_cli(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 300):
    """`python -m regx ARGS` in a subprocess; returns the CompletedProcess (text)."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for name in ("HYDRA_FULL_ERROR", "REGX_DEBUG", "COLUMNS", "LINES"):  # the caller's shell's
        full_env.pop(name, None)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "regx", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def cli(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess]:
    def call(*args: str, env: dict[str, str] | None = None, timeout: float = 300):
        return run_cli(list(args), tmp_path, env, timeout)

    return call
