"""Largest-remainder rounding (regx.data.quota), shared by subsets, splits and label noise."""

from __future__ import annotations

import numpy as np

from regx.data.quota import largest_remainder


def test_floors_then_the_largest_remainders_get_the_units_left() -> None:
    # shares 3.5, 2.1, 1.4: floors 3, 2, 1 and the one unit left goes to class 0 (0.5)
    assert largest_remainder(np.array([5, 3, 2]), 7).tolist() == [4, 2, 1]
    # shares 0.4, 0.4, 0.2 of 1: a tie of remainders goes to the lower class
    assert largest_remainder(np.array([2, 2, 1]), 1).tolist() == [1, 0, 0]


def test_the_total_is_exact_and_every_share_is_its_floor_or_ceiling() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        counts = rng.integers(0, 50, size=rng.integers(1, 12))
        if counts.sum() == 0:
            continue
        total = int(rng.integers(0, counts.sum() + 1))
        take = largest_remainder(counts, total)
        exact = counts / counts.sum() * total
        assert take.sum() == total
        assert np.all((take == np.floor(exact)) | (take == np.ceil(exact)))
        assert np.all(take[counts == 0] == 0)


def test_a_zero_total_takes_nothing_even_from_no_images() -> None:
    assert largest_remainder(np.array([0, 0]), 0).tolist() == [0, 0]
