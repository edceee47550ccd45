"""The between-sample diagnostics in the run report: `between.png` and a report.md section.

Drawn from summary.json's `between` (regx.metrics.between): the linearity gaps (output
probabilities, L1; features, relative) and the miss rate against λ, the weight of the
first image of each pair (λ = 1 would be the image a itself).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from regx.report.figures import BLUE, GREEN, ORANGE, UNIT_TICKS, fixed_ticks, new_figure, save
from regx.report.format import fmt_metric

FIGURE = "between.png"

# (summary key, row title, scale, decimals)
ROWS = (
    ("linearity_gap", "linearity gap ‖p(x̃) − (λp(a) + (1−λ)p(b))‖₁", 1, 4),
    ("miss_rate", "miss rate (%): x̃ predicted as neither y_a nor y_b", 100, 2),
    ("grad_norm", "gradient norm ‖∇ₓ mixed loss‖₂ (pixels in [0, 1])", 1, 4),
    ("feature_gap", "feature gap ‖φ(x̃) − (λφ(a) + (1−λ)φ(b))‖ / mean ‖φ‖", 1, 4),
)

# Columns for `regx report`: (flattened summary key, title, scale, decimals), at λ = 0.5.
SWEEP_COLUMNS = (
    ("between.linearity_gap.0.5", "lin. gap @0.5", 1, 3),
    ("between.miss_rate.0.5", "miss @0.5 (%)", 100, 1),
    ("between.grad_norm.0.5", "grad norm @0.5", 1, 3),
)


def _series(between: dict[str, Any], key: str) -> tuple[list[float], list[float]]:
    """(λs, values) of one metric, in λ order, skipping missing values."""
    values = between.get(key) or {}
    points = sorted((float(lam), v) for lam, v in values.items() if isinstance(v, (int, float)))
    return [p[0] for p in points], [p[1] for p in points]


def plot_between(path: Path, between: dict[str, Any]) -> None:
    """Left: the probability and feature linearity gaps vs λ; right: the miss rate vs λ."""
    fig = new_figure(8.0, 3.2)
    gaps, misses = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.16, top=0.88, wspace=0.28)
    for key, label, color in (
        ("linearity_gap", "probabilities (L1)", BLUE),
        ("feature_gap", "features (relative L2)", ORANGE),
    ):
        lams, values = _series(between, key)
        gaps.plot(lams, values, marker="o", color=color, label=label)
    gaps.set_title("distance from linear between samples", fontsize=9.5)
    gaps.set_ylim(bottom=0)
    gaps.legend(fontsize=8, loc="lower center")
    lams, values = _series(between, "miss_rate")
    misses.plot(lams, values, marker="o", color=GREEN)
    misses.set_ylim(0, 1)
    misses.set_title("miss rate: predicted as neither y_a nor y_b", fontsize=9.5)
    fixed_ticks(misses, y=UNIT_TICKS)
    for ax in (gaps, misses):
        ax.set_xlim(0, 1)
        fixed_ticks(ax, x=UNIT_TICKS)
        ax.set_xlabel("λ (weight of image a in x̃ = λa + (1−λ)b)")
    save(fig, path)


def between_section(summary: dict[str, Any]) -> list[str]:
    """Markdown lines for report.md (a table per λ and the figure); [] when not computed."""
    between = summary.get("between") or {}
    lams = between.get("lams") or []
    if not lams:
        return []
    keys = [f"{float(lam):g}" for lam in lams]
    lines = [
        "## Between samples",
        "",
        f"{between.get('pairs')} fixed pairs (a, b) of test images of different classes, "
        "mixed in pixel space as x̃ = λa + (1−λ)b. A model that is linear between samples "
        "has gaps 0; mixup-style training is claimed to lower the gaps, the miss rate and "
        "the gradient norm.",
        "",
        "| metric | " + " | ".join(f"λ = {k}" for k in keys) + " |",
        "|---|" + "---:|" * len(keys),
    ]
    for key, title, scale, decimals in ROWS:
        values = between.get(key) or {}
        cells = [fmt_metric(values.get(k), scale, decimals) for k in keys]
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    lines += ["", f"![between-sample diagnostics]({FIGURE})", ""]
    return lines
