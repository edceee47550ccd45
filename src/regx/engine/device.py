"""Device, precision, threads and determinism.

Two costs are avoided here on purpose:
- `torch.use_deterministic_algorithms` imports `torch._inductor.config`, which pulls in
  all of dynamo and sympy (2–4 s on a laptop) just to set one inductor flag; without
  `torch.compile` that flag is never read, so the C++ switch is set directly.
- threads: an explicit `OMP_NUM_THREADS` (joblib sets it for each worker of a parallel
  sweep) wins over "all cores", and cores other processes keep busy are not claimed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import sys

import numpy as np
import torch

from regx.engine.host_memory import keep_freed_memory
from regx.errors import ConfigError

log = logging.getLogger("regx")


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


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the whole machine)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def default_threads() -> int:
    """Intra-op threads for one run: `OMP_NUM_THREADS` when set (the joblib launcher sets it
    to 1 per worker), else every available core.

    Deliberately not adapted to the machine's current load: the thread count can change
    floating-point reduction order, and the same seed must give the same numbers. On a
    machine shared with other busy processes, pass `trainer.threads=1`: torch's OpenMP
    threads spin at each barrier, and an oversubscribed 2-thread step was measured 10–20×
    slower than a 1-thread one on a 2-core machine at load 8.
    """
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return available_cores()


def set_deterministic(mode: bool, compiling: bool = False) -> None:
    """Switch deterministic algorithms (warn-only) without importing inductor unless needed."""
    if compiling or "torch._inductor.config" in sys.modules:
        # inductor reads its own copy of the flag, so keep both in step
        torch.use_deterministic_algorithms(mode, warn_only=True)
        return
    if (
        torch.are_deterministic_algorithms_enabled() == mode
        and torch.is_deterministic_algorithms_warn_only_enabled() == mode
    ):
        return
    torch._C._set_deterministic_algorithms(mode, warn_only=mode)


def configure_runtime(
    device: torch.device,
    deterministic: bool | None,
    threads: int | None,
    compiling: bool = False,
    reuse_host_memory: bool = True,
) -> bool:
    """Threads, determinism, CUDA kernel selection and host memory reuse
    (`regx.engine.host_memory`); returns whether determinism is on.

    `deterministic=None` means on for CPU (free there) and off for CUDA, where it would
    forbid cudnn.benchmark's autotuned convolutions.
    """
    cores = available_cores()
    if threads and threads > cores:
        log.warning(
            "trainer.threads=%d is more than the %d cores this process may use: the threads "
            "spin waiting for each other and the run is slower; trainer.threads=%d or less",
            threads, cores, cores,
        )  # fmt: skip
    torch.set_num_threads(threads or default_threads())
    if reuse_host_memory:
        keep_freed_memory()
    if deterministic is None:
        deterministic = device.type == "cpu"
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    set_deterministic(deterministic, compiling)
    if device.type == "cuda":
        # benchmark: cudnn times its convolution algorithms once per input shape and keeps
        # the fastest; the batch shape is fixed (drop_last), so that happens once per run
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cudnn.deterministic = deterministic
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return deterministic


def use_channels_last(setting: bool | None, device: torch.device) -> bool:
    """Whether the model and its inputs run channels_last (NHWC). `None` means on for a
    CPU, whose oneDNN convolutions and pooling run NHWC faster (epochs 1.2–1.4× faster for
    the conv nets here, max-pooling of a small NCHW map ~10× slower than NHWC), and off
    for CUDA, where `trainer=fast` turns it on with bf16."""
    return device.type == "cpu" if setting is None else setting


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
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
