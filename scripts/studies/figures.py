"""The page's figures: bars (mean ± std over seeds) per arm, and per-epoch curves.

Drawn with regx's figure helpers (matplotlib's object API, no pyplot)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from regx.report import figures
from studies.rules import Metric, Stat

COLORS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C")


@dataclass(frozen=True)
class BarPanel:
    title: str
    metric: Metric
    labels: tuple[str, ...]  # one bar per label, top to bottom
    stats: tuple[Stat, ...]


@dataclass(frozen=True)
class CurvePanel:
    title: str
    ylabel: str
    lines: tuple[tuple[str, list[int], list[float]], ...]  # (label, epochs, values)
    scale: float = 100.0


def bar_panels(path: Path, panels: list[BarPanel], columns: int = 2) -> bool:
    """Horizontal bars with ±std whiskers, one panel per metric; False if nothing to draw."""
    panels = [p for p in panels if any(s.n for s in p.stats)]
    if not panels:
        return False
    # rows not run in any panel (arms cut at this scale) are left out
    keep = [i for i in range(len(panels[0].labels)) if any(p.stats[i].n for p in panels)]
    panels = [
        BarPanel(
            p.title, p.metric, tuple(p.labels[i] for i in keep), tuple(p.stats[i] for i in keep)
        )
        for p in panels
    ]
    columns = min(columns, len(panels))
    rows = math.ceil(len(panels) / columns)
    bars = max(len(p.labels) for p in panels)
    fig = figures.new_figure(4.6 * columns, rows * (0.8 + 0.2 * bars))
    fig.set_layout_engine("constrained")  # the page's figures are few: lay them out exactly
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax, panel in zip(axes.flat, panels):
        ys = list(range(len(panel.labels)))[::-1]
        means = [0.0 if s.n == 0 else s.mean * panel.metric.scale for s in panel.stats]
        errs = [0.0 if s.n < 2 else s.std * panel.metric.scale for s in panel.stats]
        colors = [COLORS[i % len(COLORS)] for i in range(len(ys))]
        ax.barh(ys, means, xerr=errs, color=colors, capsize=2, height=0.7)
        ax.set_yticks(ys)
        ax.set_yticklabels(panel.labels, fontsize=7.5)
        unit = panel.metric.unit.strip()
        ax.set_xlabel(panel.metric.title + (f" ({unit})" if unit else ""), fontsize=8)
        ax.tick_params(axis="x", labelsize=7.5)
        ax.set_title(panel.title, fontsize=9)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    figures.save(fig, path)
    return True


def curve_panels(path: Path, panels: list[CurvePanel]) -> bool:
    """Per-epoch lines (means over seeds), one panel each, one shared legend."""
    panels = [p for p in panels if any(values for _, _, values in p.lines)]
    if not panels:
        return False
    fig = figures.new_figure(4.4 * len(panels), 3.4)
    fig.set_layout_engine("constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, panel in zip(axes, panels):
        for i, (label, epochs, values) in enumerate(panel.lines):
            ax.plot(
                epochs,
                [v * panel.scale for v in values],
                color=COLORS[i % len(COLORS)],
                linewidth=1.3,
                marker="o" if len(epochs) < 3 else None,
                label=label,
            )
        ax.set_xlabel("epoch", fontsize=8)
        ax.set_ylabel(panel.ylabel, fontsize=8)
        ax.tick_params(labelsize=7.5)
        ax.set_title(panel.title, fontsize=9)
    axes[0].legend(fontsize=7, loc="best")
    figures.save(fig, path)
    return True
