"""Atomic checkpoints: write to a temp file in the same folder, fsync, rename, fsync the folder.

A crash (or SIGKILL) during a save leaves the previous checkpoint intact: readers only ever
see a complete old file or a complete new one.
"""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from regx.errors import DataError


def atomic_write_bytes(path: Path, write) -> None:
    """Call `write(file)` on a temp file next to `path`, then atomically replace `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
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


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    atomic_write_bytes(path, lambda f: torch.save(state, f))


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpoint at `path`; an unreadable file is a `DataError` naming it and the fix."""
    try:
        # weights_only=False: the file holds RNG states and plain Python objects we wrote
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as e:
        reason = " ".join(str(e).split())[:160] or type(e).__name__
        raise DataError(
            f"checkpoint {path} is unreadable ({reason}): delete it to start the run over, "
            "or pass trainer.resume=never"
        ) from None
    if not isinstance(ckpt, dict):
        raise DataError(
            f"checkpoint {path} holds a {type(ckpt).__name__}, not a regx checkpoint: "
            "delete it to start the run over, or pass trainer.resume=never"
        )
    return ckpt


# Settings that may change when a run is resumed: they decide where and how fast it runs,
# or what is logged, never what it computes (device: a run may move machines; on CUDA it
# is not bit-exact anyway).
RESUME_FREE_KEYS = (
    "out_dir",
    "hydra",
    "logger",
    "objective",
    "sweep",  # sweep.skip_done: re-launching a sweep resumes its interrupted jobs
    "trainer.progress",
    "trainer.threads",
    "trainer.num_workers",
    "trainer.data_on_device",
    "trainer.eval_batch_size",
    "trainer.nan_check_every",
    "trainer.resume",
    "trainer.device",
)


def flatten_config(config: Any, prefix: str = "") -> dict[str, Any]:
    """{"a.b.c": value} for every leaf of nested dicts (lists are leaves)."""
    if not isinstance(config, dict):
        return {prefix: config}
    flat: dict[str, Any] = {}
    for key, value in config.items():
        flat.update(flatten_config(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """`key: saved → current` for each setting that differs, except `RESUME_FREE_KEYS`."""

    def free(key: str) -> bool:
        return any(key == k or key.startswith(k + ".") for k in RESUME_FREE_KEYS)

    old, new = flatten_config(saved), flatten_config(current)
    missing = object()
    return [
        f"{key}: {_show(old.get(key, missing))} → {_show(new.get(key, missing))}"
        for key in sorted(set(old) | set(new))
        if not free(key) and old.get(key, missing) != new.get(key, missing)
    ]


def _show(value: Any) -> str:
    if not isinstance(value, (str, int, float, bool, list, type(None))):
        return "(absent)"
    return "null" if value is None else str(value)


def rng_state() -> dict[str, Any]:
    state = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
