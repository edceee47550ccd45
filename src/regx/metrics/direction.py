"""Which way a metric is better: lower for losses, calibration and risk errors and the
between-sample gaps; higher for every other metric (accuracy, recall, mAP, AUC, …).

Used for `trainer.monitor` (which epoch's weights are best) and for a search's
`direction=auto` (minimize or maximize the objective)."""

from __future__ import annotations

LOWER_IS_BETTER = frozenset(
    {
        "loss",
        "nll",
        "brier",
        "ece",
        "ace",
        "mce",
        "classwise_ece",
        "overconfidence",
        "aurc",
        "error",
        "linearity_gap",
        "miss_rate",
        "grad_norm",
        "feature_gap",
        "memorized",
    }
)
SET_PREFIXES = ("val_", "test_", "train_", "noise_")  # metrics.csv's column names


def lower_is_better(metric: str) -> bool:
    """For a metric named bare (`ece`), as a summary key (`val.nll`, `between.miss_rate.0.5`)
    or as a metrics.csv column (`val_loss`, `noise_memorized`)."""
    for part in metric.split("."):
        name = next((part[len(p) :] for p in SET_PREFIXES if part.startswith(p)), part)
        if part in LOWER_IS_BETTER or name in LOWER_IS_BETTER:
            return True
    return False
