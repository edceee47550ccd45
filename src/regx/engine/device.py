"""Device, precision, threads and determinism."""

from __future__ import annotations

import contextlib
import os
import random

import numpy as np
import torch

from regx.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                "trainer.device", name, "CUDA is not available on this machine; use auto or cpu"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                "trainer.device",
                name,
                f"this machine has {torch.cuda.device_count()} CUDA device(s)",
            )
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def configure_runtime(
    device: torch.device, deterministic: bool | None, threads: int | None
) -> bool:
    """Threads and determinism; returns whether deterministic algorithms are on."""
    torch.set_num_threads(threads or os.cpu_count() or 1)
    if deterministic is None:
        deterministic = device.type == "cpu"
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        torch.use_deterministic_algorithms(False)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cudnn.deterministic = deterministic
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return deterministic


def autocast(device: torch.device, precision: str):
    """The autocast context for `precision` ("32": none)."""
    if precision == "32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def check_precision(device: torch.device, precision: str) -> None:
    if precision == "16" and device.type != "cuda":
        raise ConfigError(
            "trainer.precision", precision, "float16 needs a CUDA device; use 32 or bf16"
        )
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError("trainer.precision", precision, "this GPU has no bfloat16; use 16 or 32")
