"""Where a run ran: package versions and the device, for summary.json."""

from __future__ import annotations

import platform

import numpy as np
import torch


def _installed_version(dist: str) -> str | None:
    """A distribution's version from its metadata, without importing it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def versions() -> dict[str, str | None]:
    # torchvision's version is read from its metadata: importing it only for the version
    # string costs seconds on every run that does not use a torchvision model or dataset
    return {
        "regx": _installed_version("regx"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": _installed_version("torchvision"),
        "numpy": np.__version__,
    }


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
