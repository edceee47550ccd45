"""What a study is: its arms, the conditions it compares them under, its metrics, and the
functions that turn its tables into sentences and a verdict."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from studies.rules import Metric, Stat, Verdict


@dataclass(frozen=True)
class Arm:
    option: str  # the conf/arm option, e.g. "mixing/cutmix"
    name: str  # as the page shows it


@dataclass(frozen=True)
class Condition:
    option: str | None  # the conf/condition option; None for a study without conditions
    name: str
    text: str = ""  # one sentence on what it is, for the section's heading


# One condition's table: arm option → metric key → mean ± std over seeds.
Table = dict[str, dict[str, Stat]]
# Every condition's table: condition option → Table.
Tables = dict[str | None, Table]


@dataclass(frozen=True)
class Study:
    key: str  # experiment=study_<key>; runs under <runs>/<scale>/<key>/
    number: int
    title: str
    claim: str  # the article's claim, in one sentence
    rule: str  # when the verdict is "holds", in one sentence
    arms: tuple[Arm, ...]  # the first is the baseline
    conditions: tuple[Condition, ...]
    metrics: tuple[Metric, ...]  # the table's columns
    findings: Callable[[Condition, Table, tuple[Arm, ...]], list[str]]
    verdict: Callable[[Tables, tuple[Arm, ...], int], Verdict]  # (tables, arms, seeds)
    extra_keys: tuple[str, ...] = ()  # values the findings read that are not columns
    # draws the study's figure at a path from (path, tables, runs: StudyRuns); False: none
    figure: Callable[[Path, Tables, Any], bool] | None = None

    def keys(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys([*(m.key for m in self.metrics), *self.extra_keys]))
