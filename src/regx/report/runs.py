"""Finished (and unfinished) runs on disk, as `RunRecord`s for `regx report`.

A run whose files cannot be read as regx wrote them (summary.json that is no JSON object,
a .hydra/ file that is no YAML of the expected shape) is a record with status
`unreadable` and the reason, so that one damaged folder never stops a report.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regx.errors import UserError
from regx.processes import process_alive
from regx.progress import WorkProgress

# Reading a run takes milliseconds: a report of fewer runs shows no progress, as the bar
# would flash and its two log lines would outnumber the table's rows.
PROGRESS_FROM_RUNS = 20


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
        parts = key.split(".")
        while parts:
            if not isinstance(node, dict):
                return None
            for n in range(len(parts), 0, -1):  # keys may hold dots ("0.5" under between.*)
                head = ".".join(parts[:n])
                if head in node:
                    node, parts = node[head], parts[n:]
                    break
            else:
                return None
        return node


# -- finding and reading runs -----------------------------------------------------------------
def _natural_key(path: Path) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]


class Unreadable(Exception):
    """A run file that is not as regx writes it: `file: why`."""


def _yaml(path: Path, kind: type, default: Any) -> Any:
    """The YAML document in `path` (`default` if absent or empty), which must be a `kind`."""
    import yaml

    if not path.is_file():
        return default
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.load(f, Loader=loader)
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise Unreadable(f"{path.parent.name}/{path.name}: {_reason(e)}") from None
    if data is None:
        return default
    if not isinstance(data, kind):
        expected = "a mapping" if kind is dict else "a list"
        raise Unreadable(
            f"{path.parent.name}/{path.name}: holds a {type(data).__name__}, not {expected}"
        )
    return data


def _reason(e: Exception) -> str:
    """An exception as a short reason: YAML's problem and line, JSON's message and line."""
    problem, mark = getattr(e, "problem", None), getattr(e, "problem_mark", None)
    if problem:
        return (
            f"not valid YAML ({problem}, line {mark.line + 1})"
            if mark
            else f"not valid YAML ({problem})"
        )
    if isinstance(e, json.JSONDecodeError):
        return f"not valid JSON ({e.msg}, line {e.lineno})"
    if isinstance(e, UnicodeDecodeError):
        return "not UTF-8 text"
    return " ".join(str(e).split()) or type(e).__name__


def find_run_dirs(paths: Iterable[Path]) -> list[Path]:
    """Every folder under `paths` with a `.hydra/config.yaml` (not looking inside runs),
    following links to folders; each folder is looked at once, so a link loop ends."""
    found: list[Path] = []
    seen: set[Path] = set()
    for root in paths:
        root = Path(root)
        if not root.exists():
            raise UserError(f"{root}: no such file or directory")
        if not root.is_dir():
            raise UserError(f"{root} is not a directory; pass a run or sweep directory")
        for dirpath, dirnames, _ in os.walk(root, followlinks=True):
            here = Path(dirpath)
            if here.resolve() in seen:
                dirnames[:] = []
                continue
            seen.add(here.resolve())
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
    try:
        with open(path, "rb") as f:
            return max(sum(1 for _ in f) - 1, 0)
    except OSError:  # absent, a folder, unreadable
        return 0


def _process_alive(pid: Any, host: Any) -> bool | None:
    """Whether process `pid` on `host` still runs; None when this machine cannot tell."""
    import platform

    if not isinstance(pid, int) or host != platform.node():
        return None
    return process_alive(pid)


def _summary(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "summary.json"
    if not path.is_file():
        return {}
    try:
        summary = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError) as e:
        raise Unreadable(f"summary.json: {_reason(e)}") from None
    if not isinstance(summary, dict):
        raise Unreadable(f"summary.json: holds a JSON {type(summary).__name__}, not an object")
    return summary


def read_run(run_dir: Path) -> RunRecord:
    """The run in `run_dir` as its files describe it (see the module docstring for states)."""
    try:
        return _read_run(run_dir)
    except Unreadable as e:
        return RunRecord(run_dir, "unreadable", str(e), {}, {}, [], {}, _epochs_logged(run_dir))


def with_numbers(run: RunRecord, keys: Iterable[str]) -> RunRecord:
    """`run`, or, for a finished run whose summary holds a non-number at one of `keys` (a
    hand-edited or foreign summary.json), the same run as `unreadable`: counted as finished
    it would enter a group's n without entering its mean."""
    if not run.finished:
        return run
    for key in keys:
        value = run.value(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            shown = json.dumps(value)
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            why = f"summary.json: {key} is {shown}, not a number"
            return RunRecord(run.path, "unreadable", why, {}, {}, [], {}, run.epochs_logged)
    return run


def read_runs(run_dirs: list[Path]) -> list[RunRecord]:
    """`read_run` of each folder, under a progress bar from `PROGRESS_FROM_RUNS` runs on."""
    if len(run_dirs) < PROGRESS_FROM_RUNS:
        return [read_run(d) for d in run_dirs]
    n = len(run_dirs)
    records = []
    with WorkProgress(n, "runs", f"reading {n} runs", f"read {n} runs") as progress:
        for run_dir in run_dirs:
            records.append(read_run(run_dir))
            progress.advance()
    return records


def resolved(config: dict[str, Any]) -> dict[str, Any]:
    """`config` with its interpolations (`trainer.epochs: ${study.shift.epochs}`) resolved, as
    the run saw them; as written where one cannot be resolved here."""
    if "${" not in json.dumps(config, default=str):
        return config
    from omegaconf import OmegaConf

    try:
        return OmegaConf.to_container(OmegaConf.create(config), resolve=True)
    except Exception:  # e.g. a resolver only the launching process registered
        return config


def _read_run(run_dir: Path) -> RunRecord:
    hydra_dir = run_dir / ".hydra"
    config = resolved(_yaml(hydra_dir / "config.yaml", dict, {}))
    overrides = [str(o) for o in _yaml(hydra_dir / "overrides.yaml", list, [])]
    node = _yaml(hydra_dir / "hydra.yaml", dict, {})
    runtime = node.get("hydra") if isinstance(node.get("hydra"), dict) else {}
    runtime = runtime.get("runtime") if isinstance(runtime.get("runtime"), dict) else {}
    raw = runtime.get("choices") if isinstance(runtime.get("choices"), dict) else {}
    choices = {str(k): str(v) for k, v in raw.items() if "/" not in str(k)}
    # `+aug=none` and no aug are the same experiment
    if choices.get("aug") in (None, "None", "null", "none") or config.get("aug") is None:
        choices["aug"] = "none"
    summary = _summary(run_dir)
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
