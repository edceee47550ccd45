"""Study 1: mixing as a regularizer toward linear behaviour between samples.

The claim (SamplePairing → mixup): asking f(λa + (1−λ)b) = λf(a) + (1−λ)f(b) during training
pulls the model toward linear behaviour between training samples. Measured on fixed pairs
of test images of different classes at λ = 0.5 (summary.json `between`): the linearity gap
‖softmax f(x̃) − (λ softmax f(a) + (1−λ) softmax f(b))‖₁, the miss rate (x̃ predicted as
neither class) and the gradient norm of the mixed loss at x̃.

Verdict: holds when SamplePairing and mixup (either λ distribution) each lower both the
gap and the miss rate below no mixing's beyond seed noise; does not hold when one of them
raises either beyond seed noise (for mixup: both variants); otherwise not resolved.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from studies.figures import BarPanel, bar_panels
from studies.rules import Metric, Outcome, Verdict, all_of, any_of, compare, outcome, tally
from studies.study import Arm, Condition, Study, Table, Tables

ACC = Metric("test.acc", "test acc")
ECE = Metric("test.ece", "ECE")
GAP = Metric("between.linearity_gap.0.5", "linearity gap", scale=1.0, unit="")
MISS = Metric("between.miss_rate.0.5", "miss rate")
GRAD = Metric("between.grad_norm.0.5", "grad norm", scale=1.0, unit="")
FEAT = Metric("between.feature_gap.0.5", "feature gap", scale=1.0, unit="")

ARMS = (
    Arm("mixing/none", "no mixing"),
    Arm("mixing/mixup_uniform", "mixup λ~U(0,1)"),
    Arm("mixing/mixup_beta02", "mixup λ~Beta(0.2,0.2)"),
    Arm("mixing/samplepairing", "SamplePairing"),
    Arm("mixing/cutmix", "CutMix"),
    Arm("mixing/cutout", "Cutout"),
    Arm("mixing/manifold_mixup", "Manifold Mixup"),
)
MIXUP = ("mixing/mixup_uniform", "mixing/mixup_beta02")
SAMPLEPAIRING = "mixing/samplepairing"


def findings(cond: Condition, table: Table, arms: tuple[Arm, ...]) -> list[str]:
    base = arms[0]
    b = table[base.option]
    out = []
    for arm in arms[1:]:
        s = table[arm.option]
        if s[GAP.key].n == 0:  # not run: the table and the "not run" line say so
            continue
        clauses = [compare(arm.name, GAP, base.name, b[GAP.key], s[GAP.key])]
        clauses += [compare("it", m, base.name, b[m.key], s[m.key]) for m in (MISS, GRAD, ACC, ECE)]
        out.append("; ".join(clauses) + ".")
    return out


def _both(table: Table, base: str, option: str) -> tuple[Outcome, Outcome]:
    b, s = table[base], table[option]
    return outcome(GAP, b[GAP.key], s[GAP.key]), outcome(MISS, b[MISS.key], s[MISS.key])


def verdict(tables: Tables, arms: tuple[Arm, ...], seeds: int) -> Verdict:
    table = tables[None]
    base = arms[0].option
    parts = {opt: _both(table, base, opt) for opt in (*MIXUP, SAMPLEPAIRING)}
    mixup = any_of([all_of(parts[opt]) for opt in MIXUP])
    claim = all_of([mixup, all_of(parts[SAMPLEPAIRING])])
    names = {a.option: a.name for a in arms}
    detail = "; ".join(
        f"{names[opt]}: gap {gap.value}, miss rate {miss.value}"
        for opt, (gap, miss) in parts.items()
    )
    flat = [o for pair in parts.values() for o in pair]
    return Verdict(claim, f"Against no mixing: {detail}. {tally(flat, seeds)}")


def figure(path: Path, tables: Tables, runs: Any) -> bool:
    table = tables[None]
    labels = tuple(a.name for a in ARMS)
    return bar_panels(
        path,
        [
            BarPanel(f"{m.title} at λ = 0.5" if m in (GAP, MISS, GRAD) else m.title, m, labels,
                     tuple(table[a.option][m.key] for a in ARMS))
            for m in (GAP, MISS, GRAD, ACC)
        ],
    )  # fmt: skip


STUDY = Study(
    key="mixing",
    number=1,
    title="Mixing as a regularizer toward linearity between samples",
    claim="SamplePairing and mixup act as a regularizer toward linear behaviour between "
    "samples: at mixes of two test images of different classes, the mixed-trained model's "
    "prediction is closer to the mix of its predictions and rarely a third class.",
    rule="holds if SamplePairing and mixup (either λ distribution) each lower both the "
    "linearity gap and the miss rate at λ = 0.5 below no mixing's beyond seed noise",
    arms=ARMS,
    conditions=(Condition(None, "all"),),
    metrics=(GAP, MISS, GRAD, FEAT, ACC, ECE),
    findings=findings,
    verdict=verdict,
    figure=figure,
)
