"""The run report's figures: reliability diagram, confidence histogram, training curves."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from regx.metrics.calibration import reliability_bins
from regx.report import figures
from regx.report.format import fmt_metric


def plot_reliability(
    path: Path | BinaryIO,
    probs: torch.Tensor,
    probs_ts: torch.Tensor | None,
    labels: torch.Tensor,
    n_bins: int,
    summary: dict[str, Any],
) -> None:
    """One panel before temperature scaling, a second after it when T ≠ 1."""
    t = summary.get("temperature", 1.0)
    panels = [("test", probs, "before temperature scaling")]
    if probs_ts is not None and t != 1.0:
        panels.append(("test_ts", probs_ts, f"after temperature scaling, T = {t:.3g}"))
    fig = figures.new_figure(4.4 * len(panels), 4.9)
    axes = fig.subplots(1, len(panels), squeeze=False, sharey=True)[0]
    for ax, (key, p, subtitle) in zip(axes, panels):
        bins = reliability_bins(p.double(), labels, n_bins)
        m = summary.get(key) or {}
        figures.reliability_panel(
            ax,
            bins["weight"].numpy(),
            bins["accuracy"].numpy(),
            bins["confidence"].numpy(),
            f"Test set, {subtitle}\n"
            f"ECE {fmt_metric(m.get('ece'), 100, 2)}%   MCE {fmt_metric(m.get('mce'), 100, 2)}%   "
            f"acc {fmt_metric(m.get('acc'), 100, 2)}%",
        )
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=len(panels) + 1, fontsize=8, frameon=False)
    width = 4.4 * len(panels)
    fig.subplots_adjust(  # margins in inches, as figure fractions
        left=0.75 / width, right=1 - 0.2 / width, bottom=0.2, top=0.89, wspace=0.25
    )
    figures.save(fig, path)


def _confidence_axes(ax: Any, conf: np.ndarray, edges: np.ndarray, lo: float) -> None:
    """Log counts up to the next power of ten, plain tick labels, confidence ticks."""
    from matplotlib.ticker import FuncFormatter

    ax.set_yscale("log")
    # up to the next power of ten, so the top count has a labelled tick above it
    most = max(int(np.histogram(conf, edges)[0].max()), 1)
    ax.set_ylim(0.8, 10 ** math.ceil(math.log10(most * 1.05) + 1e-9))
    # plain 1, 10, 100 instead of the log axis's default 10^k, which goes through mathtext
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    # a little room right of 1: a mark at 100 % (accuracy, confidence) clear of the frame
    ax.set_xlim(lo, 1.0 + 0.02 * (1.0 - lo))
    step = 0.1 if lo >= 0.5 else 0.2
    ticks = np.arange(math.ceil(lo / step - 1e-9) * step, 1.0 + 1e-9, step)
    figures.fixed_ticks(ax, x=tuple(float(round(x, 2)) for x in ticks))
    ax.set_xlabel("confidence (top-label probability)")
    ax.set_ylabel("test images (log scale)")


def plot_confidence(
    path: Path | BinaryIO, probs: torch.Tensor, labels: torch.Tensor, summary: dict[str, Any]
) -> None:
    """Histogram of top-label confidence for correct and wrong test predictions, overlaid
    on a log scale (so a handful of confident errors stays visible next to hundreds of
    correct predictions), with the mean confidence and the accuracy marked."""
    conf_t, pred = probs.max(dim=1)
    conf = conf_t.double().numpy()
    correct = (pred == labels).numpy()
    k = probs.shape[1]
    lo = 1.0 / k if k > 1 else 0.0  # the top label has probability ≥ 1/K
    fig = figures.new_figure(6.4, 4.0)
    ax = fig.subplots()
    edges = np.linspace(lo, 1.0, 21)
    # np.histogram + one StepPatch per series: the same bars as ax.hist, without one
    # Rectangle artist per bin. Overlaid (log counts keep both readable), wrong on top.
    ax.stairs(
        np.histogram(conf[correct], edges)[0],
        edges,
        fill=True,
        color=figures.GREEN,
        alpha=0.75,
        label=f"correct ({int(correct.sum())})",
    )
    wrong_counts = np.histogram(conf[~correct], edges)[0]
    ax.stairs(
        wrong_counts,
        edges,
        fill=True,
        facecolor="none",
        edgecolor=figures.RED,
        hatch="////",
        linewidth=1.5,
        label=f"wrong ({int((~correct).sum())})",
    )
    test = summary.get("test") or {}
    mean_conf, acc = test.get("mean_confidence", math.nan), test.get("acc", math.nan)
    marks = (
        (mean_conf, "black", "--", 1.2, f"mean confidence {fmt_metric(mean_conf, 100, 2)}%"),
        (acc, figures.BLUE, ":", 1.8, f"accuracy {fmt_metric(acc, 100, 2)}%"),
    )
    for x, color, style, width, label in marks:
        ax.axvline(x, color=color, linestyle=style, linewidth=width, label=label, zorder=3)
    _confidence_axes(ax, conf, edges, lo)
    over = test.get("overconfidence", math.nan)
    ax.set_title(
        f"Confidence on the test set, before temperature scaling\n"
        f"mean confidence − accuracy = {fmt_metric(over, 100, 2)} pt",
        fontsize=9.5,
    )
    ax.legend(loc="upper left", fontsize=8, framealpha=0.9)
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.13, top=0.87)
    figures.save(fig, path)


def _curves_legend_and_title(
    fig: Any, axes: Any, history: list[dict[str, Any]], best_epoch: int | None
) -> float:
    """One legend for the figure (every series once) and the best epoch's numbers on top;
    returns the inches they take above the panels."""
    handles: dict[str, Any] = {}
    for ax in axes:  # one legend for the figure: every series once
        for handle, name in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(name, handle)
    height = fig.get_figheight()
    ncol = min(len(handles), 4)  # 7.5 in hold four entries of the longest labels
    legend_rows = -(-len(handles) // max(ncol, 1))
    fig.legend(
        list(handles.values()),
        list(handles),
        loc="upper center",
        bbox_to_anchor=(0.5, 1 - 0.29 / height),
        ncol=ncol,
        fontsize=8,
        frameon=False,
    )
    best = next((row for row in history if row.get("epoch") == best_epoch), history[-1])
    fig.text(
        0.5,
        1 - 0.064 / height,
        f"Training curves. Epoch {best['epoch']}"
        + (" (best)" if best.get("epoch") == best_epoch else " (last)")
        + f": val loss {best.get('val_loss', math.nan):.4f}, "
        f"val acc {fmt_metric(best.get('val_acc'), 100, 2)}%, "
        f"val ECE {fmt_metric(best.get('val_ece'), 100, 2)}%",
        ha="center",
        va="top",
        fontsize=9.5,
    )
    return 0.4 + 0.2 * legend_rows


# Values that change during training (metrics.csv columns), drawn in a panel of their own
# when one of them varies over the epochs.
SCHEDULE_SERIES = (
    ("gamma", "γ (γ-CE)", "#8172B3", "γ"),
    ("lam_mean", "λ, mean over the mixed batches", figures.GREEN, "λ"),
    ("margin", "margin m (AM-Softmax)", figures.RED, "margin"),
)


def _series(history: list[dict[str, Any]], key: str) -> np.ndarray | None:
    """A metrics.csv column as floats (nan where a row lacks it); None when no row has it."""
    values = [row.get(key) for row in history]
    if all(v is None for v in values):
        return None
    return np.array([np.nan if v is None else float(v) for v in values])


def varies(values: np.ndarray | None) -> bool:
    """Whether a column takes more than one finite value over the epochs."""
    if values is None:
        return False
    finite = values[np.isfinite(values)]
    return finite.size > 1 and float(finite.max() - finite.min()) > 1e-9


def train_label(history: list[dict[str, Any]]) -> str:
    """What the train loss and accuracy were measured on: with a mixing augmentation, the
    mixed batches (mixed inputs, scored against the mixed losses' labels), not the data."""
    fractions = [float(row.get("mix_fraction") or 0.0) for row in history]
    share = sum(fractions) / len(fractions) if fractions else 0.0
    if share <= 0.0:
        return "train"
    if share >= 0.995:
        return "train (mixed batches)"
    return f"train ({100 * share:.0f} % of batches mixed)"


def _curve_panels(
    history: list[dict[str, Any]],
) -> list[tuple[str, list[tuple[str, str, str]], float]]:
    """(y label, [(column, legend label, colour)], scale) of each panel to draw."""
    train = (train_label(history), figures.BLUE)
    val, test = ("validation", figures.ORANGE), ("test (analysis only)", figures.GREY)
    panels = [
        ("loss", [("train_loss", *train), ("val_loss", *val)], 1.0),
        ("accuracy (%)", [("train_acc", *train), ("val_acc", *val), ("test_acc", *test)], 100.0),
        ("validation ECE (%)", [("val_ece", *val)], 100.0),
    ]
    schedule = [s for s in SCHEDULE_SERIES if varies(_series(history, s[0]))]
    if schedule:
        name = " / ".join(short for *_, short in schedule)
        panels.append((name, [(key, label, color) for key, label, color, _ in schedule], 1.0))
    return panels


def plot_curves(
    path: Path | BinaryIO, history: list[dict[str, Any]], best_epoch: int | None
) -> bool:
    """Loss, accuracy and validation ECE per epoch, and γ / λ / margin where they vary;
    False (nothing written) without history."""
    if not history:
        return False
    from matplotlib.ticker import MaxNLocator

    epochs = np.array([row["epoch"] for row in history], dtype=float)
    panels = _curve_panels(history)
    # Stacked on one epoch axis: one row of x tick labels instead of three (text is what
    # costs most to draw), and the epochs line up across the panels.
    height = 1.9 * len(panels) + 1.0
    fig = figures.new_figure(7.5, height)
    axes = fig.subplots(len(panels), 1, sharex=True)
    marker = "o" if len(epochs) <= 40 else None
    for ax, (name, lines, scale) in zip(axes, panels):
        for key, label, color in lines:
            values = _series(history, key)
            if values is not None:
                ax.plot(
                    epochs, scale * values, color=color, marker=marker, markersize=3, label=label
                )
        if best_epoch is not None:
            ax.axvline(best_epoch, color="black", linestyle=":", linewidth=1.2, label="best epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.yaxis.set_major_locator(MaxNLocator(4))
    axes[-1].xaxis.set_major_locator(MaxNLocator(8, integer=True))
    axes[-1].set_xlabel("epoch")
    above = _curves_legend_and_title(fig, axes, history, best_epoch)
    # margins in inches (title and legend, the epoch label), as fractions of the height
    fig.subplots_adjust(
        left=0.11, right=0.98, bottom=0.5 / height, top=1 - above / height, hspace=0.08
    )
    figures.save(fig, path)
    return True
