"""Figures for the run and sweep reports, drawn with matplotlib's object API on an Agg canvas.

Cost matters: the run report is drawn at the end of every run (scripts/report_cost.py
measures it). What the measurements showed, and what follows from them:

- Importing matplotlib and the first draw of each kind of figure (fonts, glyph caches)
  cost about as much as drawing the figures. `regx train` therefore draws them in a worker
  process forked when the run starts, which pays those costs while the run trains
  (`regx.report.figure_worker`).
- `matplotlib.pyplot` is never imported: it adds backend machinery and a global figure
  registry on top of `matplotlib.figure`, which is all a PNG needs.
- Artists, not pixels, dominate the draw time — above all text (tick labels) and one
  Rectangle per histogram bar. So: few axes (the training curves share one epoch axis),
  fixed or few ticks, no minor ticks, one legend per figure, histograms as a single
  `stairs` patch, no mathtext, and no `tight_layout` (it draws everything once more to
  measure it): margins are set by hand.
- PNGs are written at 100 dpi with zlib level 1: flat-colour plots compress almost as well
  as at the default level 6, in a fraction of the time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

DPI = 100
PNG_OPTIONS = {"pil_kwargs": {"compress_level": 1}}

BLUE, ORANGE, GREEN, RED, GREY = "#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8C8C8C"
UNIT_TICKS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


def new_figure(width: float, height: float) -> Any:
    """A `matplotlib.figure.Figure` attached to an Agg canvas (no pyplot, no GUI)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def save(fig: Any, path: Path | BinaryIO) -> None:
    fig.savefig(path, dpi=DPI, **PNG_OPTIONS)


def fixed_ticks(
    ax: Any, x: tuple[float, ...] | None = None, y: tuple[float, ...] | None = None
) -> None:
    from matplotlib.ticker import NullLocator

    if x is not None:
        ax.set_xticks(x)
    if y is not None:
        ax.set_yticks(y)
    ax.xaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_minor_locator(NullLocator())


def reliability_panel(
    ax: Any,
    weight: np.ndarray,
    accuracy: np.ndarray,
    confidence: np.ndarray,
    title: str,
) -> None:
    """Accuracy per equal-width confidence bin as bars, the gap between each bin's accuracy
    and its mean confidence (the ECE term) hatched, the diagonal, and each bin's count."""
    n_bins = len(weight)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    filled = weight > 0
    # Empty bins: zero height (invisible). Each series is one StepPatch, not one Rectangle
    # per bin: far fewer artists to lay out and draw.
    acc_all = np.where(filled, accuracy, 0.0)
    lo_all = np.where(filled, np.minimum(accuracy, confidence), 0.0)
    hi_all = np.where(filled, np.maximum(accuracy, confidence), 0.0)
    ax.plot([0, 1], [0, 1], linestyle="--", color=GREY, linewidth=1, label="perfect calibration")
    ax.stairs(acc_all, edges, fill=True, color=BLUE, label="accuracy")
    ax.stairs(
        hi_all,
        edges,
        baseline=lo_all,
        fill=True,
        facecolor=(0.77, 0.31, 0.32, 0.3),
        edgecolor=RED,
        hatch="///",
        linewidth=0.8,
        label="gap to mean confidence",
    )
    # white separators between neighbouring bars, as a bar chart has
    ax.vlines(edges[1:-1], 0, np.maximum(hi_all[:-1], hi_all[1:]), colors="white", linewidth=1)
    width = 1.0 / n_bins
    left = edges[:-1][filled]
    hi, count = hi_all[filled], weight[filled]
    for x, top, n in zip(left + width / 2, hi, count):
        text = f"{n:.0f}" if float(n).is_integer() else f"{n:.1f}"
        ax.text(x, top + 0.01, text, ha="center", va="bottom", fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.1)
    fixed_ticks(ax, UNIT_TICKS, UNIT_TICKS)
    ax.set_xlabel(f"confidence (top-label probability), {n_bins} bins")
    if ax.get_subplotspec().is_first_col():
        ax.set_ylabel("accuracy in bin (number: images in bin)")
    ax.set_title(title, fontsize=9.5)
