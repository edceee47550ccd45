"""Study 3: the AM-Softmax margin and retrieval of unseen classes.

The claim (AM-Softmax): training a classifier with an additive cosine margin makes its
features good for retrieval, the case where queries at test time come from classes never
trained on. Measured open-set (Musgrave et al. 2020): the last 5 classes are held out of
training; their test images are queries and gallery at once (leave-one-out, cosine on
`model.features(x)`): `retrieval_open.map_at_r` and `recall_at_1`. The closed-set figures
(the 5 trained classes' test images) and test accuracy on those classes sit alongside.

Verdict: holds when some AM-Softmax arm with a margin (m = 0.2, 0.35 or auto) beats
cross-entropy's open-set MAP@R beyond seed noise; does not hold when all three are below it
beyond seed noise; otherwise not resolved. The cosine head without margin (m = 0) tells the
margin's share from the normalization's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from studies.figures import BarPanel, bar_panels
from studies.rules import Metric, Outcome, Verdict, any_of, compare, outcome, tally
from studies.study import Arm, Condition, Study, Table, Tables

OPEN_MAP = Metric("retrieval_open.map_at_r", "open MAP@R")
OPEN_R1 = Metric("retrieval_open.recall_at_1", "open recall@1")
CLOSED_MAP = Metric("retrieval.map_at_r", "closed MAP@R")
CLOSED_R1 = Metric("retrieval.recall_at_1", "closed recall@1")
ACC = Metric("test.acc", "test acc (5 classes)")

ARMS = (
    Arm("open_set/ce", "cross-entropy"),
    Arm("open_set/am_softmax_02", "AM-Softmax m=0.2"),
    Arm("open_set/am_softmax_035", "AM-Softmax m=0.35"),
    Arm("open_set/am_softmax_auto", "AM-Softmax m=auto"),
    Arm("open_set/am_softmax_0", "cosine head, m=0"),
)
MARGINS = ("open_set/am_softmax_02", "open_set/am_softmax_035", "open_set/am_softmax_auto")
NO_MARGIN = "open_set/am_softmax_0"


def findings(cond: Condition, table: Table, arms: tuple[Arm, ...]) -> list[str]:
    base = arms[0]
    b = table[base.option]
    out = []
    for arm in arms[1:]:
        s = table[arm.option]
        if s[OPEN_MAP.key].n == 0:  # not run: the table and the "not run" line say so
            continue
        clauses = [compare(arm.name, OPEN_MAP, base.name, b[OPEN_MAP.key], s[OPEN_MAP.key])]
        clauses += [
            compare("it", m, base.name, b[m.key], s[m.key]) for m in (OPEN_R1, CLOSED_MAP, ACC)
        ]
        out.append("; ".join(clauses) + ".")
    plain = table[NO_MARGIN]
    if plain[OPEN_MAP.key].n:
        names = {a.option: a.name for a in arms}
        out += [
            "Against the cosine head without margin: "
            + "; ".join(
                compare(names[opt], OPEN_MAP, "m=0", plain[OPEN_MAP.key], table[opt][OPEN_MAP.key])
                for opt in MARGINS
            )
            + "."
        ]
    return out


def verdict(tables: Tables, arms: tuple[Arm, ...], seeds: int) -> Verdict:
    table = tables[None]
    b = table[arms[0].option][OPEN_MAP.key]
    ran = [opt for opt in MARGINS if table[opt][OPEN_MAP.key].n]  # cut arms: no comparison
    parts = [outcome(OPEN_MAP, b, table[opt][OPEN_MAP.key]) for opt in ran]
    names = {a.option: a.name for a in arms}
    detail = ", ".join(f"{names[opt]} {o.value}" for opt, o in zip(ran, parts))
    if b.n == 0:
        return Verdict(Outcome.UNRESOLVED, "Cross-entropy was not run.")
    return Verdict(
        any_of(parts), f"Open-set MAP@R against cross-entropy: {detail}. {tally(parts, seeds)}"
    )


def figure(path: Path, tables: Tables, runs: Any) -> bool:
    table = tables[None]
    labels = tuple(a.name for a in ARMS)
    panels = [
        BarPanel(m.title, m, labels, tuple(table[a.option][m.key] for a in ARMS))
        for m in (OPEN_MAP, CLOSED_MAP)
    ]
    return bar_panels(path, panels)


STUDY = Study(
    key="open_set",
    number=3,
    title="The AM-Softmax margin and retrieval of unseen classes",
    claim="The AM-Softmax margin makes a classifier's features retrieve well, including "
    "images of classes it never saw in training.",
    rule="holds if some AM-Softmax arm with a margin (m = 0.2, 0.35, auto) beats "
    "cross-entropy's open-set MAP@R beyond seed noise",
    arms=ARMS,
    conditions=(Condition(None, "all"),),
    metrics=(OPEN_MAP, OPEN_R1, CLOSED_MAP, CLOSED_R1, ACC),
    findings=findings,
    verdict=verdict,
    figure=figure,
)
