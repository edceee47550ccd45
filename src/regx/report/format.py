"""Number formatting shared by the run and sweep reports."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


def result_line(summary: dict[str, Any]) -> str:
    """The line `regx train` and `regx evaluate` end with: test accuracy and ECE, before and
    after temperature scaling, in %."""
    test, ts = summary.get("test", {}), summary.get("test_ts", {})
    nan = math.nan
    return (
        f"test acc {100 * test.get('acc', nan):.2f}%  ECE {100 * test.get('ece', nan):.2f}%"
        f"  (after temperature scaling {100 * ts.get('ece', nan):.2f}%)"
    )


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
