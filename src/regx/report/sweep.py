"""`regx report PATH…`: every run under the paths, grouped by experiment, compared.

A run is a folder holding `.hydra/config.yaml` (Hydra writes it before the job starts, so
killed runs are found too). Its state comes from summary.json: `finished`, or `failed` /
`diverged` / `interrupted` with a message. The engine writes `running` with its pid when
training starts, so a run killed outright still says `running`: when that pid is gone on
this machine the run is listed as `unfinished` (killed); with no summary.json, or a pid on
another machine, it is `unfinished` too (killed or still going), and only a live pid shows
as `running`. Unfinished runs are listed, never dropped.

Runs form one group when their resolved configs are equal once the seed, output locations
and keys that do not change the numbers (threads, device, progress bars, …; see regx.keys) are
removed. `+aug=none` and no aug both give `aug: null`, so they group together. Groups are
labelled by what varies between them: a config-group option (`loss=gamma_ce`) where the
option explains the difference, else the individual keys (`loss.gamma=0.5`).

Outputs: a rich table on the terminal; report.md, runs.csv (one row per run, every
summary field flattened) and compare.png (accuracy vs ECE per group, mean ± std).
Statistics are mean ± sample standard deviation (n − 1) over the finished runs of a group.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from regx.report.between import SWEEP_COLUMNS as BETWEEN_COLUMNS
from regx.report.grouping import Group, filter_runs, group_runs, show_value, sort_groups
from regx.report.runs import RunRecord, find_run_dirs, flatten, read_run
from regx.report.sweep_plot import plot_compare


@dataclass(frozen=True)
class Column:
    """A table column: `key` is a flattened summary key or `val_test_gap`."""

    key: str
    title: str
    scale: float
    decimals: int


TABLE_COLUMNS = (
    Column("test.acc", "test acc (%)", 100, 2),
    Column("test.ece", "ECE (%)", 100, 2),
    Column("test_ts.ece", "ECE after TS (%)", 100, 2),
    Column("test.nll", "NLL", 1, 4),
    Column("retrieval.recall_at_1", "recall@1 (%)", 100, 2),
    Column("val_test_gap", "val − test acc (pt)", 100, 2),
)
# Shown when some run of the report has them (the protocols that produce them are opt-in).
OPTIONAL_COLUMNS = (
    Column("retrieval_open.map_at_r", "open-set MAP@R (%)", 100, 2),
    Column("noise.memorized", "memorized (%)", 100, 2),
    Column("track_test.epoch_gap", "best-test − picked epoch", 1, 1),
    *(Column(*c) for c in BETWEEN_COLUMNS),
)


def report_columns(groups: list[Group]) -> list[Column]:
    """The standard columns, then each optional one that some finished run has."""
    present = [c for c in OPTIONAL_COLUMNS if any(g.stats(c.key)[2] > 0 for g in groups)]
    return [*TABLE_COLUMNS, *present]


def fmt_stat(mean: float, std: float, column: Column) -> str:
    if math.isnan(mean):
        return "—"
    text = f"{mean * column.scale:.{column.decimals}f}"
    if not math.isnan(std):
        text += f" ± {std * column.scale:.{column.decimals}f}"
    return text


def table_rows(groups: list[Group]) -> tuple[list[str], list[list[str]], int]:
    """(header, rows, how many leading label columns) of the comparison table."""
    label_keys = list(dict.fromkeys(k for g in groups for k in g.label)) or ["group"]
    any_unfinished = any(len(g.finished) < len(g.runs) for g in groups)
    columns = report_columns(groups)
    header = [*label_keys, "n", *(c.title for c in columns)]
    if any_unfinished:
        header.append("not finished")
    rows = []
    for g in groups:
        cells = [g.label.get(k, "all runs" if k == "group" else "—") for k in label_keys]
        cells.append(str(len(g.finished)))
        cells.extend(fmt_stat(*g.stats(c.key)[:2], c) for c in columns)
        if any_unfinished:
            other = [r.status for r in g.runs if not r.finished]
            cells.append(", ".join(f"{other.count(s)} {s}" for s in dict.fromkeys(other)) or "0")
        rows.append(cells)
    return header, rows, len(label_keys)


def print_table(groups: list[Group], runs: list[RunRecord], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    header, rows, n_labels = table_rows(groups)
    table = Table(
        title=title,
        title_justify="left",
        caption="mean ± std over seeds (sample std, n − 1)",
        caption_justify="left",
    )
    for i, name in enumerate(header):
        numeric = n_labels <= i < n_labels + 1 + len(report_columns(groups))
        table.add_column(
            name, justify="right" if numeric else "left", style=None if numeric else "bold"
        )
    for row in rows:
        table.add_row(*row)
    # In a terminal rich fits the table to the window; in a pipe or a log file it gets the
    # width it needs, so no number is ever cut short.
    widths = [max(len(name), *(len(row[i]) for row in rows)) for i, name in enumerate(header)]
    console = Console(
        width=None if Console().is_terminal else max(100, sum(widths) + 3 * len(widths) + 4)
    )
    console.print(table)
    bad = [r for r in runs if not r.finished]
    if bad:
        console.print(f"{len(bad)} run(s) not finished:", style="yellow")
        for r in bad:
            console.print(f"  {r.path}  {r.status}: {r.message}", highlight=False, markup=False)


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)  # every digit: the file is for recomputing, not for reading
    return value


def write_runs_csv(path: Path, runs: list[RunRecord], root: Path) -> None:
    """One row per run: where, status, group and label, seed, then every summary field."""
    rows = []
    for r in runs:
        row: dict[str, Any] = {
            "run": _relative(r.path, root),
            "status": r.status,
            "message": r.message,
            "group": r.group + 1,
        }
        row.update({f"label.{k}": v for k, v in r.label.items()})
        row["seed"] = r.seed
        summary = {k: v for k, v in r.summary.items() if k not in ("status", "message")}
        summary["overrides"] = " ".join(r.overrides)  # as typed, also for unfinished runs
        row.update(flatten(summary))
        rows.append(row)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_value(v) for k, v in row.items()})
    path.write_text(buf.getvalue())


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve())) or "."
    except ValueError:
        return str(path)


def markdown_report(
    groups: list[Group], runs: list[RunRecord], paths: list[Path], has_plot: bool, sort: str | None
) -> str:
    header, rows, n_labels = table_rows(groups)
    aligns = [
        "---" if i < n_labels or name == "not finished" else "---:" for i, name in enumerate(header)
    ]
    finished = sum(r.finished for r in runs)
    lines = [
        "# Sweep report",
        "",
        f"Runs under {', '.join(f'`{p}`' for p in paths)}: {len(runs)} found, {finished} finished, "
        f"{len(runs) - finished} not finished; {len(groups)} group(s) of runs that differ only "
        "by seed" + (f"; sorted by {sort}" if sort else "") + ".",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(aligns) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
        "Mean ± sample standard deviation (n − 1) over the finished runs of each group; "
        "ECE after TS: test ECE after temperature scaling fitted on validation; "
        "val − test acc: validation minus test accuracy of the same run.",
        "",
    ]
    if has_plot:
        lines += ["![accuracy vs ECE](compare.png)", ""]
    lines += ["## Groups", ""]
    for g in groups:
        seeds = ", ".join(show_value(r.seed) for r in g.runs)
        dirs = ", ".join(f"`{r.path.name}`" for r in g.runs)
        overrides = " ".join(o for o in g.runs[0].overrides if not o.startswith("seed="))
        lines.append(
            f"{g.index + 1}. **{g.name}**: overrides `{overrides or '(none)'}`; "
            f"seeds {seeds}; runs {dirs}"
        )
    bad = [r for r in runs if not r.finished]
    if bad:
        lines += ["", "## Runs not finished", "", "| run | group | status | message |"]
        lines.append("|---|---|---|---|")
        lines += [
            f"| `{r.path}` | {r.group + 1} | {r.status} | {r.message.replace('|', '/')} |"
            for r in bad
        ]
    return "\n".join(lines) + "\n"


def sweep_report(
    paths: list[Path],
    out: Path | None = None,
    sort: str | None = None,
    descending: bool = False,
    where: list[str] | None = None,
    plot: bool = True,
    echo: bool = True,
    html: bool = False,
) -> Path:
    """Find, group, print and write the report; returns the folder the files went to.

    `html`: also report.html, the same report as one self-contained page linked to the
    runs' own pages (regx.report.html_sweep)."""
    paths = [Path(p) for p in paths]
    runs = [read_run(d) for d in find_run_dirs(paths)]
    runs = filter_runs(runs, list(where or []))
    groups = sort_groups(group_runs(runs), sort, descending, runs)
    if out is None:
        single = len(paths) == 1 and not (paths[0] / ".hydra" / "config.yaml").is_file()
        out = paths[0] if single else Path("regx-report")
    out.mkdir(parents=True, exist_ok=True)
    has_plot = plot and plot_compare(out / "compare.png", groups)
    text = markdown_report(groups, runs, paths, has_plot, sort)
    (out / "report.md").write_text(text)
    write_runs_csv(out / "runs.csv", runs, out)
    if html:  # the markdown package loads only for this
        from regx.report.html_sweep import write_sweep_html

        write_sweep_html(out / "report.html", text, table_rows(groups), groups, runs, TABLE_COLUMNS)
    if echo:
        finished = sum(r.finished for r in runs)
        title = f"{len(runs)} runs ({finished} finished) in {len(groups)} group(s): {', '.join(map(str, paths))}"
        print_table(groups, runs, title)
        extra = (", compare.png" if has_plot else "") + (", report.html" if html else "")
        print(f"report: {out / 'report.md'}  (runs.csv{extra})")
    return out
