"""Number formatting shared by the run and sweep reports."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


def fmt_metric(value: Any, scale: float, decimals: int) -> str:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return "—"
    return f"{value * scale:.{decimals}f}"


@dataclass(frozen=True)
class Column:
    """A table column: `key` is a flattened summary key (or a derived one such as
    `val_test_gap`), shown ×`scale` with `decimals` decimals."""

    key: str
    title: str
    scale: float
    decimals: int
