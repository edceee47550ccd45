"""Which way each metric is better (regx.metrics.direction), as summary keys and csv columns."""

from __future__ import annotations

import pytest

from regx.engine.best import monitor_key
from regx.metrics.direction import lower_is_better


@pytest.mark.parametrize(
    ("metric", "lower"),
    [
        ("ece", True),
        ("val.nll", True),
        ("test_ts.classwise_ece", True),
        ("val_loss", True),
        ("val_ece", True),
        ("noise_memorized", True),
        ("between.miss_rate.0.5", True),
        ("test.aurc", True),
        ("acc", False),
        ("val_acc", False),
        ("retrieval.map_at_r", False),
        ("split.auc", False),
        ("noise.recovered", False),
    ],
)
def test_lower_is_better(metric: str, lower: bool) -> None:
    assert lower_is_better(metric) is lower


def test_the_monitor_key_grows_as_the_monitored_metric_improves() -> None:
    row = {"val_acc": 0.9, "val_loss": 0.3, "val_ece": 0.05}
    assert monitor_key(row, "val_loss") > monitor_key({**row, "val_loss": 0.4}, "val_loss")
    assert monitor_key(row, "val_ece") > monitor_key({**row, "val_ece": 0.06}, "val_ece")
    # val_acc ties go to the lower validation loss
    assert monitor_key(row, "val_acc") > monitor_key({**row, "val_loss": 0.31}, "val_acc")
    assert monitor_key(row, "val_acc") < monitor_key({**row, "val_acc": 0.91}, "val_acc")
