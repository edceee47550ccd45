"""scripts/studies_page.py: its comparison sentences follow the numbers (the page's rule)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "studies_page.py"
spec = importlib.util.spec_from_file_location("studies_page", SCRIPT)
page = importlib.util.module_from_spec(spec)
sys.modules["studies_page"] = page  # dataclasses look their module up there
spec.loader.exec_module(page)


def test_a_difference_must_exceed_twice_its_standard_error():
    a = page.Stat(0.10, 0.01, 3)
    # standard error of the difference: sqrt(2 * 0.01² / 3) = 0.00816; twice that 0.0163
    assert not page.differs(a, page.Stat(0.116, 0.01, 3))
    assert page.differs(a, page.Stat(0.117, 0.01, 3))
    assert not page.differs(a, page.Stat(0.5, math.nan, 1))  # one seed: no claim


def test_sentences_say_what_the_numbers_say():
    ece = page.ECE
    base, worse = page.Stat(0.011, 0.0015, 3), page.Stat(0.108, 0.0122, 3)
    assert page.compare("mixup", ece, "none", base, worse) == (
        "mixup raises ECE from 1.10 ± 0.15% (none) to 10.80 ± 1.22%"
    )
    same = page.Stat(0.012, 0.0015, 3)
    assert "within seed noise" in page.compare("mixup", ece, "none", base, same)
    assert page.better(ece, worse, base) and not page.better(ece, base, worse)


def test_regret_is_best_test_epoch_minus_the_picked_one(tmp_path):
    (tmp_path / "metrics.csv").write_text("epoch,test_acc\n1,0.50\n2,0.62\n3,0.58\n")
    run = page.RunRecord(
        path=tmp_path,
        status="finished",
        message="",
        config={},
        choices={},
        overrides=[],
        summary={"test": {"acc": 0.58}, "val": {"acc": 0.70}},
    )
    assert page.value(run, "regret") == pytest.approx(0.04)
    assert page.value(run, "picked_within") == 0.0
    assert page.value(run, "abs_gap") == pytest.approx(0.12)
