"""`regx report`'s terminal table: the group number of report.md and compare.png first, the
labels folded into one `config` column and the metrics stacked into tables that fit
`COLUMNS` when the terminal is narrow, numbers never broken; one mark for no value."""

from __future__ import annotations

import pytest

from regx.report.grouping import group_runs, sort_groups
from regx.report.runs import read_run
from regx.report.sweep import column_parts, fmt_stat, print_table, report_columns, terminal_rows
from test_report import finished, make_run


@pytest.fixture
def groups(tmp_path):
    root = tmp_path / "s"
    make_run(root, "a", seed=0, loss="ce", summary=finished(0.9, 0.05, 0.02, 0.3, 0.91))
    make_run(
        root, "b", seed=0, loss="gamma_ce", gamma=0.5, summary=finished(0.8, 0.1, 0.03, 0.5, 0.8)
    )
    make_run(
        root, "c", seed=0, loss="gamma_ce", gamma=0.9, summary=finished(0.7, 0.2, 0.04, 0.7, 0.75)
    )
    make_run(
        root, "d", seed=1, loss="gamma_ce", gamma=0.9, summary=finished(0.6, 0.3, 0.05, 0.9, 0.65)
    )
    runs = [read_run(root / name) for name in "abcd"]
    # sorted by accuracy, lowest first: the numbers stay those of the groups
    return sort_groups(group_runs(runs), ["test.acc"], False, runs), runs


def test_the_group_number_leads_and_labels_fold_when_too_wide(groups):
    groups, _ = groups
    header, rows, n_lead = terminal_rows(groups, None)
    assert header[:4] == ["#", "loss", "loss.gamma", "n"] and n_lead == 4
    assert [row[:3] for row in rows] == [
        ["3", "gamma_ce", "0.9"],
        ["2", "gamma_ce", "0.5"],
        ["1", "ce", "—"],  # ce has no gamma: absent, shown as —
    ]
    assert [row[3] for row in rows] == ["2", "1", "1"]
    header, rows, n_lead = terminal_rows(groups, 40)
    assert header[:3] == ["#", "config", "n"] and n_lead == 3
    # absent keys are left out of the folded column
    assert [row[1] for row in rows] == [
        "loss=gamma_ce loss.gamma=0.9",
        "loss=gamma_ce loss.gamma=0.5",
        "loss=ce",
    ]


def test_columns_are_split_into_parts_that_fit():
    widths = [1, 20, 1, 12, 12, 12, 19]
    assert column_parts(widths, 3, None) == [[3, 4, 5, 6]]
    # the leading three take 1+20+1 + 3·3 + 1 = 32 characters; 48 leave room for one 12 + 3
    assert column_parts(widths, 3, 48) == [[3], [4], [5], [6]]
    assert column_parts(widths, 3, 64) == [[3, 4], [5], [6]]
    assert column_parts(widths, 3, 200) == [[3, 4, 5, 6]]


@pytest.mark.parametrize("columns", ["64", "5"])  # 5: narrower than # / config / n alone
def test_a_narrow_terminal_gets_stacked_tables_with_every_number_whole(
    groups, capsys, monkeypatch, columns
):
    groups, runs = groups
    # # / config / n take 40 characters, the widest metric column 22 more
    monkeypatch.setenv("COLUMNS", columns)
    print_table(groups, runs, "4 runs")
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 64
    tables = out.count("┏")
    assert tables >= 3  # 6 metric columns do not fit next to # / config / n in 64
    # read the tables back: (group number, column title) → the cell printed
    cells: dict[tuple[str, str], str] = {}
    titles: list[str] = []
    for line in lines:
        parts = [c.strip() for c in line.strip()[1:-1].split(line[0])] if line else []
        if line.startswith("┃"):
            titles = parts
        elif line.startswith("│"):
            assert parts[0], f"a wrapped row: {line}"  # each group on one line
            cells.update({(parts[0], t): c for t, c in zip(titles, parts)})
    for g in groups:
        number = str(g.index + 1)
        name = " ".join(f"{k}={v}" for k, v in g.label.items() if v != "—")
        assert cells[(number, "config")] == name
        for column in report_columns(groups):
            assert cells[(number, column.title)] == fmt_stat(*g.stats(column.key)[:2], column)


def test_a_pipe_gets_one_table_at_full_width(groups, capsys, monkeypatch):
    groups, runs = groups
    monkeypatch.delenv("COLUMNS", raising=False)
    print_table(groups, runs, "4 runs")
    out = capsys.readouterr().out
    assert out.count("┏") == 1
    header = next(ln for ln in out.splitlines() if ln.startswith("┃"))
    titles = [c.strip() for c in header.strip("┃").split("┃")]
    assert titles == ["#", "loss", "loss.gamma", "n", *(c.title for c in report_columns(groups))]


def test_further_sort_keys_break_ties_and_groups_without_a_value_go_last(tmp_path):
    root = tmp_path / "s"
    # (γ, accuracy, ECE): γ 0.2 and 0.5 tie on accuracy, γ 0.9 has no recall@1
    for name, gamma, acc, ece, r1 in [
        ("a", 0.2, 0.8, 0.30, 0.5),
        ("b", 0.5, 0.8, 0.10, 0.7),
        ("c", 0.9, 0.7, 0.20, None),
    ]:
        summary = finished(acc, ece, 0.02, 0.3, 0.9, r1=r1)
        make_run(root, name, seed=0, loss="gamma_ce", gamma=gamma, summary=summary)
    runs = [read_run(root / name) for name in "abc"]

    def gammas(keys, descending=False):
        ordered = sort_groups(group_runs(runs), keys, descending, runs)
        return [g.runs[0].config["loss"]["gamma"] for g in ordered]

    assert gammas(["test.acc", "test.ece"]) == [0.9, 0.5, 0.2]
    assert gammas(["test.acc", "test.ece"], descending=True) == [0.2, 0.5, 0.9]
    assert gammas(["retrieval.recall_at_1"]) == [0.2, 0.5, 0.9]
    assert gammas(["retrieval.recall_at_1"], descending=True) == [0.5, 0.2, 0.9]  # None last
