""" "Did you mean …?": the known name closest to a mistyped one (a config key, a config group,
a group's option). Light on purpose (no torch, no Hydra), so `regx list` can use it too.

Closeness is difflib's ratio 2·M / (|a| + |b|), M the characters of the longest matching
blocks, on lower-cased names; a name counts as meant when the ratio is at least `CUTOFF`
(`epochz` → `epochs` 0.83, `losss` → `loss` 0.89, `foo` → `focal` 0.5: no suggestion).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

CUTOFF = 0.75


def closest(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate `name` most likely meant, or None when none is close enough."""
    by_lower: dict[str, str] = {}
    for candidate in sorted({str(c) for c in candidates}):
        by_lower.setdefault(candidate.lower(), candidate)
    wanted = name.lower()
    if wanted in by_lower and by_lower[wanted] != name:
        return by_lower[wanted]  # only the case differs
    by_lower.pop(wanted, None)
    match = difflib.get_close_matches(wanted, list(by_lower), n=1, cutoff=CUTOFF)
    return by_lower[match[0]] if match else None


def listed(names: Iterable[str], limit: int = 12) -> str:
    """Names as a short comma-separated list ("a, b, … (20 in all)" past `limit`)."""
    names = sorted({str(n) for n in names})
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown}, … ({len(names)} in all)"
