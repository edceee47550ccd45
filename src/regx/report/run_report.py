"""The per-run calibration report: report.md, reliability.png, confidence.png, curves.png."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from regx.metrics.calibration import reliability_bins

ROWS = [
    ("acc", "accuracy", 100, "%"),
    ("nll", "NLL", 1, ""),
    ("brier", "Brier", 1, ""),
    ("ece", "ECE", 100, "%"),
    ("mean_confidence", "mean confidence", 100, "%"),
    ("overconfidence", "confidence − accuracy", 100, "pt"),
]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_reliability(
    path: Path, probs: torch.Tensor, labels: torch.Tensor, n_bins: int, title: str
) -> None:
    plt = _plt()
    bins = reliability_bins(probs.double(), labels, n_bins)
    weight = bins["weight"].numpy()
    acc = bins["accuracy"].numpy()
    conf = bins["confidence"].numpy()
    edges = np.linspace(0, 1, n_bins + 1)
    centers = (edges[:-1] + edges[1:]) / 2
    width = 1 / n_bins
    filled = weight > 0
    fig, ax = plt.subplots(figsize=(5, 5), dpi=120)
    ax.bar(
        centers[filled],
        acc[filled],
        width=width,
        edgecolor="black",
        color="#4C72B0",
        label="accuracy",
    )
    gap_lo = np.minimum(acc, conf)[filled]
    gap_hi = np.maximum(acc, conf)[filled]
    ax.bar(
        centers[filled],
        gap_hi - gap_lo,
        bottom=gap_lo,
        width=width,
        color="#DD8452",
        alpha=0.5,
        hatch="//",
        edgecolor="#DD8452",
        label="gap to confidence",
    )
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    for c, a, n in zip(centers[filled], acc[filled], weight[filled]):
        ax.text(c, min(a + 0.02, 0.97), f"{int(n)}", ha="center", fontsize=6, rotation=90)
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1),
        xlabel="confidence (top-label probability)",
        ylabel="accuracy",
        title=title,
    )
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_confidence(path: Path, probs: torch.Tensor, labels: torch.Tensor, title: str) -> None:
    plt = _plt()
    conf, pred = probs.max(dim=1)
    correct = (pred == labels).numpy()
    conf = conf.numpy()
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    bins = np.linspace(0, 1, 26)
    ax.hist(
        conf[correct], bins=bins, alpha=0.7, label=f"correct ({correct.sum()})", color="#55A868"
    )
    ax.hist(
        conf[~correct], bins=bins, alpha=0.7, label=f"wrong ({(~correct).sum()})", color="#C44E52"
    )
    ax.axvline(
        conf.mean(), color="black", linestyle="--", label=f"mean confidence {conf.mean():.3f}"
    )
    ax.set(xlabel="confidence (top-label probability)", ylabel="test images", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _table(summary: dict[str, Any]) -> list[str]:
    before, after = summary.get("test", {}), summary.get("test_ts", {})
    lines = ["| metric | before scaling | after scaling |", "|---|---:|---:|"]
    for key, name, scale, unit in ROWS:
        if key in before:
            a = before[key] * scale
            b = after.get(key, float("nan")) * scale
            lines.append(f"| {name} | {a:.3f}{unit} | {b:.3f}{unit} |")
    return lines


def write_run_report(
    run_dir: Path,
    summary: dict[str, Any],
    history: list[dict[str, Any]],
    test_logits: torch.Tensor,
    test_labels: torch.Tensor,
    n_bins: int,
    split_arrays: dict[str, np.ndarray] | None = None,
) -> None:
    t = summary.get("temperature", 1.0)
    probs = test_logits.double().softmax(dim=1)
    test = summary.get("test", {})
    plot_reliability(
        run_dir / "reliability.png",
        probs,
        test_labels,
        n_bins,
        f"Reliability (test): ECE {100 * test.get('ece', float('nan')):.2f}%",
    )
    plot_confidence(run_dir / "confidence.png", probs, test_labels, "Confidence on the test set")
    ds = summary.get("dataset", {})
    lines = [
        f"# Run report: {ds.get('name', '?')}",
        "",
        f"Config `{summary.get('config_hash', '')}`; "
        f"overrides: `{' '.join(summary.get('overrides', [])) or '(none)'}`; "
        f"best epoch {summary.get('best_epoch')} of {summary.get('epochs_run')} (by {summary.get('monitor')}); "
        f"test set {ds.get('test_size')} images.",
        "",
        f"## Calibration (temperature T = {t:.3f}, fitted on validation)",
        "",
        *_table(summary),
        "",
        "![reliability](reliability.png) ![confidence](confidence.png)",
        "",
    ]
    retrieval = summary.get("retrieval") or {}
    if retrieval:
        lines += [
            "## Retrieval (test embeddings, cosine, leave-one-out)",
            "",
            f"recall@1 {100 * retrieval.get('recall_at_1', float('nan')):.2f}%, "
            f"MAP@R {100 * retrieval.get('map_at_r', float('nan')):.2f}%",
            "",
        ]
    (run_dir / "report.md").write_text("\n".join(lines))
