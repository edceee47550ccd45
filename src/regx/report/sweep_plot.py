"""compare.png: accuracy against ECE per group of runs, mean ± std."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from regx.report.grouping import Group

COLORS = (
    "#4C72B0",
    "#DD8452",
    "#55A868",
    "#C44E52",
    "#8172B3",
    "#937860",
    "#DA8BC3",
    "#8C8C8C",
    "#CCB974",
    "#64B5CD",
)


MARKERS = "osD^vP*X"


def _plot_group(ax: Any, i: int, point: tuple[Any, ...], label: str) -> None:
    """Group i's mean ± std point, numbered, and its ECE after temperature scaling."""
    g, ece, ece_ts, acc = point
    color = COLORS[i % len(COLORS)]
    marker = MARKERS[(i // len(COLORS)) % len(MARKERS)]
    x, y = 100 * ece[0], 100 * acc[0]
    ax.errorbar(
        x,
        y,
        xerr=0.0 if math.isnan(ece[1]) else 100 * ece[1],
        yerr=0.0 if math.isnan(acc[1]) else 100 * acc[1],
        fmt=marker,
        color=color,
        markersize=7,
        capsize=3,
        label=label,
    )
    ax.annotate(
        str(g.index + 1), (x, y), xytext=(5, 5), textcoords="offset points",
        fontsize=9, color=color, weight="bold",
    )  # fmt: skip
    if ece_ts[2] > 0:
        xt = 100 * ece_ts[0]
        ax.plot([x, xt], [y, y], color=color, linewidth=0.8, alpha=0.6)
        ax.plot(xt, y, marker=marker, markerfacecolor="white", color=color, markersize=6)


def plot_compare(path: Path, groups: list[Group]) -> bool:
    """Test accuracy vs ECE, one numbered point per group (mean ± std over seeds), the ECE
    after temperature scaling as a hollow marker joined to it. False if nothing to plot."""
    import textwrap

    from regx.report import figures

    points = [(g, g.stats("test.ece"), g.stats("test_ts.ece"), g.stats("test.acc")) for g in groups]
    points = [p for p in points if p[1][2] > 0 and p[3][2] > 0]
    if not points:
        return False
    legend_text = [
        textwrap.fill(
            f"{g.index + 1}: {g.name} (n={len(g.finished)})", 110, subsequent_indent="     "
        )
        for g, *_ in points
    ]
    legend_lines = sum(t.count("\n") + 1 for t in legend_text) + 1
    height = 4.2 + 0.19 * legend_lines
    fig = figures.new_figure(7.6, height)
    ax = fig.subplots()
    for i, point in enumerate(points):
        _plot_group(ax, i, point, legend_text[i])
    ax.plot(
        [],
        [],
        marker="o",
        markerfacecolor="white",
        color="black",
        linestyle="-",
        linewidth=0.8,
        label="hollow marker: ECE after temperature scaling",
    )
    ax.set_xlabel("test ECE (%), lower is better")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Accuracy vs calibration per group: mean ± std over seeds", fontsize=10)
    ax.grid(alpha=0.3)
    ax.set_xlim(left=0)
    ax.margins(x=0.08, y=0.12)
    fig.legend(
        loc="lower left", bbox_to_anchor=(0.01, 0.0), fontsize=7.5, frameon=False, handletextpad=0.6
    )
    legend_inches = 0.19 * legend_lines + 0.15
    fig.subplots_adjust(
        left=0.1, right=0.97, bottom=(legend_inches + 0.55) / height, top=1 - 0.4 / height
    )
    figures.save(fig, path)
    return True
