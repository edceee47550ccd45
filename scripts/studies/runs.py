"""A study's runs on disk: which arm and condition each run is, and the values the tables show.

scripts/studies.sh writes the runs of study S at scale X under `<runs>/<X>/<S>/` (one or more
Hydra sweep folders). A run's arm and condition are its Hydra choices of the `arm` and
`condition` config groups (conf/arm/, conf/condition/), so no folder name is trusted.

Values are summary.json keys, or derived here from summary.json and metrics.csv:

    abs_gap         |val.acc − test.acc| (the validation set's error as an estimate of the test's)
    gap_ci          half-width of the bootstrap 95 % interval of val.acc − test.acc (summary `ci`)
    final_test_acc  test accuracy of the last epoch (metrics.csv `test_acc`, track_test=true)
    peak_drop       best epoch's test accuracy − the last epoch's (track_test)
    regret          best epoch's test accuracy − the picked checkpoint's (track_test)
    final_memorized noise.memorized of the last epoch (metrics.csv `noise_memorized`)
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from regx.errors import UserError
from regx.report.runs import RunRecord, find_run_dirs, read_run
from studies.rules import NOT_RUN, Stat, stat_of


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def metrics_rows(run: RunRecord) -> list[dict[str, float | None]]:
    """metrics.csv as numbers (empty cells and text as None); [] when absent."""
    path = run.path / "metrics.csv"
    if not path.is_file():
        return []
    rows = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            parsed = {}
            for k, v in row.items():
                try:
                    parsed[k] = float(v) if v not in ("", None) else None
                except ValueError:
                    parsed[k] = None
            rows.append(parsed)
    return rows


def _last(run: RunRecord, column: str) -> float | None:
    values = [r[column] for r in metrics_rows(run) if r.get(column) is not None]
    return values[-1] if values else None


def value(run: RunRecord, key: str) -> float | None:
    """A summary value, or one of the derived values of the module docstring."""
    if key == "abs_gap":
        val, test = _number(run.value("val.acc")), _number(run.value("test.acc"))
        return None if val is None or test is None else abs(val - test)
    if key == "gap_ci":
        ci = run.value("ci.val_test_gap")
        return (ci[1] - ci[0]) / 2 if isinstance(ci, list) and len(ci) == 2 else None
    if key == "final_test_acc":
        return _last(run, "test_acc")
    if key == "final_memorized":
        return _last(run, "noise_memorized")
    if key in ("peak_drop", "regret"):
        peak = _number(run.value("track_test.best_test_acc"))
        other = _last(run, "test_acc") if key == "peak_drop" else _number(run.value("test.acc"))
        return None if peak is None or other is None else peak - other
    return _number(run.value(key))


def _choice(run: RunRecord, group: str) -> str | None:
    option = run.choices.get(group)
    return None if option in (None, "None", "null") else option


@dataclass
class StudyRuns:
    """The runs of one study at one scale, by (condition option, arm option)."""

    cells: dict[tuple[str | None, str], list[RunRecord]]
    unfinished: list[RunRecord]

    def runs(self, condition: str | None, arm: str) -> list[RunRecord]:
        return self.cells.get((condition, arm), [])

    def stat(self, condition: str | None, arm: str, key: str) -> Stat:
        runs = self.runs(condition, arm)
        return stat_of(value(r, key) for r in runs) if runs else NOT_RUN

    @property
    def all_runs(self) -> list[RunRecord]:
        return [r for runs in self.cells.values() for r in runs]

    def sweep_dirs(self) -> list[Path]:
        """The sweep folders the runs came from, in order."""
        return sorted({r.path.parent for r in self.all_runs})


def load_study(folder: Path) -> StudyRuns | None:
    """The finished runs under `folder` by cell, and the others; None if no run is there."""
    if not folder.is_dir():
        return None
    try:
        dirs = find_run_dirs([folder])
    except UserError:  # no runs under the folder
        return None
    cells: dict[tuple[str | None, str], list[RunRecord]] = {}
    unfinished = []
    for run in (read_run(d) for d in dirs):
        arm = _choice(run, "arm")
        if not run.finished or arm is None:
            unfinished.append(run)
            continue
        cells.setdefault((_choice(run, "condition"), arm), []).append(run)
    return StudyRuns(cells, unfinished)


def epoch_means(runs: Iterable[RunRecord], column: str) -> tuple[list[int], list[float]]:
    """Per epoch, the mean of a metrics.csv column over the runs that logged it."""
    by_epoch: dict[int, list[float]] = {}
    for run in runs:
        for row in metrics_rows(run):
            epoch, v = row.get("epoch"), row.get(column)
            if epoch is not None and v is not None:
                by_epoch.setdefault(int(epoch), []).append(v)
    epochs = sorted(by_epoch)
    return epochs, [sum(by_epoch[e]) / len(by_epoch[e]) for e in epochs]
