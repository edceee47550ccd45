"""`regx report PATH…`: every run under the paths, grouped by experiment, compared.

A run is a folder holding `.hydra/config.yaml` (Hydra writes it before the job starts, so
killed runs are found too). Its state comes from summary.json: `finished`, or `failed` /
`diverged` / `interrupted` with a message. The engine writes `running` with its pid when
training starts, so a run killed outright still says `running`: when that pid is gone on
this machine the run is listed as `unfinished` (killed); with no summary.json, or a pid on
another machine, it is `unfinished` too (killed or still going), and only a live pid shows
as `running`. Unfinished runs are listed, never dropped.

Runs form one group when their resolved configs are equal once the seed, output locations
and execution-only settings (threads, device, progress bars, …; see `EXECUTION_KEYS`) are
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
import json
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from regx.errors import UserError

# Top-level keys and key prefixes that do not change what an experiment computes.
EXECUTION_KEYS = (
    "seed",
    "out_dir",
    "hydra",
    "sweep",
    "objective",
    "logger",
    "track_test",
    "trainer.progress",
    "trainer.threads",
    "trainer.num_workers",
    "trainer.device",
    "trainer.data_on_device",
    "trainer.eval_batch_size",
    "trainer.compile",
    "trainer.channels_last",
    "trainer.deterministic",
    "trainer.resume",
    "trainer.checkpoint",
    "trainer.nan_check_every",
)
# Config groups whose chosen option can label a group, in display order.
LABEL_GROUPS = ("experiment", "dataset", "model", "aug", "loss", "split", "trainer", "shift")
COLORS = (
    "#4C72B0",
    "#DD8452",
    "#55A868",
    "#C44E52",
    "#8172B3",
    "#937860",
    "#DA8BC3",
    "#8C8C8C",
    "#CCB974",
    "#64B5CD",
)


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


@dataclass
class RunRecord:
    """One run folder: its state, resolved config, Hydra choices and overrides, summary."""

    path: Path
    status: str
    message: str
    config: dict[str, Any]
    choices: dict[str, str]
    overrides: list[str]
    summary: dict[str, Any]
    epochs_logged: int = 0
    label: dict[str, str] = field(default_factory=dict)
    group: int = -1

    @property
    def finished(self) -> bool:
        return self.status == "finished"

    @property
    def seed(self) -> Any:
        return self.config.get("seed", self.summary.get("seed"))

    def value(self, key: str) -> Any:
        """A flattened summary value, or the derived `val_test_gap` (val.acc − test.acc)."""
        if key == "val_test_gap":
            val, test = self.value("val.acc"), self.value("test.acc")
            if isinstance(val, (int, float)) and isinstance(test, (int, float)):
                return val - test
            return None
        node: Any = self.summary
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        return node


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


# -- finding and reading runs -----------------------------------------------------------------
def _natural_key(path: Path) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]


def _yaml(path: Path) -> Any:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(path) as f:
        return yaml.load(f, Loader=loader)


def find_run_dirs(paths: Iterable[Path]) -> list[Path]:
    """Every folder under `paths` with a `.hydra/config.yaml` (not looking inside runs)."""
    found: list[Path] = []
    for root in paths:
        root = Path(root)
        if not root.exists():
            raise UserError(f"{root}: no such file or directory")
        if not root.is_dir():
            raise UserError(f"{root} is not a directory; pass a run or sweep directory")
        for dirpath, dirnames, _ in os.walk(root):
            here = Path(dirpath)
            if (here / ".hydra" / "config.yaml").is_file():
                found.append(here)
                dirnames[:] = []  # a run's own subfolders (checkpoints, eval) hold no runs
            else:
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
    unique = sorted({p.resolve(): p for p in found}.values(), key=_natural_key)
    if not unique:
        shown = " ".join(str(p) for p in paths)
        raise UserError(f"no regx runs under {shown} (looked for folders with .hydra/config.yaml)")
    return unique


def _epochs_logged(run_dir: Path) -> int:
    path = run_dir / "metrics.csv"
    if not path.is_file():
        return 0
    with open(path) as f:
        return max(sum(1 for _ in f) - 1, 0)


def _process_alive(pid: Any, host: Any) -> bool | None:
    """Whether process `pid` on `host` still runs; None when this machine cannot tell."""
    import platform

    if not isinstance(pid, int) or host != platform.node():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def read_run(run_dir: Path) -> RunRecord:
    """The run in `run_dir` as its files describe it (see the module docstring for states)."""
    import yaml

    hydra_dir = run_dir / ".hydra"
    try:
        config = _yaml(hydra_dir / "config.yaml") or {}
    except (OSError, yaml.YAMLError) as e:  # list the run rather than stop the report
        message = f".hydra/config.yaml unreadable ({type(e).__name__})"
        return RunRecord(run_dir, "unfinished", message, {}, {}, [], {}, _epochs_logged(run_dir))
    overrides = (
        [str(o) for o in (_yaml(hydra_dir / "overrides.yaml") or [])]
        if (hydra_dir / "overrides.yaml").is_file()
        else []
    )
    choices: dict[str, str] = {}
    if (hydra_dir / "hydra.yaml").is_file():
        node = _yaml(hydra_dir / "hydra.yaml") or {}
        raw = ((node.get("hydra") or {}).get("runtime") or {}).get("choices") or {}
        choices = {str(k): str(v) for k, v in raw.items() if "/" not in str(k)}
    # `+aug=none` and no aug are the same experiment
    if choices.get("aug") in (None, "None", "null", "none") or config.get("aug") is None:
        choices["aug"] = "none"
    summary: dict[str, Any] = {}
    summary_path = run_dir / "summary.json"
    if summary_path.is_file():
        try:
            summary = json.loads(summary_path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            summary = {"status": "unfinished", "message": f"summary.json unreadable ({e})"}
    epochs = _epochs_logged(run_dir)
    status = str(summary.get("status") or "unfinished")
    message = str(summary.get("message") or "")
    if status in ("unfinished", "running"):
        # `running` is written when training starts, so a killed run keeps it forever;
        # the pid it records tells the two apart on the machine that ran it.
        alive = _process_alive(summary.get("pid"), summary.get("host"))
        if alive:
            status, what = "running", f"running (pid {summary['pid']})"
        elif alive is False:
            status, what = "unfinished", f"killed: process {summary['pid']} is gone"
        else:
            status, what = "unfinished", "killed or still running"
        said = f" (summary.json: {message})" if message and alive is None else ""
        message = f"{what}; {epochs} epoch(s) in metrics.csv{said}"
    return RunRecord(run_dir, status, message, config, choices, overrides, summary, epochs)


# -- grouping -----------------------------------------------------------------------------------
def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys; lists kept as JSON text so they compare and print."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out if out or not prefix else {prefix[:-1]: "{}"}
    if isinstance(node, list):
        return {prefix[:-1]: json.dumps(node)}
    return {prefix[:-1]: node}


def _is_execution_key(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in EXECUTION_KEYS)


def experiment_config(run: RunRecord) -> dict[str, Any]:
    return {k: v for k, v in flatten(run.config).items() if not _is_execution_key(k)}


def _show(value: Any) -> str:
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
                label[name] = _show(configs[ident][name]) if name in configs[ident] else "—"
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
    return value == parsed or _show(value) == wanted


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
    groups: list[Group], key: str | None, descending: bool, runs: list[RunRecord]
) -> list[Group]:
    if key is None:
        return groups
    allowed = sortable_keys(runs)
    if key not in allowed:
        close = [k for k in allowed if key.split(".")[-1] in k][:10] or allowed[:10]
        raise UserError(
            f"--sort {key}: not a numeric summary field; try one of: {', '.join(close)}"
        )

    def value(g: Group) -> float:
        return float(len(g.finished)) if key == "n" else g.stats(key)[0]

    present = [g for g in groups if not math.isnan(value(g))]
    absent = [g for g in groups if math.isnan(value(g))]
    return sorted(present, key=value, reverse=descending) + absent


# -- output ------------------------------------------------------------------------------------
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
    header = [*label_keys, "n", *(c.title for c in TABLE_COLUMNS)]
    if any_unfinished:
        header.append("not finished")
    rows = []
    for g in groups:
        cells = [g.label.get(k, "all runs" if k == "group" else "—") for k in label_keys]
        cells.append(str(len(g.finished)))
        cells.extend(fmt_stat(*g.stats(c.key)[:2], c) for c in TABLE_COLUMNS)
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
        numeric = n_labels <= i < n_labels + 1 + len(TABLE_COLUMNS)
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


def plot_compare(path: Path, groups: list[Group]) -> bool:
    """Test accuracy vs ECE, one numbered point per group (mean ± std over seeds), the ECE
    after temperature scaling as a hollow marker joined to it. False if nothing to plot."""
    import textwrap

    from regx.report import figures

    points = [(g, g.stats("test.ece"), g.stats("test_ts.ece"), g.stats("test.acc")) for g in groups]
    points = [p for p in points if p[1][2] > 0 and p[3][2] > 0]
    if not points:
        return False
    legend_text = [
        textwrap.fill(
            f"{g.index + 1}: {g.name} (n={len(g.finished)})", 110, subsequent_indent="     "
        )
        for g, *_ in points
    ]
    legend_lines = sum(t.count("\n") + 1 for t in legend_text) + 1
    height = 4.2 + 0.19 * legend_lines
    fig = figures.new_figure(7.6, height)
    ax = fig.subplots()
    markers = "osD^vP*X"
    for i, (g, ece, ece_ts, acc) in enumerate(points):
        color = COLORS[i % len(COLORS)]
        marker = markers[(i // len(COLORS)) % len(markers)]
        x, y = 100 * ece[0], 100 * acc[0]
        ax.errorbar(
            x,
            y,
            xerr=0.0 if math.isnan(ece[1]) else 100 * ece[1],
            yerr=0.0 if math.isnan(acc[1]) else 100 * acc[1],
            fmt=marker,
            color=color,
            markersize=7,
            capsize=3,
            label=legend_text[i],
        )
        ax.annotate(
            str(g.index + 1),
            (x, y),
            xytext=(5, 5),
            textcoords="offset points",
            fontsize=9,
            color=color,
            weight="bold",
        )
        if ece_ts[2] > 0:
            xt = 100 * ece_ts[0]
            ax.plot([x, xt], [y, y], color=color, linewidth=0.8, alpha=0.6)
            ax.plot(xt, y, marker=marker, markerfacecolor="white", color=color, markersize=6)
    ax.plot(
        [],
        [],
        marker="o",
        markerfacecolor="white",
        color="black",
        linestyle="-",
        linewidth=0.8,
        label="hollow marker: ECE after temperature scaling",
    )
    ax.set_xlabel("test ECE (%), lower is better")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Accuracy vs calibration per group: mean ± std over seeds", fontsize=10)
    ax.grid(alpha=0.3)
    ax.set_xlim(left=0)
    ax.margins(x=0.08, y=0.12)
    fig.legend(
        loc="lower left", bbox_to_anchor=(0.01, 0.0), fontsize=7.5, frameon=False, handletextpad=0.6
    )
    legend_inches = 0.19 * legend_lines + 0.15
    fig.subplots_adjust(
        left=0.1, right=0.97, bottom=(legend_inches + 0.55) / height, top=1 - 0.4 / height
    )
    figures.save(fig, path)
    return True


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
        seeds = ", ".join(_show(r.seed) for r in g.runs)
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
) -> Path:
    """Find, group, print and write the report; returns the folder the files went to."""
    paths = [Path(p) for p in paths]
    runs = [read_run(d) for d in find_run_dirs(paths)]
    runs = filter_runs(runs, list(where or []))
    groups = sort_groups(group_runs(runs), sort, descending, runs)
    if out is None:
        single = len(paths) == 1 and not (paths[0] / ".hydra" / "config.yaml").is_file()
        out = paths[0] if single else Path("regx-report")
    out.mkdir(parents=True, exist_ok=True)
    has_plot = plot and plot_compare(out / "compare.png", groups)
    (out / "report.md").write_text(markdown_report(groups, runs, paths, has_plot, sort))
    write_runs_csv(out / "runs.csv", runs, out)
    if echo:
        finished = sum(r.finished for r in runs)
        title = f"{len(runs)} runs ({finished} finished) in {len(groups)} group(s): {', '.join(map(str, paths))}"
        print_table(groups, runs, title)
        print(
            f"report: {out / 'report.md'}  (runs.csv" + (", compare.png" if has_plot else "") + ")"
        )
    return out
