"""The corruption sweep of `regx evaluate RUN_DIR --corruptions …`: every kind × severity.

For each corruption kind k and severity s the clean test images are corrupted exactly
as `dataset.test_shift=corrupt shift.kind=k shift.severity=s` does for the run's seed
(`regx.data.shift.corrupted_copies`: a fresh `corruption_generator(seed)` per cell, so the
noise of a cell does not depend on which other cells run), scored by the model, and the
cell holds

    acc, nll, ece                of softmax(logits)           (= summary `test` there)
    ece_ts                       of softmax(logits / T)        (= summary `test_ts.ece`)

with T the run's temperature (fitted on its validation set). With E_{k,s} = 1 − acc_{k,s}
and E_clean the error on the clean test set, over the kinds K and severities S swept:

    mean corruption error           mCE   = (1/|K||S|) Σ_{k,s} E_{k,s}
    relative mean corruption error  rmCE  = (1/|K||S|) Σ_{k,s} (E_{k,s} − E_clean)

(CIFAR-10-C's mCE divides each kind's errors by a reference model's (AlexNet); regx has
no reference model, so both are unnormalized errors.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

import torch

from regx.errors import ConfigError
from regx.metrics.calibration import calibration_metrics


@dataclass
class CorruptionRow:
    kind: str  # "clean" for the uncorrupted test set (severity 0)
    severity: int
    acc: float
    nll: float
    ece: float
    ece_ts: float


@dataclass
class CorruptionTable:
    clean: CorruptionRow
    rows: list[CorruptionRow] = field(default_factory=list)
    temperature: float = 1.0

    @property
    def mean_corruption_error(self) -> float:
        return sum(1.0 - r.acc for r in self.rows) / len(self.rows)

    @property
    def relative_mean_corruption_error(self) -> float:
        return self.mean_corruption_error - (1.0 - self.clean.acc)

    def as_dict(self) -> dict[str, object]:
        """JSON-ready: summary.json `corruptions`."""
        return {
            "clean": asdict(self.clean),
            "rows": [asdict(r) for r in self.rows],
            "mean_corruption_error": self.mean_corruption_error,
            "relative_mean_corruption_error": self.relative_mean_corruption_error,
            "temperature": self.temperature,
        }


def _row(
    kind: str, severity: int, logits: torch.Tensor, labels: torch.Tensor, t: float, n_bins: int
) -> CorruptionRow:
    plain = calibration_metrics(logits.softmax(dim=1), labels, n_bins)
    scaled = calibration_metrics((logits / t).softmax(dim=1), labels, n_bins)
    return CorruptionRow(kind, severity, plain["acc"], plain["nll"], plain["ece"], scaled["ece"])


def corruption_table(
    predict_logits: Callable[[torch.Tensor], torch.Tensor],
    clean_x: torch.Tensor,
    test_y: torch.Tensor,
    cells: Iterable[tuple[str, int, torch.Tensor]],
    temperature: float = 1.0,
    n_bins: int = 15,
) -> CorruptionTable:
    """Score `predict_logits` (uint8 images → logits) on the clean test images and on each
    corrupted copy in `cells`: (kind, severity, images), the images in the order of `test_y`.

    `cells` = `regx.data.shift.corrupted_copies(clean_x, kinds, severities, seed)` with the
    run's clean test set (`dataset.test_shift=none`) and seed: each cell then equals
    `regx evaluate` with `dataset.test_shift=corrupt shift.kind=k shift.severity=s`.
    """
    if len(test_y) == 0:
        raise ConfigError("corruptions", "all", "needs a non-empty test set")
    # Softmax on the device the logits come from, as the engine's scoring does: the same
    # float32 probabilities, so the same metrics to the last bit.
    labels = test_y.cpu()
    clean = _row("clean", 0, predict_logits(clean_x), labels, temperature, n_bins)
    table = CorruptionTable(clean=clean, temperature=float(temperature))
    for kind, severity, images in cells:
        logits = predict_logits(images)
        table.rows.append(_row(kind, severity, logits, labels, temperature, n_bins))
    if not table.rows:
        raise ConfigError("corruptions", "none", "needs at least one kind and severity")
    return table
