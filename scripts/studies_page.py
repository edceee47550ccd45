"""Write docs/studies.md from the run directories that scripts/studies.sh produced.

Every number on the page is read from the runs' summary.json / metrics.csv here, and every
sentence that compares two methods is derived from those numbers by the rules below, so
the page cannot drift from its tables. For each study and scale it also runs `regx report`
(report.md, runs.csv, compare.png) into docs/studies/<scale>-<study>/.

A difference is called a difference when it exceeds twice its standard error,
|Δ| > 2·sqrt(s_a²/n_a + s_b²/n_b) (mean ± sample std over the seeds); otherwise the page
says the two are within seed noise.

    python scripts/studies_page.py --runs outputs/studies --page docs/studies.md
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from regx.engine.outputs import read_metrics_csv
from regx.report.grouping import Group
from regx.report.runs import RunRecord, find_run_dirs, read_run
from regx.report.sweep import sweep_report
from regx.report.sweep_plot import plot_compare

SCALES = {
    "digits": "digits (scikit-learn's 8×8 digits: 1,150 train / 287 validation / 359 test images; "
    "small CNN, 30 epochs; `experiment=study_digits`)",
    "cifar": "CIFAR-10 subset (3,000 training images, 300 per class, 10 % of them for validation; "
    "the full 10,000-image test set; the small CNN, 10 epochs; `experiment=study_cifar`)",
}


@dataclass(frozen=True)
class Metric:
    key: str  # summary key, or a derived one (see `value`)
    title: str
    scale: float = 100.0
    unit: str = "%"
    lower_is_better: bool = False


ACC = Metric("test.acc", "test acc")
ECE = Metric("test.ece", "ECE", lower_is_better=True)
ECE_TS = Metric("test_ts.ece", "ECE after TS", lower_is_better=True)
OVERCONF = Metric("test.overconfidence", "confidence − acc", unit=" pt")
NLL = Metric("test.nll", "NLL", scale=1.0, unit="", lower_is_better=True)
RECALL = Metric("retrieval.recall_at_1", "recall@1")
MAP_R = Metric("retrieval.map_at_r", "MAP@R")
GAP = Metric("abs_gap", "|val acc − test acc|", unit=" pt", lower_is_better=True)
REGRET = Metric("regret", "best test epoch − picked", unit=" pt", lower_is_better=True)
PICKED = Metric("picked_within", "picked within 0.5 pt", scale=100.0)
AUC = Metric("split.auc", "D(x) AUC", scale=1.0, unit="")


@dataclass(frozen=True)
class Arm:
    folder: str  # under <runs>/<scale>/
    name: str


@dataclass(frozen=True)
class Study:
    key: str
    title: str
    question: str
    arms: tuple[Arm, ...]
    metrics: tuple[Metric, ...]
    findings: Callable[[dict[str, dict[str, Stat]], tuple[Arm, ...]], list[str]]


@dataclass
class Stat:
    mean: float
    std: float
    n: int

    def fmt(self, m: Metric) -> str:
        if self.n == 0 or math.isnan(self.mean):
            return "—"
        digits = 3 if m.scale == 1.0 else 2
        mean = f"{self.mean * m.scale:.{digits}f}"
        std = "" if math.isnan(self.std) else f" ± {self.std * m.scale:.{digits}f}"
        return f"{mean}{std}{m.unit}"


def value(run: RunRecord, key: str) -> float | None:
    """A summary value, or one derived from the run's files."""
    if key == "abs_gap":
        val, test = run.value("val.acc"), run.value("test.acc")
        return None if val is None or test is None else abs(val - test)
    if key in ("regret", "picked_within"):
        rows = read_metrics_csv(run.path / "metrics.csv")
        tests = [r["test_acc"] for r in rows if isinstance(r.get("test_acc"), (int, float))]
        picked = run.value("test.acc")
        if not tests or picked is None:
            return None
        regret = max(tests) - picked
        return regret if key == "regret" else float(regret <= 0.005)
    v = run.value(key)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def stat(runs: list[RunRecord], key: str) -> Stat:
    v = np.array([x for r in runs if r.finished and (x := value(r, key)) is not None], float)
    if len(v) == 0:
        return Stat(math.nan, math.nan, 0)
    return Stat(float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else math.nan, len(v))


def differs(a: Stat, b: Stat) -> bool:
    """|Δ| beyond twice its standard error (seed noise)."""
    if a.n < 2 or b.n < 2:
        return False
    se = math.sqrt(a.std**2 / a.n + b.std**2 / b.n)
    return abs(a.mean - b.mean) > 2 * se


def compare(name: str, m: Metric, base_name: str, base: Stat, arm: Stat) -> str:
    """One clause comparing an arm with the baseline on metric m."""
    if not differs(base, arm):
        return f"{name} leaves {m.title} within seed noise of {base_name} ({arm.fmt(m)} vs {base.fmt(m)})"
    verb = "raises" if arm.mean > base.mean else "lowers"
    return f"{name} {verb} {m.title} from {base.fmt(m)} ({base_name}) to {arm.fmt(m)}"


def better(m: Metric, base: Stat, arm: Stat) -> bool:
    return differs(base, arm) and ((arm.mean < base.mean) == m.lower_is_better)


# -- the findings of each study, derived from its table ------------------------------------
def aug_findings(stats: dict[str, dict[str, Stat]], arms: tuple[Arm, ...]) -> list[str]:
    base = arms[0]
    out = []
    for arm in arms[1:]:
        s, b = stats[arm.name], stats[base.name]
        oc = s[OVERCONF.key]
        side = "under-confident" if oc.mean < 0 else "over-confident"
        out.append(
            f"{compare(arm.name, ACC, base.name, b[ACC.key], s[ACC.key])}; "
            f"{compare('it', ECE, base.name, b[ECE.key], s[ECE.key])}; the model ends "
            f"{side} (confidence − accuracy {oc.fmt(OVERCONF)}), and temperature scaling "
            f"brings ECE to {s[ECE_TS.key].fmt(ECE_TS)}."
        )
    mixing = [a for a in arms[1:] if better(ECE, stats[base.name][ECE.key], stats[a.name][ECE.key])]
    out.append(
        "The claim that mixing improves calibration holds here for "
        + (", ".join(a.name for a in mixing) if mixing else "none of the mixing methods")
        + " (test ECE before temperature scaling, lower than without mixing beyond seed noise)."
    )
    return out


def loss_findings(stats: dict[str, dict[str, Stat]], arms: tuple[Arm, ...]) -> list[str]:
    base = arms[0]
    b = stats[base.name]
    out = []
    for arm in arms[1:]:
        s = stats[arm.name]
        out.append(
            f"{compare(arm.name, OVERCONF, base.name, b[OVERCONF.key], s[OVERCONF.key])}; "
            f"{compare('it', ECE, base.name, b[ECE.key], s[ECE.key])}; "
            f"{compare('it', ACC, base.name, b[ACC.key], s[ACC.key])}."
        )
    gammas = [a for a in arms[1:] if a.name.startswith("γ-CE")]
    curbed = [
        a.name
        for a in gammas
        if better(OVERCONF, b[OVERCONF.key], stats[a.name][OVERCONF.key])
        and b[OVERCONF.key].mean > 0
    ]
    over = b[OVERCONF.key].mean > 0
    if not over:
        out.append(
            f"Cross-entropy is not over-confident here (confidence − accuracy "
            f"{b[OVERCONF.key].fmt(OVERCONF)}), so at this scale there is no over-confidence for "
            "γ-CE to curb; the article's claim is not tested by this setting."
        )
    elif curbed:
        out.append(
            f"Cross-entropy is over-confident here (confidence − accuracy "
            f"{b[OVERCONF.key].fmt(OVERCONF)}); the claim that γ-CE curbs it holds for "
            + ", ".join(curbed)
            + "."
        )
    else:
        out.append(
            f"Cross-entropy is over-confident here (confidence − accuracy "
            f"{b[OVERCONF.key].fmt(OVERCONF)}), and the claim that γ-CE curbs it does not hold "
            "for any γ tried: no γ-CE variant lowers confidence − accuracy beyond seed noise."
        )
    return out


def am_findings(stats: dict[str, dict[str, Stat]], arms: tuple[Arm, ...]) -> list[str]:
    base = arms[0]
    b = stats[base.name]
    out = []
    for arm in arms[1:]:
        s = stats[arm.name]
        out.append(
            f"{compare(arm.name, RECALL, base.name, b[RECALL.key], s[RECALL.key])}; "
            f"{compare('it', MAP_R, base.name, b[MAP_R.key], s[MAP_R.key])}; "
            f"{compare('it', ACC, base.name, b[ACC.key], s[ACC.key])}."
        )
    wins = [a.name for a in arms[1:] if better(MAP_R, b[MAP_R.key], stats[a.name][MAP_R.key])]
    out.append(
        "The claim that the cosine margin makes features rank better holds here for "
        + (", ".join(wins) if wins else "neither AM-Softmax variant")
        + " (MAP@R above cross-entropy's beyond seed noise)."
    )
    return out


def split_findings(stats: dict[str, dict[str, Stat]], arms: tuple[Arm, ...]) -> list[str]:
    base = arms[0]
    b = stats[base.name]
    out = []
    for arm in arms[1:]:
        s = stats[arm.name]
        out.append(
            f"{compare(arm.name, GAP, base.name, b[GAP.key], s[GAP.key])}; the checkpoint it "
            f"picks scores {s[ACC.key].fmt(ACC)} on the test set ({b[ACC.key].fmt(ACC)} with "
            f"{base.name}), {s[REGRET.key].fmt(REGRET)} below the best test epoch."
        )
    auc = stats[arms[1].name][AUC.key]
    if auc.n and auc.mean > 0.95:
        out.append(
            f"The discriminator tells training from test images almost perfectly (AUC "
            f"{auc.fmt(AUC)}): the shifted test images lie outside the training distribution, so "
            "no subset of the (unshifted) training images can look like them."
        )
    elif auc.n and auc.mean < 0.6:
        out.append(
            f"The discriminator barely tells training from test images apart (AUC "
            f"{auc.fmt(AUC)}), so the adversarial validation sets differ little from random ones."
        )
    closest = min(arms, key=lambda a: stats[a.name][GAP.key].mean)
    tracks = [a.name for a in arms[1:] if better(GAP, b[GAP.key], stats[a.name][GAP.key])]
    out.append(
        f"The smallest mean |val − test| gap is {closest.name}'s. The claim that adversarial "
        "validation tracks the test set better than a random split holds here for "
        + (", ".join(tracks) if tracks else "no adversarial mode")
        + " (gap below the random split's beyond seed noise)."
    )
    return out


STUDIES = (
    Study(
        "aug",
        "1. Mixing augmentations: mixup and SamplePairing vs none",
        "Do mixing augmentations change accuracy and calibration?",
        (
            Arm("base", "no mixing"),
            Arm("aug/samplepairing", "SamplePairing"),
            Arm("aug/mixup_uniform", "mixup λ~U(0,1)"),
            Arm("aug/mixup_beta0.2", "mixup λ~Beta(0.2,0.2)"),
        ),
        (ACC, ECE, ECE_TS, OVERCONF, NLL),
        aug_findings,
    ),
    Study(
        "loss",
        "2. γ-CE vs cross-entropy: over-confidence",
        "Does γ-CE curb cross-entropy's over-confidence at equal accuracy?",
        (
            Arm("base", "cross-entropy"),
            Arm("loss/gamma_ce_0.1", "γ-CE γ=0.1"),
            Arm("loss/gamma_ce_0.5", "γ-CE γ=0.5"),
            Arm("loss/gamma_ce_0to0.8", "γ-CE γ: 0→0.8"),
            Arm("loss/label_smoothing", "label smoothing ε=0.1"),
        ),
        (ACC, ECE, OVERCONF, ECE_TS, NLL),
        loss_findings,
    ),
    Study(
        "am",
        "3. AM-Softmax vs cross-entropy: retrieval with the features",
        "Do AM-Softmax features rank same-class images closer (leave-one-out, cosine)?",
        (
            Arm("base", "cross-entropy"),
            Arm("am/am_softmax_0.35", "AM-Softmax m=0.35"),
            Arm("am/am_softmax_auto", "AM-Softmax m=auto"),
        ),
        (RECALL, MAP_R, ACC, ECE),
        am_findings,
    ),
)
SPLIT_ARMS = (
    ("random", "random split"),
    ("adv_resample", "adversarial, resample"),
    ("adv_topk", "adversarial, top-k"),
    ("adv_weight", "adversarial, weighted"),
)
SPLIT_METRICS = (GAP, ACC, REGRET, PICKED, AUC)
SHIFTS = {
    "corrupt": "a corrupted test set (`dataset.test_shift=corrupt`: blur at severity 2 on digits, "
    "brightness at severity 3 on CIFAR-10)",
    "prior": "a class-prior shift (`dataset.test_shift=prior shift.strength=0.8`: the rarest "
    "test class is 5× less frequent than the commonest)",
}


def split_studies() -> list[Study]:
    return [
        Study(
            f"split_{shift}",
            f"4{'ab'[i]}. Adversarial vs random validation under {shift} shift",
            f"Under {text}, does a validation set that looks like the test set track test "
            "accuracy better, and pick a better checkpoint?",
            tuple(Arm(f"split_{shift}/{folder}", name) for folder, name in SPLIT_ARMS),
            SPLIT_METRICS,
            split_findings,
        )
        for i, (shift, text) in enumerate(SHIFTS.items())
    ]


def command(scale: str, arm_runs: list[RunRecord]) -> str:
    overrides = [o for o in arm_runs[0].overrides if not o.startswith(("seed=", "experiment="))]
    seeds = ",".join(str(s) for s in sorted({r.seed for r in arm_runs}))
    return f"regx train -m experiment=study_{scale} seed={seeds} " + " ".join(overrides)


def study_section(study: Study, scale: str, runs_root: Path, docs: Path) -> list[str]:
    arm_runs = {
        arm.name: [read_run(d) for d in find_run_dirs([runs_root / scale / arm.folder])]
        if (runs_root / scale / arm.folder).is_dir()
        else []
        for arm in study.arms
    }
    if not all(arm_runs.values()):
        missing = [a.folder for a in study.arms if not arm_runs[a.name]]
        return [f"*Not run: no runs in {', '.join(missing)}.*", ""]
    keys = {m.key for m in (*study.metrics, ACC, ECE, ECE_TS, OVERCONF, GAP, REGRET)}
    stats = {name: {k: stat(runs, k) for k in keys} for name, runs in arm_runs.items()}
    out_dir = docs / "studies" / f"{scale}-{study.key}"
    # the `regx report` view of the same runs (its own table, runs.csv); the plot is drawn
    # below with the arms' names as labels
    sweep_report(
        [runs_root / scale / arm.folder for arm in study.arms], out=out_dir, plot=False, echo=False
    )
    groups = [Group(i, {"": arm.name}, arm_runs[arm.name]) for i, arm in enumerate(study.arms)]
    plot_compare(out_dir / "compare.png", groups)
    n = min(len([r for r in runs if r.finished]) for runs in arm_runs.values())
    lines = [
        f"| method | {' | '.join(m.title for m in study.metrics)} |",
        "|---|" + "---:|" * len(study.metrics),
    ]
    for arm in study.arms:
        cells = [stats[arm.name][m.key].fmt(m) for m in study.metrics]
        lines.append(f"| {arm.name} | {' | '.join(cells)} |")
    lines += [
        "",
        f"Mean ± sample std over {n} seeds. Commands (each also run with `hydra/launcher=joblib`):",
        "",
        "```",
        *(command(scale, arm_runs[arm.name]) for arm in study.arms),
        "```",
        "",
        f"![accuracy vs ECE]({out_dir.relative_to(docs)}/compare.png)  "
        f"[`regx report` table and runs.csv]({out_dir.relative_to(docs)}/report.md)",
        "",
        *(f"- {s}" for s in study.findings(stats, study.arms)),
        "",
    ]
    return lines


def page(runs_root: Path, docs: Path, minutes: int | None) -> str:
    lines = [
        "# Studies: the four ideas, measured by regx",
        "",
        "Generated by `bash scripts/studies.sh` (which runs every sweep below and then "
        "`scripts/studies_page.py`); do not edit by hand."
        + (f" The last regeneration took {minutes} minutes on a 2-core CPU." if minutes else ""),
        "Every number below comes from the runs' `summary.json` and `metrics.csv`; every "
        "comparison sentence is derived from the table above it: a difference is reported "
        "only when it exceeds twice its standard error over seeds (|Δ| > 2·√(s₁²/n₁ + s₂²/n₂)), "
        "otherwise the two are called within seed noise.",
        "",
        "Columns: test accuracy and calibration of the checkpoint with the best validation "
        "accuracy; ECE with 15 equal-width bins; *ECE after TS* after temperature scaling "
        "fitted on the validation set; *confidence − acc* is mean top-label confidence minus "
        "accuracy (positive: over-confident); recall@1 and MAP@R rank the test set's "
        "embeddings by cosine similarity, leaving the query out; in study 4, "
        "*|val acc − test acc|* is per run, *best test epoch − picked* is how much test "
        "accuracy the validation-picked epoch leaves on the table (test accuracy per epoch "
        "is logged for this analysis only, never used for selection), and *picked within "
        "0.5 pt* is the share of seeds where that is at most 0.5 points.",
        "",
    ]
    for scale, text in SCALES.items():
        if not (runs_root / scale).is_dir():
            continue
        lines += [f"## {scale}", "", f"Setting: {text}.", ""]
        for study in (*STUDIES, *split_studies()):
            lines += [f"### {study.title}", "", study.question, ""]
            lines += study_section(study, scale, runs_root, docs)
    lines += [
        "## GPU settings (not yet run)",
        "",
        "The presets below reproduce the papers' scale and need a GPU; no GPU was available "
        "when this page was generated, so they have no results here yet.",
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
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, default=Path("outputs/studies"))
    parser.add_argument("--page", type=Path, default=Path("docs/studies.md"))
    parser.add_argument("--minutes", type=int, default=None)
    args = parser.parse_args()
    args.page.parent.mkdir(parents=True, exist_ok=True)
    args.page.write_text(page(args.runs, args.page.parent, args.minutes))
    print(f"wrote {args.page}")


if __name__ == "__main__":
    main()
