"""Grouping runs that differ only by seed (or by keys that change no number, regx.keys),
labelling each group by what varies between them, filtering and sorting groups."""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from regx.errors import UserError
from regx.keys import comparison_config
from regx.report.runs import RunRecord, flatten

# Config groups whose chosen option can label a group, in display order.
LABEL_GROUPS = ("experiment", "dataset", "model", "aug", "loss", "split", "trainer", "shift")


@dataclass
class Group:
    """Runs with the same experiment config; `label` says how it differs from the others."""

    index: int
    label: dict[str, str]
    runs: list[RunRecord]

    @property
    def finished(self) -> list[RunRecord]:
        return [r for r in self.runs if r.finished]

    def values(self, key: str) -> np.ndarray:
        out = [r.value(key) for r in self.finished]
        return np.array(
            [v for v in out if isinstance(v, (int, float)) and not isinstance(v, bool)], dtype=float
        )

    def stats(self, key: str) -> tuple[float, float, int]:
        """(mean, sample std (nan for one value), count) of `key` over finished runs."""
        v = self.values(key)
        if len(v) == 0:
            return math.nan, math.nan, 0
        return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else math.nan, len(v)

    @property
    def name(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.label.items()) or "all runs"


def experiment_config(run: RunRecord) -> dict[str, Any]:
    """The keys runs are compared by (regx.keys.comparison_config), lists as JSON text."""
    return {
        k: json.dumps(v) if isinstance(v, list) else v
        for k, v in comparison_config(run.config).items()
    }


def show_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _cell(exp: dict[str, Any], key: str) -> str:
    """A config value as comparable text (absent keys compare unequal to any value)."""
    return json.dumps(exp[key], default=str) if key in exp else "<absent>"


def _under(key: str, group: str) -> bool:
    return key == group or key.startswith(group + ".")


def group_runs(runs: list[RunRecord]) -> list[Group]:
    """Groups of runs with equal experiment configs, labelled by what varies between them."""
    members: dict[str, list[RunRecord]] = {}
    configs: dict[str, dict[str, Any]] = {}
    for run in runs:
        exp = experiment_config(run)
        ident = json.dumps(exp, sort_keys=True, default=str)
        members.setdefault(ident, []).append(run)
        configs[ident] = exp
    idents = list(members)
    all_keys = list(dict.fromkeys(k for i in idents for k in configs[i]))
    varying = [k for k in all_keys if len({_cell(configs[i], k) for i in idents}) > 1]

    def option(ident: str, group: str) -> str | None:
        return members[ident][0].choices.get(group)

    # Label parts: ("option", group) shows the group's option; ("key", k) one config value.
    parts: list[tuple[str, str]] = []
    for group in LABEL_GROUPS:
        under = [k for k in varying if _under(k, group)]
        options = {option(i, group) for i in idents}
        if not under or len(options) == 1 or None in options:
            parts.extend(("key", k) for k in under)
            continue
        parts.append(("option", group))
        for k in under:  # a key that still differs between groups with the same option
            seen: dict[str | None, set[str]] = {}
            for i in idents:
                seen.setdefault(option(i, group), set()).add(_cell(configs[i], k))
            if any(len(values) > 1 for values in seen.values()):
                parts.append(("key", k))
    parts.extend(("key", k) for k in varying if not any(_under(k, g) for g in LABEL_GROUPS))
    # A node's `_target_` only says which class; it labels a group when nothing else does.
    labelled = [name for kind, name in parts if kind == "key"]
    parts = [
        (kind, name)
        for kind, name in parts
        if not (
            kind == "key"
            and name.endswith("._target_")
            and any(k != name and k.startswith(name[: -len("_target_")]) for k in labelled)
        )
    ]

    groups: list[Group] = []
    for index, ident in enumerate(idents):
        label = {}
        for kind, name in parts:
            if kind == "option":
                label[name] = str(option(ident, name))
            else:
                label[name] = show_value(configs[ident][name]) if name in configs[ident] else "—"
        group = Group(index, label, members[ident])
        for run in group.runs:
            run.label, run.group = label, index
        groups.append(group)
    return groups


# -- filtering and sorting ----------------------------------------------------------------------
def _matches(run: RunRecord, key: str, wanted: str) -> bool | None:
    """Whether `run` has key=wanted; None when the run has no such key at all."""
    import yaml

    if key == "status":
        return run.status == wanted
    if key in run.choices:
        return run.choices[key] == wanted
    flat_cfg = flatten(run.config)
    value: Any
    if key in flat_cfg:
        value = flat_cfg[key]
    else:
        value = run.value(key)
        if value is None:
            return None
    try:
        parsed = yaml.safe_load(wanted)
    except yaml.YAMLError:
        parsed = wanted
    if isinstance(parsed, str):  # YAML 1.1 reads 5e-2 (no dot) as text; Hydra reads a number
        with contextlib.suppress(ValueError):
            parsed = float(wanted)
    return value == parsed or show_value(value) == wanted


def filter_runs(runs: list[RunRecord], where: list[str]) -> list[RunRecord]:
    for clause in where:
        key, sep, wanted = clause.partition("=")
        if not sep or not key:
            raise UserError(f"--where {clause!r}: expected KEY=VALUE, e.g. --where loss=gamma_ce")
        results = [(_matches(r, key, wanted), r) for r in runs]
        if all(m is None for m, _ in results):
            raise UserError(
                f"--where {clause}: no run has a key {key!r} (use a config group such as loss, "
                "a config key such as loss.gamma, a summary key such as test.acc, or status)"
            )
        runs = [r for m, r in results if m]
        if not runs:
            raise UserError(f"no runs match --where {clause}")
    return runs


def sortable_keys(runs: list[RunRecord]) -> list[str]:
    """Numeric summary fields of the runs, the metrics first."""
    keys: dict[str, None] = {}
    for run in runs:
        for k, v in flatten(run.summary).items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                keys[k] = None
    metric_prefixes = ("test.", "test_ts.", "val.", "retrieval.", "split.")
    metrics = sorted(k for k in keys if k.startswith(metric_prefixes))
    rest = sorted(k for k in keys if not k.startswith(metric_prefixes))
    return [*metrics, "val_test_gap", "n", *rest]


def sort_groups(
    groups: list[Group], keys: Sequence[str], descending: bool, runs: list[RunRecord]
) -> list[Group]:
    """Groups ordered by the mean of `keys[0]`, ties by the next key, and so on; a group
    without a value for a key goes after those with one, in either direction."""
    allowed = sortable_keys(runs)
    for key in keys:
        if key not in allowed:
            close = [k for k in allowed if key.split(".")[-1] in k][:10] or allowed[:10]
            raise UserError(
                f"--sort {key}: not a numeric summary field; try one of: {', '.join(close)}"
            )

    def order(key: str) -> Callable[[Group], tuple[bool, float]]:
        def value(g: Group) -> tuple[bool, float]:
            v = float(len(g.finished)) if key == "n" else g.stats(key)[0]
            return math.isnan(v), (-v if descending else v)

        return value

    ordered = list(groups)
    for key in reversed(keys):  # stable sorts, last key first: lexicographic order
        ordered.sort(key=order(key))
    return ordered


# -- output ------------------------------------------------------------------------------------
