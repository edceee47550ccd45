"""The page's rule: when two arms differ, and what a study's verdict is.

Mean ± sample standard deviation over the seeds of each arm. Two arms a and b differ when

    |m_a − m_b| > 2·√(s_a²/n_a + s_b²/n_b)

(the difference exceeds twice its standard error); otherwise they are "within seed noise".
With fewer than two seeds on either side there is no claim.

A comparison of an arm with its baseline on a metric, in the direction a claim predicts,
has one of three outcomes: `confirmed` (a difference in the predicted direction),
`contradicted` (a difference the other way) or `unresolved` (within seed noise, or not
run). A claim combines comparisons with `all_of` (confirmed when every part is,
contradicted when any part is) and `any_of` (confirmed when any part is, contradicted
when every part is); its verdict is **holds**, **does not hold** or **not resolved at
this scale** for confirmed, contradicted and unresolved.

Chance: with n seeds per arm and no true difference, |Δ|/SE follows roughly Student's t
with 2(n − 1) degrees of freedom, so the rule passes a null difference in one given
direction with probability P(T > 2) (5.8 % for n = 3). `chance_rate` gives it, so that a
verdict resting on one of many comparisons can say how many would pass by chance alone,
and how likely its count of confirmations is under no true difference (binomial).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np

from regx.metrics.direction import lower_is_better


@dataclass(frozen=True)
class Metric:
    key: str  # a summary.json key (dots; "between.linearity_gap.0.5"), or a derived one
    title: str
    scale: float = 100.0  # shown as value × scale
    unit: str = "%"
    # None: regx's own table of metric directions (regx.metrics.direction) decides; the
    # keys derived here (abs_gap, regret, …) say it themselves
    lower_is_better: bool | None = None
    decimals: int | None = None  # None: 3 for unscaled values, 2 for percentages and points

    def __post_init__(self) -> None:
        if self.lower_is_better is None:
            object.__setattr__(self, "lower_is_better", lower_is_better(self.key))

    @property
    def digits(self) -> int:
        if self.decimals is not None:
            return self.decimals
        return 3 if self.scale == 1.0 else 2


@dataclass(frozen=True)
class Stat:
    mean: float
    std: float
    n: int

    def fmt(self, m: Metric) -> str:
        if self.n == 0 or math.isnan(self.mean):
            return "—"
        d = m.digits
        mean = f"{round(self.mean * m.scale, d) + 0.0:.{d}f}"  # + 0.0: no "-0.00"
        std = "" if math.isnan(self.std) else f" ± {self.std * m.scale:.{d}f}"
        return f"{mean}{std}{m.unit}"


NOT_RUN = Stat(math.nan, math.nan, 0)
# Differences below this are rounding, not results (equal runs give 0 ± 1e-17).
TINY = 1e-9


def stat_of(values: Iterable[float]) -> Stat:
    """Mean ± sample std (n − 1) of the finite values; `NOT_RUN` when there are none."""
    v = np.array([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    if len(v) == 0:
        return NOT_RUN
    return Stat(float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else math.nan, len(v))


def differs(a: Stat, b: Stat) -> bool:
    """|Δ| beyond twice its standard error (seed noise)."""
    if a.n < 2 or b.n < 2:
        return False
    se = math.sqrt(a.std**2 / a.n + b.std**2 / b.n)
    return abs(a.mean - b.mean) > max(2 * se, TINY)


def above_zero(s: Stat) -> bool:
    """The mean exceeds twice its standard error, s/√n (a one-sample version of the rule)."""
    return s.n >= 2 and s.mean > max(2 * s.std / math.sqrt(s.n), TINY)


def better(m: Metric, base: Stat, arm: Stat) -> bool:
    """The arm beats the baseline on m beyond seed noise."""
    return differs(base, arm) and ((arm.mean < base.mean) == m.lower_is_better)


def worse(m: Metric, base: Stat, arm: Stat) -> bool:
    return differs(base, arm) and not better(m, base, arm)


def compare(name: str, m: Metric, base_name: str, base: Stat, arm: Stat) -> str:
    """One clause comparing an arm with the baseline on metric m."""
    if arm.n == 0 or base.n == 0:
        return f"{name}: {m.title} not measured"
    if arm.n < 2 or base.n < 2:
        return f"{name} gives {m.title} {arm.fmt(m)} against {base.fmt(m)} ({base_name}; one seed: no comparison)"
    if not differs(base, arm):
        return f"{name} leaves {m.title} within seed noise of {base_name} ({arm.fmt(m)} vs {base.fmt(m)})"
    verb = "raises" if arm.mean > base.mean else "lowers"
    return f"{name} {verb} {m.title} from {base.fmt(m)} ({base_name}) to {arm.fmt(m)}"


class Outcome(Enum):
    CONFIRMED = "confirmed"
    CONTRADICTED = "contradicted"
    UNRESOLVED = "unresolved"


VERDICT_WORDS = {
    Outcome.CONFIRMED: "holds",
    Outcome.CONTRADICTED: "does not hold",
    Outcome.UNRESOLVED: "not resolved at this scale",
}


def outcome(m: Metric, base: Stat, arm: Stat) -> Outcome:
    """Does the arm move m the way the claim predicts (m's better direction)?"""
    if better(m, base, arm):
        return Outcome.CONFIRMED
    if worse(m, base, arm):
        return Outcome.CONTRADICTED
    return Outcome.UNRESOLVED


def all_of(parts: Sequence[Outcome]) -> Outcome:
    if parts and all(p is Outcome.CONFIRMED for p in parts):
        return Outcome.CONFIRMED
    if any(p is Outcome.CONTRADICTED for p in parts):
        return Outcome.CONTRADICTED
    return Outcome.UNRESOLVED


def any_of(parts: Sequence[Outcome]) -> Outcome:
    if any(p is Outcome.CONFIRMED for p in parts):
        return Outcome.CONFIRMED
    if parts and all(p is Outcome.CONTRADICTED for p in parts):
        return Outcome.CONTRADICTED
    return Outcome.UNRESOLVED


def chance_rate(n: int) -> float:
    """P(T > 2) for Student's t with 2(n − 1) degrees of freedom: how often the rule calls a
    null difference "confirmed" in one given direction with n seeds per arm."""
    from scipy.stats import t

    return float(t.sf(2.0, 2 * (n - 1))) if n >= 2 else 0.0


@dataclass(frozen=True)
class Verdict:
    """One claim at one scale: the verdict and the comparisons behind it (sentences)."""

    outcome: Outcome
    reason: str

    @property
    def word(self) -> str:
        return VERDICT_WORDS[self.outcome]


def tally(outcomes: Sequence[Outcome], seeds: int) -> str:
    """How many comparisons confirm and contradict the claim, how many chance would give, and,
    when the confirmations are few enough to be chance, how likely that is."""
    from scipy.stats import binom

    n = len(outcomes)
    if seeds < 2:
        return "One seed per method: no difference can be told from seed noise."
    confirmed = sum(o is Outcome.CONFIRMED for o in outcomes)
    contradicted = sum(o is Outcome.CONTRADICTED for o in outcomes)
    rate = chance_rate(seeds)
    text = (
        f"{confirmed} of {n} comparison{'s' if n != 1 else ''} beyond seed noise in the claimed "
        f"direction, {contradicted} against it; with {seeds} seeds about {n * rate:.1f} of "
        f"{n} would pass in each direction by chance alone."
    )
    p_chance = float(binom.sf(confirmed - 1, n, rate)) if confirmed else 1.0
    if confirmed and p_chance >= 0.05:
        text += (
            f" Were there no true differences, {confirmed} or more of {n} independent "
            f"comparisons would pass with probability {p_chance:.2f}: the support is thin."
        )
    return text


def grouped(hits: Sequence[tuple[str, str]]) -> str:
    """(condition, arm) pairs as 'x, y under A; z under B', or 'none'."""
    by_condition: dict[str, list[str]] = {}
    for condition, arm in hits:
        by_condition.setdefault(condition, []).append(arm)
    return "; ".join(f"{', '.join(a)} under {c}" for c, a in by_condition.items()) or "none"
