"""Study 4: adversarial validation under a shift inside the training support.

The claim (adversarial validation): when the test inputs are a different mix of what the
training data holds, a discriminator D(x) (train vs test inputs, never test labels) finds
the training images that look like the test set, and a validation set built from them
(resample ∝ w = D/(1−D), the top-k most test-like, or weighted) estimates the test
accuracy better than a random one. Measured under `test_shift=subpop` (natural test images
re-drawn ∝ exp(t·z), z a brightness or a class-subgroup score, t = 1, 2) and `prior`
(class frequencies skewed); a corruption (outside the support: no training image looks
like a corrupted one) is the negative control. Per run: |val acc − test acc| and the
half-width of its bootstrap 95 % interval, test accuracy of the picked checkpoint, the
best test epoch − the picked one and the accuracy it leaves (track_test), D's out-of-fold AUC.

Verdict: holds when some adversarial arm (mode × discriminator) has a smaller |val − test|
than the random split beyond seed noise under some within-support shift; does not hold
when every adversarial arm has a larger one under every within-support shift; otherwise
not resolved. The negative control is reported, not counted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from studies.figures import BarPanel, bar_panels
from studies.rules import (
    Metric,
    Outcome,
    Stat,
    Verdict,
    any_of,
    compare,
    grouped,
    outcome,
    stat_of,
    tally,
)
from studies.study import Arm, Condition, Study, Table, Tables

GAP = Metric("abs_gap", "|val acc − test acc|", unit=" pt", lower_is_better=True)
GAP_CI = Metric("gap_ci", "its 95 % CI ±", unit=" pt", lower_is_better=True)
ACC = Metric("test.acc", "test acc")
EPOCHS = Metric("track_test.epoch_gap", "best test epoch − picked", scale=1.0, unit="", decimals=1)
REGRET = Metric("regret", "test acc left (best epoch − picked)", unit=" pt", lower_is_better=True)
AUC = Metric("split.auc", "D(x) AUC", scale=1.0, unit="")
SHIFT_Z = "shift.z_test_after"

ARMS = (
    Arm("shift/random", "random split"),
    Arm("shift/resample_logreg", "resample, pixel logreg"),
    Arm("shift/topk_logreg", "top-k, pixel logreg"),
    Arm("shift/weight_logreg", "weighted, pixel logreg"),
    Arm("shift/resample_features", "resample, random features"),
    Arm("shift/topk_features", "top-k, random features"),
    Arm("shift/weight_features", "weighted, random features"),
)
DISCRIMINATORS = {"logreg": "the pixel logreg", "features": "the random-features logreg"}
CONTROL = "shift/corrupt"
BRIGHTNESS = "test images re-drawn ∝ exp({t}·z), z = the standardized mean brightness"
SUBGROUP = "within each class, one of two 2-means clusters over-represented, ∝ exp({t}·z), z = ±1"
CONDITIONS = (
    Condition("shift/brightness_t1", "subpop, brightness, tilt 1", BRIGHTNESS.format(t=1)),
    Condition("shift/brightness_t2", "subpop, brightness, tilt 2", BRIGHTNESS.format(t=2)),
    Condition("shift/subgroup_t1", "subpop, class subgroup, tilt 1", SUBGROUP.format(t=1)),
    Condition("shift/subgroup_t2", "subpop, class subgroup, tilt 2", SUBGROUP.format(t=2)),
    Condition(
        "shift/prior",
        "class prior",
        "class frequencies skewed, the rarest test class 5× less frequent than the commonest",
    ),
    Condition(
        CONTROL,
        "corruption (negative control)",
        "every test image corrupted: outside the training support",
    ),
)
WITHIN = tuple(c.option for c in CONDITIONS if c.option != CONTROL)


def _auc_line(table: Table, arms: tuple[Arm, ...]) -> str:
    parts = []
    for disc, text in DISCRIMINATORS.items():
        stats = [table[a.option][AUC.key] for a in arms if a.option.endswith(disc)]
        stats = [s for s in stats if s.n]
        if not stats:
            continue
        auc = stat_of(s.mean for s in stats)  # the arms share D: its mean over them
        if auc.mean > 0.95:
            meaning = "almost perfectly: the test images lie where no training image is"
        elif auc.mean < 0.6:
            meaning = "barely, so its validation sets differ little from random ones"
        else:
            meaning = "partly"
        parts.append(f"{text} tells training from test images apart {meaning} (AUC {auc.mean:.3f})")
    return ("The discriminator: " + "; ".join(parts) + ".") if parts else ""


def _shift_line(table: Table, base: str) -> str:
    z = table[base].get(SHIFT_Z)
    if z is None or z.n == 0:
        return ""
    return (
        f"The realized shift: the test set's mean score is {z.mean:+.2f} training standard "
        "deviations from the training mean."
    )


def findings(cond: Condition, table: Table, arms: tuple[Arm, ...]) -> list[str]:
    base = arms[0]
    b = table[base.option]
    if b[GAP.key].n == 0:
        return [f"{base.name} not run under {cond.name}: no comparison."]
    out = [line for line in (_shift_line(table, base.option), _auc_line(table, arms)) if line]
    if cond.option == CONTROL:
        out.append(
            "A negative control: outside the support no training image looks like a test "
            "image, so this condition does not count toward the verdict."
        )
    for arm in arms[1:]:
        s = table[arm.option]
        if s[GAP.key].n == 0:  # not run: the table and the "not run" line say so
            continue
        out.append(
            f"{compare(arm.name, GAP, base.name, b[GAP.key], s[GAP.key])}; "
            f"{compare('it', ACC, base.name, b[ACC.key], s[ACC.key])}; the picked checkpoint "
            f"leaves {s[REGRET.key].fmt(REGRET)} to the best test epoch ({b[REGRET.key].fmt(REGRET)} "
            f"with {base.name})."
        )
    ran = [a for a in arms if table[a.option][GAP.key].n]
    closest = min(ran, key=lambda a: table[a.option][GAP.key].mean)
    tracks = [
        a.name
        for a in ran[1:]
        if outcome(GAP, b[GAP.key], table[a.option][GAP.key]) is Outcome.CONFIRMED
    ]
    out.append(
        f"The smallest mean |val − test| is {closest.name}'s; below the random split's beyond "
        f"seed noise: {', '.join(tracks) or 'no adversarial arm'}."
    )
    return out


def verdict(tables: Tables, arms: tuple[Arm, ...], seeds: int) -> Verdict:
    base = arms[0].option
    names = {a.option: a.name for a in arms}
    cond_names = {c.option: c.name for c in CONDITIONS}
    results: list[tuple[str, str, Outcome]] = []
    for cond in WITHIN:
        table = tables.get(cond)
        if table is None or table[base][GAP.key].n == 0:
            continue
        b: Stat = table[base][GAP.key]
        for arm in arms[1:]:
            if table[arm.option][GAP.key].n:
                results.append((cond, arm.option, outcome(GAP, b, table[arm.option][GAP.key])))
    if not results:
        return Verdict(Outcome.UNRESOLVED, "No within-support shift was run.")

    def where(kind: Outcome) -> str:
        return grouped([(cond_names[c], names[a]) for c, a, o in results if o is kind])

    return Verdict(
        any_of([o for *_, o in results]),
        f"|val − test| below the random split's beyond seed noise: {where(Outcome.CONFIRMED)}. "
        f"Above it: {where(Outcome.CONTRADICTED)}. {tally([o for *_, o in results], seeds)}",
    )


def figure(path: Path, tables: Tables, runs: Any) -> bool:
    labels = tuple(a.name for a in ARMS)
    panels = [
        BarPanel(c.name, GAP, labels, tuple(tables[c.option][a.option][GAP.key] for a in ARMS))
        for c in CONDITIONS
        if c.option in tables
    ]
    return bar_panels(path, panels, columns=3)


STUDY = Study(
    key="shift",
    number=4,
    title="Adversarial validation under a shift inside the training support",
    claim="When the test inputs are a different mix inside the training support, adversarial "
    "validation gives a validation set like the test set: its accuracy tracks the test "
    "accuracy better than a random split's.",
    rule="holds if some adversarial arm's |val acc − test acc| is below the random split's "
    "beyond seed noise under some within-support shift (subpop or prior)",
    arms=ARMS,
    conditions=CONDITIONS,
    metrics=(GAP, GAP_CI, ACC, EPOCHS, REGRET, AUC),
    findings=findings,
    verdict=verdict,
    extra_keys=(SHIFT_Z,),
    figure=figure,
)
