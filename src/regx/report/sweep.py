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
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from regx.errors import UserError, dangling_link
from regx.report.between import SWEEP_COLUMNS as BETWEEN_COLUMNS
from regx.report.format import Column
from regx.report.grouping import Group, filter_runs, group_runs, show_value, sort_groups
from regx.report.runs import RunRecord, find_run_dirs, flatten, read_runs, with_numbers
from regx.report.sweep_plot import plot_compare

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


# What the columns read from each summary: a finished run must hold numbers (or nothing) there.
METRIC_KEYS = (
    *(c.key for c in (*TABLE_COLUMNS, *OPTIONAL_COLUMNS) if c.key != "val_test_gap"),
    "val.acc",  # val_test_gap = val.acc − test.acc
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


def terminal_width() -> int | None:
    """The width the table must fit: `COLUMNS` when set (also in a pipe), else the
    terminal's; None when printing to a pipe or a log file (no limit: no number is cut)."""
    from rich.console import Console

    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    console = Console()
    return console.width if console.is_terminal else None


def _widths(header: list[str], rows: list[list[str]]) -> list[int]:
    return [max(len(name), *(len(row[i]) for row in rows)) for i, name in enumerate(header)]


def _table_width(widths: list[int]) -> int:
    """Characters a rich table with box borders needs for columns of these widths."""
    return sum(widths) + 3 * len(widths) + 1


def terminal_rows(groups: list[Group], width: int | None) -> tuple[list[str], list[list[str]], int]:
    """table_rows with the group number first (`#`: the numbers of report.md's group list
    and of compare.png's points) and `n` last of the leading columns, returned with their
    count; when that is wider than `width`, the label columns fold into one `config` column
    of `key=value` pairs (absent keys left out)."""
    header, rows, n_labels = table_rows(groups)
    header = ["#", *header]
    rows = [[str(g.index + 1), *row] for g, row in zip(groups, rows)]
    if width is None or _table_width(_widths(header, rows)) <= width or n_labels < 2:
        return header, rows, n_labels + 2
    folded = []
    for g, row in zip(groups, rows):
        pairs = " ".join(f"{k}={v}" for k, v in g.label.items() if v != "—")
        folded.append([row[0], pairs or "all runs", *row[1 + n_labels :]])
    return ["#", "config", *header[1 + n_labels :]], folded, 3


def column_parts(widths: list[int], n_lead: int, width: int | None) -> list[list[int]]:
    """The columns after the `n_lead` leading ones, in consecutive parts that each fit
    `width` next to the leading columns (one part when everything fits or there is no
    limit): a narrow terminal gets stacked tables rather than numbers broken over lines."""
    rest = list(range(n_lead, len(widths)))
    if width is None or _table_width(widths) <= width:
        return [rest]
    room = width - _table_width(widths[:n_lead])
    parts: list[list[int]] = [[]]
    for i in rest:
        if parts[-1] and sum(widths[j] + 3 for j in parts[-1]) + widths[i] + 3 > room:
            parts.append([])
        parts[-1].append(i)
    return parts


def print_table(
    groups: list[Group], runs: list[RunRecord], title: str, unreadable: list[RunRecord] = ()
) -> None:
    from rich.console import Console
    from rich.table import Table

    width = terminal_width()
    header, rows, n_lead = terminal_rows(groups, width)
    widths = _widths(header, rows)
    if width is not None:  # a terminal narrower than that gets wrapped lines, not empty cells
        width = max(width, _table_width([*widths[:n_lead], max(widths[n_lead:], default=0)]))
    console = Console(width=width or _table_width(widths) + 4)
    parts = column_parts(widths, n_lead, width)
    for k, part in enumerate(parts):
        last = k == len(parts) - 1
        table = Table(
            title=title if k == 0 else None,
            title_justify="left",
            caption="mean ± std over seeds (sample std, n − 1); #: the group's number in "
            "report.md and compare.png; —: no value"
            if last
            else None,
            caption_justify="left",
        )
        columns = [*range(n_lead), *part]
        for i in columns:
            label = 0 < i < n_lead - 1  # the label (or config) columns; the rest are numbers
            table.add_column(
                header[i],
                justify="left" if label or header[i] == "not finished" else "right",
                style="bold" if label else None,
                no_wrap=not label,  # numbers are never broken over lines
                overflow="fold",
            )
        for row in rows:
            table.add_row(*(row[i] for i in columns))
        console.print(table)
    bad = [r for r in runs if not r.finished]
    if bad:
        console.print(f"{len(bad)} run(s) not finished:", style="yellow")
        for r in bad:
            line = f"  {r.path}  {r.status}: {r.message}"
            console.print(line, highlight=False, markup=False, soft_wrap=True)
    for r in unreadable:  # soft_wrap: a long path is never broken by a newline
        line = f"unreadable: {r.path}: {r.message}"
        console.print(line, highlight=False, markup=False, soft_wrap=True)


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
            "group": r.group + 1 if r.group >= 0 else "",
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
    groups: list[Group],
    runs: list[RunRecord],
    paths: list[Path],
    has_plot: bool,
    sort: Sequence[str],
    unreadable: list[RunRecord] = (),
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
        f"{len(runs) - finished} not finished"
        + (f", {len(unreadable)} unreadable" if unreadable else "")
        + f"; {len(groups)} group(s) of runs that differ only by seed"
        + (f"; sorted by {', '.join(sort)}" if sort else "")
        + ".",
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
    if unreadable:
        lines += ["", "## Unreadable runs", ""]
        lines += [f"- unreadable: `{r.path}`: {r.message}" for r in unreadable]
    return "\n".join(lines) + "\n"


def _unwritable(out: Path, e: OSError) -> str:
    return (
        f"--out {out}: cannot write the report there ({e.strerror or e}"
        + (f": {e.filename}" if e.filename and str(e.filename) != str(out) else "")
        + "); pass --out a folder you can write"
    )


def check_report_folder(out: Path) -> None:
    """`out` can take report.md, runs.csv, …: a folder (created if missing) that is not a
    run's own (whose report.md the sweep report would replace) and that can be written."""
    if (out / ".hydra" / "config.yaml").is_file():
        raise UserError(
            f"--out {out} is a run directory; the report would replace its report.md: "
            "pass --out another folder"
        )
    dangling = dangling_link(out)
    if dangling:
        raise UserError(f"--out {out} {dangling}")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".regx-report-{os.getpid()}.tmp"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise UserError(_unwritable(out, e)) from None


def warn_repeated_runs(runs: list[RunRecord]) -> None:
    """Runs of the same config and seed (a copied run folder, one sweep given twice under
    two names) each count in their group's n and std, which then looks tighter than it is."""
    first: dict[tuple[Any, Any], RunRecord] = {}
    repeats: list[tuple[RunRecord, RunRecord]] = []
    for run in runs:
        key = (run.summary.get("config_hash"), run.seed)
        if key[0] is None:
            continue
        if key in first:
            repeats.append((first[key], run))
        else:
            first[key] = run
    if repeats:
        original, repeat = repeats[0]
        print(
            f"warning: {len(repeats)} run(s) repeat the config and seed of another "
            f"({repeat.path} repeats {original.path}): each counts in its group's mean ± std",
            file=sys.stderr,
        )


def sweep_report(
    paths: list[Path],
    out: Path | None = None,
    sort: str | Sequence[str] | None = None,
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
    records = [with_numbers(r, METRIC_KEYS) for r in read_runs(find_run_dirs(paths))]
    # a damaged run folder is listed with why, never stops the report of the others
    unreadable = [r for r in records if r.status == "unreadable"]
    runs = [r for r in records if r.status != "unreadable"]
    if not runs:
        shown = "; ".join(f"unreadable: {r.path}: {r.message}" for r in unreadable[:3])
        raise UserError(f"no readable regx runs under {' '.join(map(str, paths))}: {shown}")
    runs = filter_runs(runs, list(where or []))
    warn_repeated_runs(runs)
    sort = [sort] if isinstance(sort, str) else list(sort or [])
    groups = sort_groups(group_runs(runs), sort, descending, runs)
    if out is None:
        single = len(paths) == 1 and not (paths[0] / ".hydra" / "config.yaml").is_file()
        out = paths[0] if single else Path("regx-report")
    check_report_folder(out)
    try:
        has_plot = plot and plot_compare(out / "compare.png", groups)
        text = markdown_report(groups, runs, paths, has_plot, sort, unreadable)
        (out / "report.md").write_text(text)
        write_runs_csv(out / "runs.csv", [*runs, *unreadable], out)
        if html:  # the markdown package loads only for this
            from regx.report.html_sweep import write_sweep_html

            write_sweep_html(
                out / "report.html", text, table_rows(groups), groups, runs, TABLE_COLUMNS
            )
    except OSError as e:
        raise UserError(_unwritable(out, e)) from None
    if echo:
        finished = sum(r.finished for r in runs)
        title = f"{len(runs)} runs ({finished} finished) in {len(groups)} group(s): {', '.join(map(str, paths))}"
        print_table(groups, runs, title, unreadable)
        extra = (", compare.png" if has_plot else "") + (", report.html" if html else "")
        print(f"report: {out / 'report.md'}  (runs.csv{extra})")
    return out
