"""The run report's label-noise section and its figure `noise.png`.

Reads summary.json's `noise` (the flips, and fit_clean / memorized / recovered of the
evaluated model) and the per-epoch rows of metrics.csv (`noise_fit_clean`,
`noise_memorized`, `noise_recovered`, and `test_acc` when `track_test=true`).
The memorization regime shows as test accuracy peaking and then falling while
`memorized` rises (Zhang et al. 2017; Arpit et al. 2017).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from regx.report import figures
from regx.report.format import fmt_metric

# (metrics.csv column, label in the table and the figure)
COLUMNS = (
    ("test_acc", "test acc"),
    ("noise_fit_clean", "fit clean"),
    ("noise_memorized", "memorized"),
    ("noise_recovered", "recovered"),
)


def _number(value: Any) -> float | None:
    """A metrics.csv cell as a float (rows read back from the CSV hold strings)."""
    if value is None or value == "":
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _tracked(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows in which the memorization pass ran."""
    return [row for row in history if _number(row.get("noise_memorized")) is not None]


def _epoch_rows(summary: dict[str, Any], history: list[dict[str, Any]]) -> list[str]:
    """Table rows: the picked epoch, the epoch of peak test accuracy, the last tracked one."""
    rows = _tracked(history)
    if not rows:
        return []
    picked = summary.get("best_epoch")
    chosen = [(f"picked (best {summary.get('monitor', 'val')})", _row_at(rows, picked))]
    with_test = [r for r in rows if _number(r.get("test_acc")) is not None]
    if with_test:
        peak = max(with_test, key=lambda r: _number(r.get("test_acc")) or -1.0)
        chosen.append(("peak test accuracy", peak))
    chosen.append(("last tracked", rows[-1]))
    lines = []
    for name, row in chosen:
        if row is None:
            continue
        cells = [fmt_metric(_number(row.get(key)), 100, 2) for key, _ in COLUMNS]
        lines.append(f"| {name} | {row.get('epoch')} | " + " | ".join(cells) + " |")
    return lines


def _row_at(rows: list[dict[str, Any]], epoch: Any) -> dict[str, Any] | None:
    return next((r for r in rows if str(r.get("epoch")) == str(epoch)), None)


def _description(noise: dict[str, Any]) -> str:
    kind = noise.get("kind", "?")
    text = (
        f"**{kind}** label noise: {fmt_metric(noise.get('configured_rate'), 100, 1)}% "
        f"configured; {noise.get('flipped', '?')} of the {noise.get('train_pool', '?')} "
        f"training-pool labels flipped ({fmt_metric(noise.get('realized_rate'), 100, 2)}%)"
    )
    cmap = noise.get("class_map")
    if cmap:
        text += " by the map " + ", ".join(f"{s} → {t}" for s, t in cmap.items())
    text += ". The test set is clean. "
    if noise.get("clean_val"):
        text += (
            "**Validation uses the true labels** (`split.clean_val=true`, an analysis "
            "option: a real noisy dataset gives no such labels)."
        )
    else:
        text += "Validation labels are noisy like the training labels."
    return text


def noise_section(summary: dict[str, Any], history: list[dict[str, Any]]) -> list[str]:
    """Markdown lines of the label-noise section; [] for a run without label noise."""
    noise = summary.get("noise") or {}
    if not noise:
        return []
    lines = ["## Label noise", "", _description(noise), ""]
    final = [fmt_metric(noise.get(k), 100, 2) for k in ("fit_clean", "memorized", "recovered")]
    if any(cell != "—" for cell in final):
        test_acc = fmt_metric((summary.get("test") or {}).get("acc"), 100, 2)
        lines += [
            "Measured in eval mode on the unmixed training images "
            f"({fmt_metric(noise.get('rate'), 100, 2)}% of them flipped); memorized: flipped "
            "images predicted as their noisy label, recovered: as their true label.",
            "",
            "| model | epoch | " + " | ".join(name for _, name in COLUMNS) + " (%) |",
            "|---|---:|" + "---:|" * len(COLUMNS),
            f"| evaluated (summary.json) | {summary.get('best_epoch', '—')} | {test_acc} | "
            + " | ".join(final)
            + " |",
            *_epoch_rows(summary, history),
            "",
        ]
    if _tracked(history):
        lines += ["![label noise per epoch](noise.png)", ""]
    return lines


def plot_noise(
    path: Path | BinaryIO, history: list[dict[str, Any]], best_epoch: int | None = None
) -> bool:
    """Test accuracy (if logged), memorized, recovered and fit-clean per tracked epoch;
    False (nothing written) when no epoch was tracked."""
    rows = _tracked(history)
    if not rows:
        return False
    epochs = np.array([float(_number(r.get("epoch")) or 0.0) for r in rows])
    style = {
        "test_acc": (figures.GREY, "-"),
        "noise_fit_clean": (figures.BLUE, "--"),
        "noise_memorized": (figures.RED, "-"),
        "noise_recovered": (figures.GREEN, "-"),
    }
    fig = figures.new_figure(6.4, 4.0)
    ax = fig.subplots()
    marker = "o" if len(rows) <= 40 else None
    for key, name in COLUMNS:
        values = np.array(
            [np.nan if _number(r.get(key)) is None else _number(r.get(key)) for r in rows]
        )
        if np.isnan(values).all():
            continue
        color, line = style[key]
        ax.plot(
            epochs,
            100 * values,
            color=color,
            linestyle=line,
            marker=marker,
            markersize=3,
            label=name,
        )
    if best_epoch is not None:
        ax.axvline(best_epoch, color="black", linestyle=":", linewidth=1.2, label="picked epoch")
    from matplotlib.ticker import MaxNLocator

    ax.set_ylim(0, 100)
    figures.fixed_ticks(ax, y=(0.0, 20.0, 40.0, 60.0, 80.0, 100.0))
    ax.xaxis.set_major_locator(MaxNLocator(8, integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("%")
    ax.grid(alpha=0.3)
    ax.set_title(
        "Label noise: memorized = flipped images fitted to their noisy label", fontsize=9.5
    )
    ax.legend(loc="center right", fontsize=8, framealpha=0.9)
    fig.subplots_adjust(left=0.1, right=0.97, bottom=0.13, top=0.9)
    figures.save(fig, path)
    return True
