"""Largest-remainder rounding: share an integer total among classes in proportion to counts.

With counts n_c (N = Σ n_c) and a total M, class c's exact share is q_c = n_c·M/N; it gets
⌊q_c⌋, and the M − Σ ⌊q_c⌋ units left over go one each to the classes with the largest
remainders q_c − ⌊q_c⌋ (ties: the lower class index). So Σ m_c = M and every m_c is the
floor or the ceiling of q_c.
"""

from __future__ import annotations

import numpy as np


def largest_remainder(counts: np.ndarray, total: int) -> np.ndarray:
    """m_c (int64) for each class of `counts`; all 0 when `total` is 0."""
    counts = np.asarray(counts)
    if total == 0:
        return np.zeros(len(counts), dtype=np.int64)
    quota = counts / counts.sum() * total
    take = np.floor(quota).astype(np.int64)
    take[np.argsort(-(quota - take), kind="stable")[: total - int(take.sum())]] += 1
    return take
