"""Atomic checkpoints (`engine.files.atomic_write_bytes`): a crash (or SIGKILL) during a save
leaves the previous checkpoint intact.

A checkpoint holds tensors and plain Python values only (the NumPy RNG state is stored as
a tensor and numbers), and is read with `torch.load(weights_only=True)`: opening a run dir
someone else made cannot run code hidden in its pickles. Checkpoints of earlier versions,
whose NumPy state is an array, are read with just NumPy's array constructors allowed."""

from __future__ import annotations

import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from regx.engine.files import atomic_write_bytes
from regx.errors import DataError


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    atomic_write_bytes(path, lambda f: _torch_save(state, f))


def _torch_save(state: dict[str, Any], f: Any) -> None:
    """torch.save, whose writer turns a failed write (a full disk) into a RuntimeError:
    the OSError under it is what the caller reports (one line naming the file)."""
    try:
        torch.save(state, f)
    except RuntimeError as e:
        cause = e.__cause__ or e.__context__
        if isinstance(cause, OSError):
            raise cause from None
        raise


# What to do about an unreadable checkpoint depends on who reads it: a resume can start over
RESUME_FIX = "delete it to start the run over, or pass trainer.resume=never"


def short_reason(error: BaseException, limit: int = 120) -> str:
    """An exception's message as a short reason: its first sentence, cut at a word."""
    text = " ".join(str(error).split()) or type(error).__name__
    text = text.split(". ")[0].rstrip(".")
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(",;:") + " …"


def weights_fix(path: Path) -> str:
    """The fix for an unreadable checkpoint that `regx evaluate` / `regx.load_run` read."""
    last = path.with_name("last.pt")
    if path.name == "best.pt" and last.is_file():
        return "delete it to use the best weights checkpoints/last.pt keeps, or re-train the run"
    return "the run's weights are lost: re-train the run (its overrides: .hydra/overrides.yaml)"


def load_checkpoint(
    path: Path, map_location: str | torch.device = "cpu", fix: str | None = None
) -> dict[str, Any]:
    """The checkpoint at `path`; an unreadable file is a `DataError` naming it and `fix`
    (by default what a reader of the run's weights can do, `weights_fix`)."""
    fix = fix or weights_fix(path)
    try:
        with torch.serialization.safe_globals(_numpy_array_globals()):
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only load failed" in str(e).lower():
            raise DataError(
                f"checkpoint {path} holds objects other than tensors and plain values, which "
                f"regx does not load (unpickling them could run code): {fix}"
            ) from None
        raise DataError(f"checkpoint {path} is unreadable ({short_reason(e)}): {fix}") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise DataError(f"checkpoint {path} is unreadable ({short_reason(e)}): {fix}") from None
    except Exception as e:  # a damaged zip or pickle can fail in many ways
        raise DataError(
            f"checkpoint {path} is unreadable ({type(e).__name__}: {short_reason(e)}): {fix}"
        ) from None
    if not isinstance(ckpt, dict):
        raise DataError(
            f"checkpoint {path} holds a {type(ckpt).__name__}, not a regx checkpoint: {fix}"
        )
    if not isinstance(ckpt.get("model"), dict):
        raise DataError(f"checkpoint {path} holds no model weights (no 'model'): {fix}")
    return ckpt


def _numpy_array_globals() -> list[Any]:
    """What unpickling a NumPy array needs (earlier checkpoints' NumPy RNG state)."""
    multiarray = getattr(np, "_core", None) or np.core
    return [multiarray.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


def rng_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": str(name),
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    if isinstance(numpy_state, dict):
        keys = numpy_state["keys"].numpy().astype(np.uint32)
        numpy_state = (
            numpy_state["name"],
            keys,
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    np.random.set_state(numpy_state)
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
