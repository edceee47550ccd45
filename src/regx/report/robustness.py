"""Report parts of the robustness evaluation: corruptions.png and the markdown sections
for the corruption sweep (summary.json `corruptions`), the attacks (`attacks`) and the
bootstrap intervals (`ci`).

Every number shown is a value of summary.json, rounded for display.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO

from regx.report import figures
from regx.report.format import fmt_metric

# One colour per corruption kind, in `regx.data.corruptions.KINDS` order, then cycling.
KIND_COLOURS = (
    figures.BLUE,
    figures.ORANGE,
    figures.GREEN,
    figures.RED,
    "#8172B3",
    "#937860",
)


def plot_corruptions(path: Path | BinaryIO, table: dict[str, Any]) -> None:
    """Test accuracy against severity, one line per kind, the clean accuracy at severity 0
    (and as a dashed line); `table` is summary.json's `corruptions` (CorruptionTable.as_dict)."""
    rows, clean = table["rows"], table["clean"]["acc"]
    kinds = list(dict.fromkeys(r["kind"] for r in rows))
    severities = sorted({r["severity"] for r in rows})
    fig = figures.new_figure(6.4, 4.2)
    ax = fig.subplots()
    ax.axhline(clean, color=figures.GREY, linestyle="--", linewidth=1, label="clean")
    for i, kind in enumerate(kinds):
        cells = sorted((r["severity"], r["acc"]) for r in rows if r["kind"] == kind)
        xs = [0] + [s for s, _ in cells]
        ys = [clean] + [a for _, a in cells]
        colour = KIND_COLOURS[i % len(KIND_COLOURS)]
        ax.plot(xs, ys, marker="o", markersize=3.5, linewidth=1.4, color=colour, label=kind)
    figures.fixed_ticks(ax, x=tuple(float(s) for s in [0, *severities]), y=figures.UNIT_TICKS)
    ax.set_xlim(-0.2, max(severities) + 0.2)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("severity (0 = clean)")
    ax.set_ylabel("test accuracy")
    rce = fmt_metric(table.get("relative_mean_corruption_error"), 100, 2)
    mce = fmt_metric(table.get("mean_corruption_error"), 100, 2)
    ax.set_title(
        f"Corrupted test set: mean corruption error {mce}%, relative {rce} pt", fontsize=9.5
    )
    ax.legend(loc="lower left", ncol=2, fontsize=8, frameon=False)
    fig.subplots_adjust(left=0.11, right=0.97, bottom=0.12, top=0.92)
    figures.save(fig, path)


def corruption_section(table: dict[str, Any], image: str | None = "corruptions.png") -> list[str]:
    """## Corruptions: the kind × severity table, mCE, relative mCE."""
    if not table:
        return []
    clean = table["clean"]
    lines = [
        "## Corruptions",
        "",
        f"Each corruption applied to the clean test set as `dataset.test_shift=corrupt` "
        f"would (seed {table.get('seed')}); ECE after TS uses the run's temperature "
        f"T = {table.get('temperature', 1.0):.4g}.",
        "",
        "| corruption | severity | accuracy (%) | NLL | ECE (%) | ECE after TS (%) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in [clean, *table["rows"]]:
        severity = "—" if r["kind"] == "clean" else str(r["severity"])
        lines.append(
            f"| {r['kind']} | {severity} | {fmt_metric(r['acc'], 100, 2)} | "
            f"{fmt_metric(r['nll'], 1, 4)} | {fmt_metric(r['ece'], 100, 2)} | "
            f"{fmt_metric(r['ece_ts'], 100, 2)} |"
        )
    lines += [
        "",
        f"Mean corruption error (mean error over the {len(table['rows'])} cells): "
        f"**{fmt_metric(table.get('mean_corruption_error'), 100, 2)}%**; relative to the "
        f"clean error: **{fmt_metric(table.get('relative_mean_corruption_error'), 100, 2)} pt**.",
        "",
    ]
    if image:
        lines += [f"![accuracy under corruption]({image})", ""]
    return lines


def attack_section(attacks: dict[str, Any]) -> list[str]:
    """## Adversarial attacks: accuracy per attack and ε (columns = the ε as given)."""
    names = [a for a in ("fgsm", "pgd") if a in attacks]
    if not names:
        return []
    eps = list(dict.fromkeys(e for a in names for e in attacks[a]))
    lines = [
        "## Adversarial attacks (L∞)",
        "",
        f"Clean test accuracy {fmt_metric(attacks.get('clean'), 100, 2)}%; ε in pixel units "
        "of [0, 1]."
        + (
            f" PGD: {attacks.get('steps')} steps of {attacks.get('step_size')}, random start "
            f"(seed {attacks.get('seed')})."
            if "pgd" in names
            else ""
        ),
        "",
        "| attack | " + " | ".join(f"ε = {e}" for e in eps) + " |",
        "|---|" + "---:|" * len(eps),
    ]
    for a in names:
        cells = [fmt_metric(attacks[a].get(e), 100, 2) for e in eps]
        lines.append(f"| {a.upper()} accuracy (%) | " + " | ".join(cells) + " |")
    return [*lines, ""]


def interval_text(interval: Any, scale: float = 100, decimals: int = 2) -> str:
    """'[lo, hi]' of a bootstrap interval, or '—'."""
    if not isinstance(interval, (list, tuple)) or len(interval) != 2:
        return "—"
    return (
        f"[{fmt_metric(interval[0], scale, decimals)}, {fmt_metric(interval[1], scale, decimals)}]"
    )


def interval_section(ci: dict[str, Any]) -> list[str]:
    """## Bootstrap intervals: 95 % intervals of accuracy and ECE, and of |val − test| acc."""
    sets = [
        (name, key)
        for name, key in (("validation", "val"), ("test", "test"), ("test after TS", "test_ts"))
        if ci.get(key)
    ]
    if not sets:
        return []
    lines = [
        "## Bootstrap 95 % intervals",
        "",
        f"{ci.get('resamples')} resamples of the images with replacement (seeded), "
        "percentile intervals, in %.",
        "",
        "| metric | " + " | ".join(name for name, _ in sets) + " |",
        "|---|" + "---:|" * len(sets),
        "| accuracy | " + " | ".join(interval_text(ci[k].get("acc")) for _, k in sets) + " |",
        "| ECE | " + " | ".join(interval_text(ci[k].get("ece")) for _, k in sets) + " |",
        "",
    ]
    if ci.get("val_test_gap"):
        lines += [
            f"validation acc − test acc: {interval_text(ci['val_test_gap'])} pt "
            "(the two sets resampled independently; > 0: validation is optimistic).",
            "",
        ]
    return lines
