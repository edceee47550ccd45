"""Figures for the run and sweep reports, drawn with matplotlib's object API on an Agg canvas.

Cost matters: the run report is drawn at the end of every run (scripts/report_cost.py
measures it). What the measurements showed, and what follows from them:

- `matplotlib.pyplot` is never imported: it adds backend machinery and a global figure
  registry on top of `matplotlib.figure`, which is all a PNG needs.
- Every axes and every tick is a tree of Python artists; they, not pixels, dominate the
  render time. So the figures use few axes, fixed tick positions, no minor ticks, one
  legend per figure, and no `tight_layout` (which renders everything once more to measure
  it): margins are set by hand.
- PNGs are written at 100 dpi with zlib level 1: flat-colour plots compress almost as well
  as at the default level 6, in a fraction of the time.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

DPI = 100
PNG_OPTIONS = {"pil_kwargs": {"compress_level": 1}}

BLUE, ORANGE, GREEN, RED, GREY = "#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8C8C8C"
UNIT_TICKS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)

_preload: threading.Thread | None = None


def _import_matplotlib() -> None:
    """Import matplotlib and draw one small figure: the first draw loads the font files
    and fills the glyph caches, which every later figure then reuses."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1, 1), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_title("0.5 %", fontsize=9.5)
    ax.text(0.5, 0.5, "12", fontsize=7)
    fig.canvas.draw()


def preload_in_background() -> None:
    """Load matplotlib in a daemon thread, so a run's report does not wait for it.

    Called when a run starts: the import and the font loading (a few hundred ms of
    Python) then overlap with data loading and training, which spend most of their time
    in torch kernels that release the GIL. `new_figure` joins the thread, so the report
    never races a half-done import.
    """
    global _preload
    if _preload is None:
        _preload = threading.Thread(target=_import_matplotlib, name="regx-preload", daemon=True)
        _preload.start()


def new_figure(width: float, height: float) -> Any:
    """A `matplotlib.figure.Figure` attached to an Agg canvas (no pyplot, no GUI)."""
    if _preload is not None:
        _preload.join()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def save(fig: Any, path: Path) -> None:
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
    filled = weight > 0
    width = 1.0 / n_bins
    left = (np.arange(n_bins) * width)[filled]
    acc, conf, count = accuracy[filled], confidence[filled], weight[filled]
    ax.plot([0, 1], [0, 1], linestyle="--", color=GREY, linewidth=1, label="perfect calibration")
    ax.bar(left, acc, width=width, align="edge", color=BLUE, edgecolor="white", label="accuracy")
    lo, hi = np.minimum(acc, conf), np.maximum(acc, conf)
    ax.bar(
        left,
        hi - lo,
        bottom=lo,
        width=width,
        align="edge",
        facecolor=(0.77, 0.31, 0.32, 0.3),
        edgecolor=RED,
        hatch="///",
        linewidth=0.8,
        label="gap to mean confidence",
    )
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
