"""The files of a run directory: metrics.csv, summary.json, predictions.npz (all atomic)."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from regx.engine.files import atomic_write_bytes


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if hasattr(value, "item") and callable(value.item):  # 0-dim tensors
        return _jsonable(value.item())
    return value


def write_json(path: Path, data: dict[str, Any]) -> None:
    text = json.dumps(_jsonable(data), indent=2, sort_keys=False) + "\n"
    atomic_write_bytes(path, lambda f: f.write(text.encode()))


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def write_metrics_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """All epochs so far, one row each; columns in first-seen order (union over rows)."""
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _fmt(v) for k, v in row.items()})
    data = buf.getvalue().encode()
    atomic_write_bytes(path, lambda f: f.write(data))


def read_metrics_csv(path: Path) -> list[dict[str, Any]]:
    with open(path, newline="") as f:
        return [{k: _parse(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        return f"{v:.6g}"
    return v


def _parse(v: str) -> Any:
    if v == "":
        return None
    try:
        f = float(v)
    except ValueError:
        return v
    return int(f) if f.is_integer() and "." not in v and "e" not in v.lower() else f


def write_predictions(path: Path, **arrays: np.ndarray) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    data = buf.getvalue()
    atomic_write_bytes(path, lambda f: f.write(data))
