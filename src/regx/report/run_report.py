"""The per-run report: report.md with reliability.png, confidence.png, curves.png (and
split.png for splits that provide diagnostic arrays).

Every number in report.md is a value of summary.json, rounded for display; the figures
are drawn from the same float32 probabilities the metrics were computed from.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from regx.report.between import between_section, plot_between
from regx.report.figure_worker import Draw, draw_inline
from regx.report.format import fmt_metric
from regx.report.html import write_run_html
from regx.report.noise import noise_section, plot_noise
from regx.report.retrieval_section import retrieval_section
from regx.report.robustness import (
    attack_section,
    corruption_section,
    interval_section,
    plot_corruptions,
)
from regx.report.run_plots import plot_confidence, plot_curves, plot_reliability

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


def split_section(
    run_dir: Path,
    summary: dict[str, Any],
    split_arrays: dict[str, np.ndarray] | None,
    draw: Draw = draw_inline,
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
            draw(plot_split, run_dir / "split.png", split_arrays, info)
            lines += ["![adversarial validation](split.png)", ""]
    return lines


def header_lines(summary: dict[str, Any], choices: dict[str, Any], title: str | None) -> list[str]:
    """The title, the config line, and how the test set was shifted (summary.json `shift`:
    the settings of its mode, and for subpop the realized move of the score)."""
    ds = summary.get("dataset") or {}
    lines = [
        f"# {title or 'Run report'}: {ds.get('name', '?')}",
        "",
        config_line(summary, choices),
        "",
    ]
    shift = summary.get("shift") or {}
    mode = shift.get("mode") or ds.get("test_shift") or "none"
    settings = {"prior": ("strength",), "corrupt": ("kind", "severity")}
    settings["subpop"] = ("score", "tilt", "keep")
    shown = [
        f"shift.{k}={shift[k]:g}" if isinstance(shift[k], float) else f"shift.{k}={shift[k]}"
        for k in settings.get(mode, ())
        if k in shift
    ]
    moved = ""
    if mode == "subpop" and {"z_test_before", "z_test_after"} <= set(shift):
        moved = (
            f"; mean standardized score of the test images {shift['z_test_before']:.2f} → "
            f"{shift['z_test_after']:.2f}, {shift.get('test_size_before')} → "
            f"{shift.get('test_size_after')} images"
        )
    shift_text = f"`{mode}`" + (f" ({', '.join(shown)}{moved})" if shown else "")
    evaluation = summary.get("evaluation")
    if evaluation:
        changed = " ".join(evaluation.get("overrides") or []) or "none (as trained)"
        lines += [
            f"Evaluation of `{evaluation.get('checkpoint')}` (epoch "
            f"{evaluation.get('checkpoint_epoch')}) of the run `{evaluation.get('run_dir')}` "
            f"({evaluation.get('run_status')}); overrides: `{changed}`; test shift: "
            f"{shift_text}. The validation set is the run's own.",
            "",
        ]
    elif mode != "none":
        lines += [f"Test set shifted: {shift_text}; validation and training are not.", ""]
    return lines


def calibration_section(summary: dict[str, Any], n_bins: int) -> list[str]:
    weighted = (summary.get("split") or {}).get("mode") == "weight"
    return [
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
            if weighted
            else ""
        ),
        "",
        "![reliability diagram](reliability.png)",
        "",
        "![confidence histogram](confidence.png)",
        "",
    ]


def robustness_lines(run_dir: Path, summary: dict[str, Any], draw: Draw = draw_inline) -> list[str]:
    """`regx evaluate --corruptions` (table, corruptions.png) and `--attack` sections."""
    lines = []
    if summary.get("corruptions"):
        draw(plot_corruptions, run_dir / "corruptions.png", summary["corruptions"])
        lines += corruption_section(summary["corruptions"])
    return lines + attack_section(summary.get("attacks") or {})


def between_lines(run_dir: Path, summary: dict[str, Any], draw: Draw = draw_inline) -> list[str]:
    """The between-sample diagnostics' section and between.png, when the run has them."""
    if not summary.get("between"):
        return []
    draw(plot_between, run_dir / "between.png", summary["between"])
    return between_section(summary)


def noise_lines(
    run_dir: Path, summary: dict[str, Any], history: list[dict[str, Any]], draw: Draw = draw_inline
) -> list[str]:
    """The label-noise section and noise.png, for a run trained under label noise."""
    if not summary.get("noise"):
        return []
    draw(plot_noise, run_dir / "noise.png", history, summary.get("best_epoch"))
    return noise_section(summary, history)


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
    draw: Draw = draw_inline,
) -> None:
    """Write report.md (and report.html, the same page) and its figures into `run_dir`.

    `probs`/`probs_ts` are the test probabilities before/after temperature scaling, exactly
    those summary.json's `test`/`test_ts` were computed from; `history` the rows of
    metrics.csv; `choices` the config-group options (read from the run when None). `draw`
    draws each figure (a `FigureWorker`'s may return before the PNG is written).
    """
    labels = labels.cpu()
    choices = run_choices(run_dir) if choices is None else choices
    draw(plot_reliability, run_dir / "reliability.png", probs, probs_ts, labels, n_bins, summary)
    draw(plot_confidence, run_dir / "confidence.png", probs, labels, summary)
    lines = [
        *header_lines(summary, choices, title),
        *calibration_section(summary, n_bins),
        *interval_section(summary.get("ci") or {}),
        *retrieval_section(summary),
        *robustness_lines(run_dir, summary, draw),
        *between_lines(run_dir, summary, draw),
        *noise_lines(run_dir, summary, history, draw),
        *split_section(run_dir, summary, split_arrays, draw),
    ]
    if history:
        draw(plot_curves, run_dir / "curves.png", history, summary.get("best_epoch"))
        lines += ["## Training", "", "![training curves](curves.png)", ""]
    text = "\n".join(lines)
    (run_dir / "report.md").write_text(text)
    write_run_html(run_dir, text)  # report.html: the same page, self-contained
