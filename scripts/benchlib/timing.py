"""Timing helpers shared by the benchmark parts: one timed call, interleaved ratios.

CPU time is `time.process_time()`: user + system seconds of this process, all threads.
On a shared machine it is the steadier measure, since it leaves out the time the process
waits for a core that other processes hold.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

MEASURES = ("wall", "cpu")


def fmt(values: list[float], unit: str = "", digits: int = 3) -> str:
    return "[" + ", ".join(f"{v:.{digits}f}{unit}" for v in values) + "]"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) for one call of `fn`."""
    sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    sync(device)
    return time.perf_counter() - t0, time.process_time() - c0


def interleaved(
    fns: dict[str, Callable[[], object]], calls: int, device: torch.device, start: int = 0
) -> dict[str, tuple[float, float]]:
    """(wall, CPU) seconds of `calls` calls of each function, summed per function.

    The calls alternate one at a time in the order A B, B A, A B, … (from B A when `start`
    is odd; a caller making one call per repeat passes the repeat's index): on a shared
    machine whose speed drifts (other tenants, clock changes), a block of one contender's
    calls after the other's would time the drift; alternating single calls both see it alike.
    """
    names = list(fns)
    totals = {name: [0.0, 0.0] for name in names}
    for i in range(start, start + calls):
        for name in names if i % 2 == 0 else reversed(names):
            wall, cpu = timed(fns[name], device)
            totals[name][0] += wall
            totals[name][1] += cpu
    return {name: (wall, cpu) for name, (wall, cpu) in totals.items()}


class Stopwatch:
    """Wall and CPU seconds since the last `lap()` (or creation)."""

    def __init__(self) -> None:
        self.restart()

    def restart(self) -> None:
        self.t0, self.c0 = time.perf_counter(), time.process_time()

    def lap(self) -> tuple[float, float]:
        return time.perf_counter() - self.t0, time.process_time() - self.c0


@dataclass
class Samples:
    """Seconds per unit of work (an epoch, a step) of one contender, one entry per repeat."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def add(self, wall_cpu: tuple[float, float], units: int) -> None:
        self.wall.append(wall_cpu[0] / units)
        self.cpu.append(wall_cpu[1] / units)

    def of(self, measure: str) -> list[float]:
        return self.wall if measure == "wall" else self.cpu


@dataclass
class Ratio:
    """Contender time / regx time of each repeat (pairs from the same round), and the median."""

    ratios: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.ratios)

    def reaches(self, at_least: float) -> bool:
        """Whether the median meets a target at the printed precision (3 decimals)."""
        return round(self.median, 3) >= at_least


def ratio(contender: Samples, regx: Samples, measure: str) -> Ratio:
    return Ratio([c / r for c, r in zip(contender.of(measure), regx.of(measure))])


@dataclass
class Target:
    """A performance target: a contender's ratio on a case must reach `at_least`."""

    case: str
    contender: str
    at_least: float
    wall: Ratio
    cpu: Ratio

    def met(self, measure: str) -> bool:
        return getattr(self, measure).reaches(self.at_least)


def fmt_times(values: list[float], per: str) -> str:
    """Seconds per epoch as s, per step as ms."""
    if per == "step":
        return fmt([1e3 * v for v in values], " ms", 2) + " per step"
    return fmt(values, " s") + f" per {per}"


def print_samples(name: str, s: Samples, regx: Samples, per: str, target: float | None) -> None:
    """A contender's ratio to regx in both measures with every repeat, and its times."""
    print(f"    {name}")
    for measure in MEASURES:
        r = ratio(s, regx, measure)
        mark = f"  {verdict(r.reaches(target))} (≥ {target:.2f})" if target is not None else ""
        print(f"      {measure:4} ratio {r.median:.3f} {fmt(r.ratios)}{mark}")
        print(f"           {fmt_times(s.of(measure), per)}")


def print_regx(s: Samples, per: str) -> None:
    print("    regx")
    for measure in MEASURES:
        print(f"      {measure:4} {fmt_times(s.of(measure), per)}")


def print_targets(targets: list[Target]) -> None:
    """The summary table: each target with its median ratios and pass/miss in both measures."""
    print("\ntargets (ratio = contender time / regx time = speed of regx / speed of contender)")
    print(f"  {'case':<22} {'contender':<16} {'target':>7} {'wall':>12} {'cpu':>12}")
    for t in targets:
        cells = " ".join(f"{getattr(t, m).median:7.3f} {verdict(t.met(m))}" for m in MEASURES)
        print(f"  {t.case:<22} {t.contender:<16} {'≥ ' + format(t.at_least, '.2f'):>7} {cells}")
