"""docs/studies.md: for each study and scale a table, its sentences, its figure, the
`regx report` view of its runs, the commands that made them, and the verdict line."""

from __future__ import annotations

import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from regx.report.sweep import sweep_report
from studies import mixing, noise, open_set, shift
from studies.rules import Verdict, chance_rate
from studies.runs import StudyRuns, load_study
from studies.study import Condition, Study, Table, Tables

STUDIES: tuple[Study, ...] = (mixing.STUDY, noise.STUDY, open_set.STUDY, shift.STUDY)
SCALES = {"digits": "digits", "cifar": "CIFAR-10 subset"}


def build_tables(study: Study, runs: StudyRuns) -> Tables:
    keys = study.keys()
    return {
        c.option: {
            a.option: {k: runs.stat(c.option, a.option, k) for k in keys} for a in study.arms
        }
        for c in study.conditions
    }


def table_lines(study: Study, table: Table) -> list[str]:
    titles = [m.title.replace("|", "\\|") for m in study.metrics]  # a bare | ends a cell
    lines = [
        f"| method | {' | '.join(titles)} |",
        "|---|" + "---:|" * len(study.metrics),
    ]
    for arm in study.arms:
        stats = table[arm.option]
        if all(s.n == 0 for s in stats.values()):
            lines.append(f"| {arm.name} | not run |" + " |" * (len(study.metrics) - 1))
            continue
        cells = [stats[m.key].fmt(m) for m in study.metrics]
        lines.append(f"| {arm.name} | {' | '.join(cells)} |")
    return lines


def _seeds(runs: StudyRuns) -> list[int]:
    return sorted({int(r.seed) for r in runs.all_runs if isinstance(r.seed, int)})


def jobs_at_once(runs: StudyRuns) -> int | None:
    """How many runs each sweep ran at once, from its multirun.yaml (joblib's n_jobs; 1 for
    Hydra's basic launcher); None when the sweeps differ or do not say."""
    found = set()
    for folder in runs.sweep_dirs():
        try:
            launcher = yaml.safe_load((folder / "multirun.yaml").read_text())["hydra"]["launcher"]
        except (OSError, KeyError, TypeError, yaml.YAMLError):
            return None
        joblib = "joblib" in str(launcher.get("_target_", ""))
        found.add(launcher.get("n_jobs") if joblib else 1)
    (jobs,) = found if len(found) == 1 else (None,)
    return jobs if isinstance(jobs, int) and jobs > 0 else None


def _test_sizes(runs: list) -> list[int]:
    return sorted({r.summary.get("dataset", {}).get("test_size") for r in runs} - {None})


def sweep_minutes(runs: StudyRuns) -> float:
    """Wall minutes the runs took: per sweep folder, its first run's start to its last run's
    end (summary.json `started` / `finished`), summed over the study's sweeps."""
    total = 0.0
    for sweep in runs.sweep_dirs():
        spans = [
            (r.summary["started"], r.summary["finished"])
            for r in runs.all_runs
            if r.path.parent == sweep and "started" in r.summary and "finished" in r.summary
        ]
        if spans:
            total += max(f for _, f in spans) - min(s for s, _ in spans)
    return total / 60


def minutes_text(minutes: float) -> str:
    return f"{minutes:.0f} minute{'' if round(minutes) == 1 else 's'}"


def setting_line(runs: StudyRuns) -> str:
    """Sizes, model, epochs and seeds, read from the runs themselves."""
    run = runs.all_runs[0]
    data = run.summary.get("dataset", {})
    config = run.config
    subset = (config.get("dataset") or {}).get("subset")
    model = str((config.get("model") or {}).get("_target_", "?")).rsplit(".", 1)[-1]
    widths = (config.get("model") or {}).get("widths")
    epochs = (config.get("trainer") or {}).get("epochs")
    tests = _test_sizes(runs.all_runs)
    test = f"{tests[0]:,} test images" if len(tests) == 1 else "test images per condition below"
    sizes = f"{data.get('train_size', 0):,} train / {data.get('val_size', 0):,} validation / {test}"
    pool = f" (a stratified subset of {subset:,} training images)" if subset else ""
    net = f"{model} ({'-'.join(map(str, widths))} channels)" if widths else model
    seeds = ", ".join(map(str, _seeds(runs)))
    jobs = jobs_at_once(runs)
    at_once = f", {jobs} run{'s' if jobs != 1 else ''} at a time" if jobs else ""
    return (
        f"Setting: {data.get('name', '?')}, {sizes}{pool}, {data.get('num_classes', '?')} "
        f"classes trained; {net}; {epochs} epoch{'s' if epochs != 1 else ''}; seeds {seeds}; "
        f"{len(runs.all_runs)} runs, which took {minutes_text(sweep_minutes(runs))} (first start "
        f"to last finish of each sweep{at_once})."
    )


def command_lines(study: Study, scale: str, runs: StudyRuns) -> list[str]:
    """One `regx train -m` line per sweep folder, equivalent to what ran there."""
    lines = []
    for folder in runs.sweep_dirs():
        in_dir = [r for r in runs.all_runs if r.path.parent == folder]
        arms = [
            a.option for a in study.arms if any(r.choices.get("arm") == a.option for r in in_dir)
        ]
        conds = [
            c.option
            for c in study.conditions
            if c.option and any(r.choices.get("condition") == c.option for r in in_dir)
        ]
        seeds = sorted({r.seed for r in in_dir})
        swept = ("arm=", "condition=", "seed=", "experiment=", "scale=")
        others = sorted({o for r in in_dir for o in r.overrides if not o.startswith(swept)})
        parts = [f"regx train -m experiment=study_{study.key} scale={scale}"]
        if len(arms) < len(study.arms):
            parts.append("arm=" + ",".join(arms))
        if conds and len(conds) < len([c for c in study.conditions if c.option]):
            parts.append("condition=" + ",".join(conds))
        parts.append("seed=" + ",".join(map(str, seeds)))
        lines.append(" ".join(parts + others))
    return lines


def missing_line(study: Study, runs: StudyRuns) -> str:
    """Which cells of the study's grid have no finished runs at this scale."""
    ran = [c for c in study.conditions if any(runs.runs(c.option, a.option) for a in study.arms)]
    parts = (
        ["conditions " + ", ".join(c.name for c in study.conditions if c not in ran)]
        if len(ran) < len(study.conditions)
        else []
    )
    for arm in study.arms:
        missing = [c for c in ran if not runs.runs(c.option, arm.option)]
        if not missing:
            continue
        if len(missing) == len(ran):
            parts.append(
                arm.name
                if ran[0].option is None or len(ran) == 1
                else f"{arm.name} (every condition)"
            )
        else:
            parts.append(f"{arm.name} under {', '.join(c.name for c in missing)}")
    if not parts:
        return ""
    return (
        "Not run at this scale (cut to fit the CPU budget, see scripts/studies.sh): "
        + "; ".join(parts)
        + "."
    )


def condition_lines(study: Study, cond: Condition, table: Table, runs: StudyRuns) -> list[str]:
    """One condition's heading (for studies with conditions), table and sentences."""
    lines = []
    if cond.option:
        tests = _test_sizes([r for a in study.arms for r in runs.runs(cond.option, a.option)])
        n_test = f" {tests[0]:,} test images." if len(tests) == 1 else ""
        lines += [f"#### {cond.name}", "", f"{cond.text[0].upper()}{cond.text[1:]}.{n_test}", ""]
    lines += [*table_lines(study, table), ""]
    return lines + [f"- {s}" for s in study.findings(cond, table, study.arms)] + [""]


@dataclass
class Section:
    """One study at one scale: its lines, verdict, the minutes its runs took, its number
    of seeds and how many runs it ran at once (None: not known)."""

    lines: list[str]
    verdict: Verdict | None = None
    minutes: float = 0.0
    seeds: int = 0
    jobs: int | None = None


def scale_section(study: Study, scale: str, runs_root: Path, docs: Path) -> Section:
    """The section of one study at one scale (see `Section`)."""
    runs = load_study(runs_root / scale / study.key)
    title = f"### {SCALES[scale]}"
    if runs is None or not runs.all_runs:
        return Section([title, "", "*Not run at this scale.*", ""])
    tables = build_tables(study, runs)
    out_dir = docs / "studies" / f"{scale}-{study.key}"
    sweep_report(runs.sweep_dirs(), out=out_dir, plot=True, echo=False)
    link = out_dir.relative_to(docs)
    lines = [title, "", setting_line(runs), ""]
    if runs.unfinished:
        lines += [
            f"{len(runs.unfinished)} run(s) did not finish and are left out: see the report.",
            "",
        ]
    for cond in study.conditions:
        if any(runs.runs(cond.option, a.option) for a in study.arms):
            lines += condition_lines(study, cond, tables[cond.option], runs)
    missing = missing_line(study, runs)
    lines += [missing, ""] if missing else []
    if study.figure and study.figure(out_dir / "study.png", tables, runs):
        lines += [f"![{study.title}]({link}/study.png)", ""]
    lines += [
        f"Mean ± sample std over seeds; [`regx report` table, runs.csv, accuracy vs ECE]({link}/report.md). "
        "Commands (scripts/studies.sh adds `hydra/launcher=joblib`):",
        "",
        "```",
        *command_lines(study, scale, runs),
        "```",
        "",
    ]
    verdict = study.verdict(tables, study.arms, len(_seeds(runs)))
    lines += [f"**Verdict, {SCALES[scale]}: {verdict.word}.** {verdict.reason}", ""]
    return Section(lines, verdict, sweep_minutes(runs), len(_seeds(runs)), jobs_at_once(runs))


GPU_SECTION = [
    "## GPU settings (not yet run)",
    "",
    "The presets below reproduce the papers' scale and need a GPU; none was available when "
    "this page was generated, so they have no results here yet.",
    "",
    "```",
    "# mixup paper: full CIFAR-10, PreAct ResNet-18, 200 epochs",
    "REGX_CIFAR10=/path/to/cifar10-jpg regx train -m experiment=gpu_cifar10_preact18 "
    "+aug=none,mixup seed=0,1,2",
    "REGX_CIFAR10=/path/to/cifar10-jpg regx train -m experiment=gpu_cifar10_preact18 "
    "loss=ce,gamma_ce,am_softmax seed=0,1,2",
    "# speed recipe (airbench-style), target 94 % test accuracy",
    "REGX_CIFAR10=/path/to/cifar10-jpg regx train experiment=cifar10_speed",
    "```",
    "",
]


def intro(minutes: int | None, sections: list[Section]) -> list[str]:
    ran = [s for s in sections if s.seeds]
    cpu = f"a {os.cpu_count()}-core CPU"
    jobs = {s.jobs for s in ran}
    at_once = f"{jobs.pop()} at a time on {cpu}" if len(jobs) == 1 and None not in jobs else cpu
    run_minutes = sum(s.minutes for s in ran)
    took = f" The last regeneration took {minutes} minutes on {cpu}." if minutes else ""
    took += (
        f" The runs on this page took {minutes_text(run_minutes)} of wall time in all "
        f"({at_once}; each section's Setting line has its share)."
    )
    counts = sorted({s.seeds for s in ran})
    n = counts[0] if len(counts) == 1 else 3
    seeds = f"With {n} seeds" if len(counts) == 1 else "With 3 seeds (the sections list theirs)"
    return [
        "# Studies: each article's own claim, measured by regx",
        "",
        "Generated by `bash scripts/studies.sh` (every sweep below, then "
        f"`scripts/studies_page.py`); do not edit by hand.{took}",
        "",
        "Every number comes from the runs' `summary.json` and `metrics.csv`. Every comparison "
        "sentence is derived from the table above it: a difference is reported only when it "
        "exceeds twice its standard error over seeds, |Δ| > 2·√(s₁²/n₁ + s₂²/n₂); otherwise the "
        "two are *within seed noise*. Each claim ends in one verdict per scale: **holds** (the "
        "comparisons it rests on go the claimed way beyond seed noise), **does not hold** (they "
        "go the other way beyond seed noise) or **not resolved at this scale** (within seed "
        f"noise, or mixed). {seeds} a difference that is not there passes the rule in one "
        f"given direction about {100 * chance_rate(n):.1f} % of the time, so a verdict resting "
        "on one of many comparisons says how many it rests on and how many chance alone would give.",
        "",
        "Limits: this is CPU scale. The small CNN of `conf/model/cnn.yaml` trains for tens of "
        "epochs on the 1,437 digits of scikit-learn (8×8 pixels) or on a stratified subset of "
        "a few thousand CIFAR-10 training images; the articles train ResNets for hundreds of "
        "epochs on 50,000. An effect that needs capacity, data or long training can be absent "
        f"here, and {n} seeds resolve only differences of a few standard deviations. Each "
        "section's *Setting* line gives its sizes and epochs as the runs record them.",
        "",
    ]


def summary_table(verdicts: dict[tuple[str, str], Verdict | None]) -> list[str]:
    lines = ["| claim | " + " | ".join(SCALES.values()) + " |", "|---|" + "---|" * len(SCALES)]
    for study in STUDIES:
        cells = [(v.word if (v := verdicts.get((study.key, s))) else "not run") for s in SCALES]
        lines.append(f"| {study.number}. {study.title} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def clear_generated(docs: Path) -> None:
    """Remove the folders an earlier page generated under docs/studies/ (each holds a
    `regx report` report.md), so that no table of a study or scale not run now survives."""
    root = docs / "studies"
    if root.is_dir():
        for folder in root.iterdir():
            if folder.is_dir() and (folder / "report.md").is_file():
                shutil.rmtree(folder)


def page(runs_root: Path, docs: Path, started: float | None = None) -> str:
    """The page; `started` (Unix time) makes it state the minutes from then until it is done."""
    clear_generated(docs)
    verdicts: dict[tuple[str, str], Verdict | None] = {}
    body: list[str] = []
    sections: list[Section] = []
    for study in STUDIES:
        body += [f"## {study.number}. {study.title}", "", f"Claim: {study.claim}", ""]
        body += [f"Rule: the claim {study.rule}.", ""]
        for scale in SCALES:
            section = scale_section(study, scale, runs_root, docs)
            verdicts[(study.key, scale)] = section.verdict
            body += section.lines
            sections.append(section)
    minutes = None if started is None else math.ceil((time.time() - started) / 60)
    head = intro(minutes, sections)
    return "\n".join([*head, "## Verdicts", "", *summary_table(verdicts), *body, *GPU_SECTION])
