"""Study 2: γ-CE against dirty labels.

The claim (γ-CE): cross-entropy gives a low-probability sample a huge loss, and so huge
weight, "even when it is dirty data"; γ-CE, −log(γ + (1−γ)p_y)/(1−γ), bounds that weight,
so under label noise it should fit the flipped labels less and test better. Measured under
clean labels, 20 % and 40 % symmetric and 40 % asymmetric noise (training pool and
validation noisy, test clean): test accuracy of the validation-picked checkpoint, of the
last epoch and of the best epoch (track_test), and `memorized`, the share of flipped
training images predicted as their noisy label.

Verdict: holds when some γ-CE arm (γ = 0.3, 0.5, 0.7 or the 0→0.7 schedule) beats
cross-entropy's validation-picked test accuracy beyond seed noise under some noisy
condition; does not hold when every γ-CE arm is below it beyond seed noise under every
noisy condition; otherwise not resolved.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from studies.figures import CurvePanel, curve_panels
from studies.rules import (
    Metric,
    Outcome,
    Verdict,
    above_zero,
    any_of,
    compare,
    grouped,
    outcome,
    tally,
)
from studies.runs import epoch_means
from studies.study import Arm, Condition, Study, Table, Tables

ACC = Metric("test.acc", "test acc (picked)")
FINAL = Metric("final_test_acc", "test acc (last epoch)")
PEAK = Metric("track_test.best_test_acc", "test acc (best epoch)")
MEMO = Metric("final_memorized", "memorized (last epoch)", lower_is_better=True)
MEMO_PICKED = Metric("noise.memorized", "memorized (picked)")
DROP = Metric("peak_drop", "fall from the best epoch", unit=" pt", lower_is_better=True)

ARMS = (
    Arm("noise/ce", "cross-entropy"),
    Arm("noise/gamma_ce_03", "γ-CE γ=0.3"),
    Arm("noise/gamma_ce_05", "γ-CE γ=0.5"),
    Arm("noise/gamma_ce_07", "γ-CE γ=0.7"),
    Arm("noise/gamma_ce_0to07", "γ-CE γ: 0→0.7"),
    Arm("noise/label_smoothing", "label smoothing ε=0.1"),
    Arm("noise/focal", "focal γ=2"),
    Arm("noise/mixup", "mixup λ~U(0,1)"),
)
GAMMAS = {"noise/gamma_ce_03": "0.3", "noise/gamma_ce_05": "0.5", "noise/gamma_ce_07": "0.7"}
GAMMA_ARMS = (*GAMMAS, "noise/gamma_ce_0to07")
CONDITIONS = (
    Condition("noise/clean", "clean labels", "no label noise (the reference)"),
    Condition(
        "noise/sym20", "20 % symmetric", "20 % of the training pool flipped to another class"
    ),
    Condition(
        "noise/sym40", "40 % symmetric", "40 % of the training pool flipped to another class"
    ),
    Condition(
        "noise/asym40",
        "40 % asymmetric",
        "40 % of each mapped class flipped to its look-alike (digits: 2→7, 3→8, 5↔6, 7→1; "
        "CIFAR-10: truck→automobile, bird→airplane, deer→horse, cat↔dog)",
    ),
)
NOISY = tuple(c.option for c in CONDITIONS[1:])


def _memorization(cond: Condition, b: dict, name: str) -> str:
    drop = b[DROP.key]
    if drop.n == 0:
        return f"{name}: per-epoch test accuracy not logged."
    shape = (
        "falls beyond seed noise from its best epoch"
        if above_zero(drop)
        else "does not fall from its best epoch beyond seed noise"
    )
    memo = (
        f", with {b[MEMO.key].fmt(MEMO)} of the flipped labels memorized" if b[MEMO.key].n else ""
    )
    regime = ""
    if cond.option in NOISY:
        regime = (
            " This is the memorization regime the claim is about."
            if above_zero(drop)
            else " So this setting does not show the memorization regime the claim is about:"
            " what follows compares the losses before cross-entropy overfits the flipped labels."
        )
    return (
        f"{name}'s test accuracy peaks at {b[PEAK.key].fmt(PEAK)} and ends at "
        f"{b[FINAL.key].fmt(FINAL)} ({drop.fmt(DROP)} below the peak): it {shape}{memo}.{regime}"
    )


def _gamma_line(table: Table, base: str) -> str:
    b = table[base][ACC.key]
    points = [f"0 (cross-entropy) {b.fmt(ACC)}"]
    points += [f"{g} {table[opt][ACC.key].fmt(ACC)}" for opt, g in GAMMAS.items()]
    points.append(f"0→0.7 {table['noise/gamma_ce_0to07'][ACC.key].fmt(ACC)}")
    above = [
        g for opt, g in GAMMAS.items() if outcome(ACC, b, table[opt][ACC.key]) is Outcome.CONFIRMED
    ]
    below = [
        g
        for opt, g in GAMMAS.items()
        if outcome(ACC, b, table[opt][ACC.key]) is Outcome.CONTRADICTED
    ]
    return (
        "Picked-checkpoint test accuracy by γ: " + ", ".join(points) + ". Above cross-entropy "
        f"beyond seed noise at γ = {', '.join(above) or 'none'}; below it at γ = "
        f"{', '.join(below) or 'none'}."
    )


def findings(cond: Condition, table: Table, arms: tuple[Arm, ...]) -> list[str]:
    base = arms[0]
    b = table[base.option]
    if b[ACC.key].n == 0:
        return [f"{base.name} not run under {cond.name}: no comparison."]
    out = [_memorization(cond, b, base.name)]
    for arm in arms[1:]:
        s = table[arm.option]
        if s[ACC.key].n == 0:  # not run: the table and the "not run" line say so
            continue
        clauses = [compare(arm.name, ACC, base.name, b[ACC.key], s[ACC.key])]
        clauses.append(compare("it", FINAL, base.name, b[FINAL.key], s[FINAL.key]))
        if s[MEMO.key].n:
            clauses.append(compare("it", MEMO, base.name, b[MEMO.key], s[MEMO.key]))
        out.append("; ".join(clauses) + ".")
    out.append(_gamma_line(table, base.option))
    return out


def verdict(tables: Tables, arms: tuple[Arm, ...], seeds: int) -> Verdict:
    base = arms[0].option
    names = {a.option: a.name for a in arms}
    cond_names = {c.option: c.name for c in CONDITIONS}
    results: list[tuple[str, str, Outcome]] = []
    for cond in NOISY:
        table = tables.get(cond)
        if table is None or table[base][ACC.key].n == 0:
            continue
        for opt in GAMMA_ARMS:
            if table[opt][ACC.key].n:  # arms cut at this scale are no comparison
                results.append((cond, opt, outcome(ACC, table[base][ACC.key], table[opt][ACC.key])))
    claim = any_of([o for *_, o in results])
    if not results:
        return Verdict(Outcome.UNRESOLVED, "No noisy condition was run with cross-entropy.")

    def where(kind: Outcome) -> str:
        return grouped([(cond_names[c], names[opt]) for c, opt, o in results if o is kind])

    return Verdict(
        claim,
        f"Test accuracy above cross-entropy's beyond seed noise: {where(Outcome.CONFIRMED)}. "
        f"Below it: {where(Outcome.CONTRADICTED)}. {tally([o for *_, o in results], seeds)}",
    )


CURVE_ARMS = (
    "noise/ce",
    "noise/gamma_ce_03",
    "noise/gamma_ce_05",
    "noise/gamma_ce_07",
    "noise/mixup",
)


def figure(path: Path, tables: Tables, runs: Any) -> bool:
    """Test accuracy and memorization per epoch under the strongest symmetric noise run."""
    cond = next((c for c in ("noise/sym40", "noise/sym20") if runs.runs(c, "noise/ce")), None)
    if cond is None:
        return False
    names = {a.option: a.name for a in ARMS}
    title = {c.option: c.name for c in CONDITIONS}[cond]

    def lines(column: str) -> tuple[tuple[str, list[int], list[float]], ...]:
        return tuple(
            (names[opt], *epoch_means(runs.runs(cond, opt), column))
            for opt in CURVE_ARMS
            if runs.runs(cond, opt)
        )

    return curve_panels(
        path,
        [
            CurvePanel(f"test accuracy per epoch, {title}", "test acc (%)", lines("test_acc")),
            CurvePanel(
                f"flipped labels memorized, {title}", "memorized (%)", lines("noise_memorized")
            ),
        ],
    )


STUDY = Study(
    key="noise",
    number=2,
    title="γ-CE against dirty labels",
    claim="γ-CE resists what cross-entropy over-weights, low-probability and possibly "
    "mislabeled samples: under label noise it memorizes fewer flipped labels and tests better.",
    rule="holds if some γ-CE arm (γ = 0.3, 0.5, 0.7 or 0→0.7) beats cross-entropy's "
    "test accuracy (validation-picked checkpoint) beyond seed noise under some noisy condition",
    arms=ARMS,
    conditions=CONDITIONS,
    metrics=(ACC, FINAL, PEAK, MEMO, MEMO_PICKED),
    findings=findings,
    verdict=verdict,
    extra_keys=(DROP.key,),
    figure=figure,
)
