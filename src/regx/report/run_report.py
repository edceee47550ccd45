"""The per-run report: report.md with reliability.png, confidence.png, curves.png (and
split.png for splits that provide diagnostic arrays).

Every number in report.md is a value of summary.json, rounded for display; the figures
are drawn from the same float32 probabilities the metrics were computed from.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from regx.metrics.calibration import reliability_bins
from regx.report import figures

# (summary key, row name, scale, decimals): percentages are shown ×100.
METRIC_ROWS = (
    ("acc", "accuracy (%)", 100, 2),
    ("nll", "NLL", 1, 4),
    ("brier", "Brier", 1, 4),
    ("ece", "ECE (%)", 100, 2),
    ("ace", "adaptive ECE (%)", 100, 2),
    ("mce", "MCE (%)", 100, 2),
    ("classwise_ece", "classwise ECE (%)", 100, 3),
    ("mean_confidence", "mean confidence (%)", 100, 2),
    ("overconfidence", "over-confidence (pt)", 100, 2),
    ("aurc", "AURC (%)", 100, 3),
)

SPLIT_ROWS = (
    ("auc", "discriminator AUC (out of fold; 0.5 = no shift)", "{:.3f}"),
    ("ess", "effective sample size of the weights", "{:.1f}"),
    ("weight_min", "smallest weight", "{:.3g}"),
    ("weight_max", "largest weight", "{:.3g}"),
    ("val_size", "validation images", "{:.0f}"),
    ("val_unique", "distinct validation images", "{:.0f}"),
)

CHOICE_GROUPS = ("dataset", "model", "aug", "loss", "split", "trainer", "experiment")


def fmt_metric(value: Any, scale: float, decimals: int) -> str:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return "—"
    return f"{value * scale:.{decimals}f}"


def metric_table(summary: dict[str, Any]) -> list[str]:
    """Markdown rows: validation | test | test after temperature scaling."""
    columns = [("validation", "val"), ("test", "test"), ("test after TS", "test_ts")]
    present = [(name, summary.get(key) or {}) for name, key in columns if summary.get(key)]
    lines = [
        "| metric | " + " | ".join(name for name, _ in present) + " |",
        "|---|" + "---:|" * len(present),
    ]
    for key, name, scale, decimals in METRIC_ROWS:
        cells = [fmt_metric(values.get(key), scale, decimals) for _, values in present]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def run_choices(run_dir: Path) -> dict[str, str | None]:
    """The config-group options the run was composed from (Hydra's runtime.choices)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        if HydraConfig.initialized():
            return dict(HydraConfig.get().runtime.choices)
    except ImportError:
        pass
    hydra_yaml = run_dir / ".hydra" / "hydra.yaml"
    if hydra_yaml.is_file():
        import yaml

        node = yaml.safe_load(hydra_yaml.read_text()) or {}
        return dict(((node.get("hydra") or {}).get("runtime") or {}).get("choices") or {})
    return {}


def config_line(summary: dict[str, Any], choices: dict[str, Any]) -> str:
    """`dataset=digits model=cnn aug=none loss=ce split=random trainer=default` · seed · …"""
    ds = summary.get("dataset") or {}
    picked = {g: choices.get(g) for g in CHOICE_GROUPS if choices.get(g) not in (None, "null")}
    picked.setdefault("dataset", ds.get("name", "?"))
    if "aug" not in picked:
        picked["aug"] = "none"
    groups = " ".join(f"{g}={picked[g]}" for g in CHOICE_GROUPS if g in picked)
    overrides = " ".join(summary.get("overrides") or []) or "(none)"
    parts = [
        f"`{groups}`",
        f"seed {summary.get('seed')}",
        f"overrides `{overrides}`",
        f"best epoch {summary.get('best_epoch')} of {summary.get('epochs_run')} "
        f"(by {summary.get('monitor')})",
        f"{ds.get('train_size')} train / {ds.get('val_size')} validation / "
        f"{ds.get('test_size')} test images",
    ]
    if summary.get("device"):
        parts.append(str(summary["device"]))
    parts.append(f"config `{summary.get('config_hash', '')}`")
    return " · ".join(parts)


def temperature_text(summary: dict[str, Any]) -> str:
    t = summary.get("temperature", 1.0)
    fit = summary.get("temperature_fit") or {}
    text = f"Temperature scaling, fitted on the validation set: **T = {t:.4g}**"
    if fit.get("note"):
        text += f", {fit['note']}"
    if fit.get("status") in ("fitted", "at_bound"):
        text += (
            f" Validation NLL {fit['val_nll_before']:.4f} → {fit['val_nll_after']:.4f};"
            " the test set plays no part in the fit."
        )
    return text


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
    ax.axvline(
        mean_conf,
        color="black",
        linestyle="--",
        linewidth=1.2,
        label=f"mean confidence {fmt_metric(mean_conf, 100, 2)}%",
    )
    ax.axvline(
        acc,
        color=figures.BLUE,
        linestyle=":",
        linewidth=1.8,
        label=f"accuracy {fmt_metric(acc, 100, 2)}%",
    )
    from matplotlib.ticker import FuncFormatter

    ax.set_yscale("log")
    # up to the next power of ten, so the top count has a labelled tick above it
    most = max(int(np.histogram(conf, edges)[0].max()), 1)
    ax.set_ylim(0.8, 10 ** math.ceil(math.log10(most * 1.05) + 1e-9))
    # plain 1, 10, 100 instead of the log axis's default 10^k, which goes through mathtext
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.set_xlim(lo, 1.0)
    step = 0.1 if lo >= 0.5 else 0.2
    ticks = np.arange(math.ceil(lo / step - 1e-9) * step, 1.0 + 1e-9, step)
    figures.fixed_ticks(ax, x=tuple(float(round(x, 2)) for x in ticks))
    ax.set_xlabel("confidence (top-label probability)")
    ax.set_ylabel("test images (log scale)")
    over = test.get("overconfidence", math.nan)
    ax.set_title(
        f"Confidence on the test set, before temperature scaling\n"
        f"mean confidence − accuracy = {fmt_metric(over, 100, 2)} pt",
        fontsize=9.5,
    )
    ax.legend(loc="upper left", fontsize=8, framealpha=0.9)
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.13, top=0.87)
    figures.save(fig, path)


def plot_curves(
    path: Path | BinaryIO, history: list[dict[str, Any]], best_epoch: int | None
) -> bool:
    """Loss, accuracy and validation ECE per epoch; False (nothing written) without history."""
    if not history:
        return False
    epochs = np.array([row["epoch"] for row in history], dtype=float)

    def series(key: str) -> np.ndarray | None:
        values = [row.get(key) for row in history]
        if all(v is None for v in values):
            return None
        return np.array([np.nan if v is None else float(v) for v in values])

    style = {
        "train": ("train", figures.BLUE),
        "val": ("validation", figures.ORANGE),
        "test": ("test (analysis only)", figures.GREY),
    }
    panels = (
        ("loss", (("train_loss", "train"), ("val_loss", "val")), 1),
        ("accuracy (%)", (("train_acc", "train"), ("val_acc", "val"), ("test_acc", "test")), 100),
        ("validation ECE (%)", (("val_ece", "val"),), 100),
    )
    from matplotlib.ticker import MaxNLocator

    # Stacked on one epoch axis: one row of x tick labels instead of three (text is what
    # costs most to draw), and the epochs line up across the panels.
    fig = figures.new_figure(7.5, 6.4)
    axes = fig.subplots(3, 1, sharex=True)
    marker = "o" if len(epochs) <= 40 else None
    for ax, (name, lines, scale) in zip(axes, panels):
        for key, who in lines:
            values = series(key)
            if values is not None:
                label, color = style[who]
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
    handles: dict[str, Any] = {}
    for ax in axes:  # one legend for the figure: every series once
        for handle, name in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(name, handle)
    fig.legend(
        list(handles.values()),
        list(handles),
        loc="upper center",
        bbox_to_anchor=(0.5, 0.955),
        ncol=len(handles),
        fontsize=8,
        frameon=False,
    )
    best = next((row for row in history if row.get("epoch") == best_epoch), history[-1])
    fig.text(
        0.5,
        0.99,
        f"Training curves. Epoch {best['epoch']}"
        + (" (best)" if best.get("epoch") == best_epoch else " (last)")
        + f": val loss {best.get('val_loss', math.nan):.4f}, "
        f"val acc {fmt_metric(best.get('val_acc'), 100, 2)}%, "
        f"val ECE {fmt_metric(best.get('val_ece'), 100, 2)}%",
        ha="center",
        va="top",
        fontsize=9.5,
    )
    fig.subplots_adjust(left=0.11, right=0.98, bottom=0.08, top=0.9, hspace=0.08)
    figures.save(fig, path)
    return True


def draw_dummy_report(sink: Callable[[], BinaryIO]) -> None:
    """Draw every figure of the report once, on made-up data, into `sink()` buffers.

    For `figures.preload_in_background`: it exercises the same code paths (fonts, text
    sizes, hatches, log axis, legends) as a real report, so their one-time costs are paid
    while the run trains rather than at its end.
    """
    n, k = 60, 10
    logits = torch.linspace(-3.0, 3.0, n * k).reshape(n, k)
    probs = logits.softmax(dim=1)
    labels = torch.arange(n) % k
    metrics = {"acc": 0.5, "ece": 0.1, "mce": 0.2, "mean_confidence": 0.6, "overconfidence": 0.1}
    summary = {"test": metrics, "test_ts": metrics, "temperature": 2.0}
    history = [
        {
            "epoch": e,
            "train_loss": 1.0,
            "val_loss": 1.0,
            "train_acc": 0.5,
            "val_acc": 0.5,
            "val_ece": 0.1,
        }
        for e in (1, 2)
    ]
    plot_reliability(sink(), probs, probs, labels, 15, summary)
    plot_confidence(sink(), probs, labels, summary)
    plot_curves(sink(), history, 1)


def split_section(
    run_dir: Path, summary: dict[str, Any], split_arrays: dict[str, np.ndarray] | None
) -> list[str]:
    info = summary.get("split") or {}
    rows = [
        (name, fmt.format(info[key]))
        for key, name, fmt in SPLIT_ROWS
        if isinstance(info.get(key), (int, float))
    ]
    if not rows and not split_arrays:
        return []
    lines = ["## Validation split", ""]
    mode = ", ".join(f"{k} `{info[k]}`" for k in ("kind", "mode", "discriminator") if k in info)
    if mode:
        lines += [mode, ""]
    if rows:
        lines += ["| diagnostic | value |", "|---|---:|", *(f"| {n} | {v} |" for n, v in rows), ""]
    if split_arrays:
        # The splits helper's module; resolved at call time so the report works without it.
        try:
            plot_split = importlib.import_module("regx.report.split_plot").plot_split
        except (ImportError, AttributeError):
            plot_split = None
        if plot_split is not None:
            plot_split(run_dir / "split.png", split_arrays, info)
            lines += ["![adversarial validation](split.png)", ""]
    return lines


def write_run_report(
    run_dir: Path,
    summary: dict[str, Any],
    history: list[dict[str, Any]],
    probs: torch.Tensor,
    probs_ts: torch.Tensor | None,
    labels: torch.Tensor,
    n_bins: int,
    split_arrays: dict[str, np.ndarray] | None = None,
    choices: dict[str, Any] | None = None,
    title: str | None = None,
) -> None:
    """Write report.md and its figures into `run_dir`.

    `probs`/`probs_ts` are the test probabilities before/after temperature scaling, exactly
    those summary.json's `test`/`test_ts` were computed from; `history` the rows of
    metrics.csv; `choices` the config-group options (read from the run when None).
    """
    labels = labels.cpu()
    choices = run_choices(run_dir) if choices is None else choices
    plot_reliability(run_dir / "reliability.png", probs, probs_ts, labels, n_bins, summary)
    plot_confidence(run_dir / "confidence.png", probs, labels, summary)
    has_curves = plot_curves(run_dir / "curves.png", history, summary.get("best_epoch"))
    ds = summary.get("dataset") or {}
    lines = [
        f"# {title or 'Run report'}: {ds.get('name', '?')}",
        "",
        config_line(summary, choices),
        "",
    ]
    evaluation = summary.get("evaluation")
    if evaluation:
        changed = " ".join(evaluation.get("overrides") or []) or "none (as trained)"
        lines += [
            f"Evaluation of `{evaluation.get('checkpoint')}` (epoch "
            f"{evaluation.get('checkpoint_epoch')}) of the run `{evaluation.get('run_dir')}` "
            f"({evaluation.get('run_status')}); overrides: `{changed}`; test shift: "
            f"`{ds.get('test_shift', 'none')}`. The validation set is the run's own.",
            "",
        ]
    lines += [
        "## Calibration",
        "",
        temperature_text(summary),
        "",
        *metric_table(summary),
        "",
        f"ECE, MCE: {n_bins} equal-width bins of top-label confidence, (lo, hi], the first "
        "closed at 0; adaptive ECE: equal-mass bins; classwise ECE: mean over classes; "
        "AURC: area under the risk–coverage curve (lower is better)."
        + (
            " Validation metrics and the temperature fit use the split's importance weights."
            if (summary.get("split") or {}).get("mode") == "weight"
            else ""
        ),
        "",
        "![reliability diagram](reliability.png)",
        "",
        "![confidence histogram](confidence.png)",
        "",
    ]
    retrieval = summary.get("retrieval") or {}
    if retrieval:
        lines += [
            "## Retrieval (test embeddings, cosine, leave-one-out)",
            "",
            "| metric | value |",
            "|---|---:|",
            *(
                f"| {name} | {fmt_metric(retrieval.get(key), 100, 2)} |"
                for key, name in (("recall_at_1", "recall@1 (%)"), ("map_at_r", "MAP@R (%)"))
                if key in retrieval
            ),
            "",
        ]
    lines += split_section(run_dir, summary, split_arrays)
    if has_curves:
        lines += ["## Training", "", "![training curves](curves.png)", ""]
    (run_dir / "report.md").write_text("\n".join(lines))
