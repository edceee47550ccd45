"""What a finished search prints and leaves in its sweep dir.

- a table of every trial of the study, best first (by the first objective, in its
  direction), then pruned and failed ones; `trials.csv` holds the same rows;
- one objective: the best trial with its run dir; `optimization_results.yaml` holds it;
- several objectives: the Pareto front, the complete trials no other complete trial
  dominates (no worse in every objective, better in one); `pareto.csv` holds it.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from regx.app.search.study import RETRY_ATTR

STATE_ORDER = {"COMPLETE": 0, "PRUNED": 1, "FAIL": 2}
STATE_NAMES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed"}


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else str(value)


def _rank(trial: Any, signs: list[float]) -> tuple[Any, ...]:
    """Sort key: state (complete, pruned, failed), then the first objective, best first."""
    value = trial.values[0] if trial.values else math.nan
    key = signs[0] * value if math.isfinite(value) else math.inf
    return (STATE_ORDER.get(trial.state.name, 3), key, trial.number)


def trial_rows(study: Any, objective: list[str]) -> tuple[list[str], list[list[Any]]]:
    """(header, one row per trial sorted best first): trial, state, values, params, run dir."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get(RETRY_ATTR) for t in trials}
    shown = [
        t
        for t in trials
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        and t.number not in retried
    ]
    signs = [1.0 if d.name == "MINIMIZE" else -1.0 for d in study.directions]
    params = sorted({name for t in shown for name in t.params})
    header = ["trial", "state", *objective, *params, "run_dir"]
    rows = []
    for t in sorted(shown, key=lambda t: _rank(t, signs)):
        values = list(t.values) if t.values else [None] * len(objective)
        row = [t.number, STATE_NAMES[t.state.name], *values, *(t.params.get(p) for p in params)]
        rows.append([*row, t.user_attrs.get("run_dir", "")])
    return header, rows


def _print_table(header: list[str], rows: list[list[Any]]) -> None:
    cells = [header[:-1], *([_show(v) for v in row[:-1]] for row in rows)]  # no run dir
    widths = [max(len(str(r[i])) for r in cells) for i in range(len(header) - 1)]
    for r in cells:
        print("  " + "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(["" if v is None else v for v in row] for row in rows)


def report(
    study: Any, objective: list[str], sweep_dir: Path, storage: str | None
) -> dict[str, int]:
    """Print the trial table and the best trial or Pareto front; write their files.

    Returns the number of trials by state (complete, pruned, failed)."""
    header, rows = trial_rows(study, objective)
    counts = {s: sum(r[1] == s for r in rows) for s in STATE_NAMES.values()}
    print(
        f"search '{study.study_name}': {len(rows)} trials ({counts['complete']} complete, "
        f"{counts['pruned']} pruned, {counts['failed']} failed)"
        + (f" in {storage}" if storage else ""),
        flush=True,
    )
    _print_table(header, rows)
    _write_csv(sweep_dir / "trials.csv", header, rows)
    if counts["complete"] and len(objective) == 1:
        _report_best(study, objective[0], sweep_dir, len(rows))
    elif counts["complete"]:
        _report_front(study, objective, sweep_dir, len(rows))
    return counts


def _report_best(study: Any, key: str, sweep_dir: Path, n_trials: int) -> None:
    best = study.best_trial
    run_dir = best.user_attrs.get("run_dir", "")
    results = {
        "study": study.study_name,
        "objective": key,
        "direction": study.direction.name.lower(),
        "best_trial": best.number,
        "best_value": best.value,
        "best_params": dict(best.params),
        "run_dir": run_dir,
    }
    OmegaConf.save(OmegaConf.create(results), sweep_dir / "optimization_results.yaml")
    shown = "  ".join(f"{k}={_show(v)}" for k, v in best.params.items())
    print(
        f"best trial: #{best.number} of {n_trials}  {key} = {best.value:.6g}\n"
        f"  {shown}\n  run dir: {run_dir}\n  all trials: {sweep_dir / 'trials.csv'}",
        flush=True,
    )


def _report_front(study: Any, objective: list[str], sweep_dir: Path, n_trials: int) -> None:
    front = sorted(study.best_trials, key=lambda t: t.number)
    directions = [d.name.lower()[:3] for d in study.directions]
    params = sorted({name for t in front for name in t.params})
    header = ["trial", *objective, *params, "run_dir"]
    rows = [
        [t.number, *t.values, *(t.params.get(p) for p in params), t.user_attrs.get("run_dir", "")]
        for t in front
    ]
    _write_csv(sweep_dir / "pareto.csv", header, rows)
    goals = ", ".join(f"{k} {d}" for k, d in zip(objective, directions))
    print(f"Pareto front: {len(front)} of {n_trials} trials ({goals})", flush=True)
    for t in front:
        values = "  ".join(f"{k}={v:.6g}" for k, v in zip(objective, t.values))
        drawn = "  ".join(f"{k}={_show(v)}" for k, v in t.params.items())
        print(f"  #{t.number}  {values}  {drawn}", flush=True)
    print(f"  front: {sweep_dir / 'pareto.csv'}", flush=True)
