"""Number formatting shared by the run and sweep reports."""

from __future__ import annotations

import math
from typing import Any


def fmt_metric(value: Any, scale: float, decimals: int) -> str:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return "—"
    return f"{value * scale:.{decimals}f}"
