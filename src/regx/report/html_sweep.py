"""The sweep report as one self-contained HTML page (`regx report PATH… --html`).

The page is the sweep's report.md rendered (see regx.report.html) with two differences:
its comparison table is sortable, links each group's runs to their pages, and shows under
each mean ± std over seeds the runs' bootstrap 95 % interval when their summaries have one;
and a table of every run follows, one row per run, linked to the run's report.html.

A run's interval for a summary key such as `test.acc` is read from `summary["ci"]`,
nested like the summary (`ci.test.acc`) or flat (`ci["test.acc"]`), as `[lo, hi]` or
`{"lo": …, "hi": …}`. A group's interval is the mean of its runs' bounds: the width of the
test-sampling uncertainty of one run, to set beside the spread over seeds. It is shown
only when every finished run of the group has one.

This module reads the sweep's groups and runs through the small protocols below, so it
does not import regx.report.sweep (which calls it).
"""

from __future__ import annotations

import html
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from regx.report.format import Column, fmt_metric
from regx.report.html import Link, page, render_markdown


class ColumnLike(Protocol):
    key: str
    title: str
    scale: float
    decimals: int


class RunLike(Protocol):
    path: Path
    status: str
    message: str
    summary: dict[str, Any]
    group: int

    @property
    def seed(self) -> Any: ...

    @property
    def finished(self) -> bool: ...

    def value(self, key: str) -> Any: ...


class GroupLike(Protocol):
    index: int

    @property
    def runs(self) -> Sequence[RunLike]: ...

    @property
    def finished(self) -> Sequence[RunLike]: ...

    @property
    def name(self) -> str: ...


@dataclass(frozen=True)
class Interval:
    lo: float
    hi: float


RUN_COLUMNS = (
    Column("test.acc", "test acc (%)", 100, 2),
    Column("test.ece", "ECE (%)", 100, 2),
    Column("test_ts.ece", "ECE after TS (%)", 100, 2),
    Column("test.nll", "NLL", 1, 4),
    Column("temperature", "T", 1, 3),
    Column("val.acc", "val acc (%)", 100, 2),
)


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def run_interval(summary: dict[str, Any], key: str) -> Interval | None:
    """The run's bootstrap interval for summary `key` (see the module docstring), or None."""
    ci = summary.get("ci")
    if not isinstance(ci, dict):
        return None
    node: Any = ci.get(key)
    if node is None:
        node = ci
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node = [node.get("lo"), node.get("hi")]
    if isinstance(node, (list, tuple)) and len(node) == 2:
        lo, hi = _number(node[0]), _number(node[1])
        if lo is not None and hi is not None:
            return Interval(lo, hi)
    return None


def group_interval(group: GroupLike, key: str) -> Interval | None:
    """Mean bounds of the finished runs' intervals; None unless every finished run has one."""
    found = [run_interval(r.summary, key) for r in group.finished]
    if not found or any(i is None for i in found):
        return None
    return Interval(
        sum(i.lo for i in found if i) / len(found), sum(i.hi for i in found if i) / len(found)
    )


def _ci_span(interval: Interval | None, scale: float, decimals: int) -> str:
    if interval is None:
        return ""
    lo, hi = interval.lo * scale, interval.hi * scale
    return f'<span class="ci">95 % CI [{lo:.{decimals}f}, {hi:.{decimals}f}]</span>'


def run_href(run: RunLike, out: Path) -> str | None:
    """The run's page relative to the folder of the sweep page: report.html, else report.md."""
    for name in ("report.html", "report.md"):
        if (run.path / name).is_file():
            return Path(os.path.relpath(run.path / name, out)).as_posix()
    return None


def _run_link(run: RunLike, out: Path, text: str) -> str:
    href = run_href(run, out)
    if href is None:
        return html.escape(text)
    return f'<a href="{html.escape(href, quote=True)}">{html.escape(text)}</a>'


def _table(table_id: str, header: list[str], rows: list[str], numeric: set[int]) -> str:
    head = "".join(
        f'<th class="num">{html.escape(h)}</th>' if i in numeric else f"<th>{html.escape(h)}</th>"
        for i, h in enumerate(header)
    )
    return (
        f'<table class="sortable" id="{table_id}">\n<thead><tr>{head}</tr></thead>\n<tbody>\n'
        + "\n".join(rows)
        + "\n</tbody>\n</table>"
    )


def comparison_table(
    header: list[str],
    rows: list[list[str]],
    groups: Sequence[GroupLike],
    columns: Sequence[ColumnLike],
    out: Path,
) -> str:
    """The sweep's table (`header`/`rows` as in report.md, one row per group, in `groups`'
    order) with each column's interval under its cell and the group's runs linked."""
    by_title = {c.title: c for c in columns}
    numeric = {i for i, h in enumerate(header) if h in by_title or h == "n"}
    html_rows = []
    for group, cells in zip(groups, rows):
        tds = []
        for i, cell in enumerate(cells):
            column = by_title.get(header[i])
            extra = (
                _ci_span(group_interval(group, column.key), column.scale, column.decimals)
                if column is not None
                else ""
            )
            kind = ' class="num"' if i in numeric else ""
            tds.append(f"<td{kind}>{html.escape(cell)}{extra}</td>")
        links = " ".join(_run_link(r, out, f"seed {r.seed}") for r in group.runs)
        tds.append(f"<td>{links}</td>")
        html_rows.append(f'<tr data-group="{group.index + 1}">' + "".join(tds) + "</tr>")
    return _table("groups", [*header, "runs"], html_rows, numeric)


def runs_table(runs: Sequence[RunLike], groups: Sequence[GroupLike], out: Path) -> str:
    """One row per run: group, seed, status, the test metrics (with intervals), its page."""
    names = {g.index: g.name for g in groups}
    header = ["group", "label", "seed", "status", *(c.title for c in RUN_COLUMNS), "run"]
    numeric = set(range(4, 4 + len(RUN_COLUMNS)))
    html_rows = []
    for run in sorted(runs, key=lambda r: r.group):
        cells = [
            f"<td>{run.group + 1}</td>",
            f"<td>{html.escape(names.get(run.group, ''))}</td>",
            f"<td>{html.escape(str(run.seed))}</td>",
            f'<td title="{html.escape(run.message, quote=True)}">{html.escape(run.status)}</td>',
        ]
        for c in RUN_COLUMNS:
            text = fmt_metric(run.value(c.key), c.scale, c.decimals) if run.finished else "—"
            ci = _ci_span(run_interval(run.summary, c.key), c.scale, c.decimals)
            cells.append(f'<td class="num">{text}{ci if run.finished else ""}</td>')
        cells.append(
            f"<td>{_run_link(run, out, Path(os.path.relpath(run.path, out)).as_posix())}</td>"
        )
        html_rows.append(f'<tr data-group="{run.group + 1}">' + "".join(cells) + "</tr>")
    return _table("runs", header, html_rows, numeric)


def sweep_html(
    markdown_text: str,
    table: tuple[list[str], list[list[str]], int],
    groups: Sequence[GroupLike],
    runs: Sequence[RunLike],
    columns: Sequence[ColumnLike],
    out: Path,
) -> str:
    """The page: report.md rendered, its first table replaced by the linked, sortable one."""
    header, rows, _ = table
    any_ci = any(run_interval(r.summary, c.key) for r in runs for c in columns)
    note = "Click a column header to sort." + (
        " 95 % CI: the bootstrap interval of each run on its test set, averaged over the "
        "group's runs (the sampling uncertainty of one run, beside the spread over seeds)."
        if any_ci
        else ""
    )
    compare = comparison_table(header, rows, groups, columns, out)
    compare += f'\n<p class="note">{note}</p>'
    body = render_markdown(markdown_text, out)
    body, replaced = re.subn(r"<table>.*?</table>", lambda _: compare, body, count=1, flags=re.S)
    if not replaced:
        body = compare + "\n" + body
    body += "\n<h2>Runs</h2>\n" + runs_table(runs, groups, out)
    return page("Sweep report", body, [Link("runs.csv (every summary field)", "runs.csv")])


def write_sweep_html(
    path: Path,
    markdown_text: str,
    table: tuple[list[str], list[list[str]], int],
    groups: Sequence[GroupLike],
    runs: Sequence[RunLike],
    columns: Sequence[ColumnLike],
) -> Path:
    """Write the sweep page to `path` (links to runs relative to its folder)."""
    path.write_text(sweep_html(markdown_text, table, groups, runs, columns, path.parent))
    return path
