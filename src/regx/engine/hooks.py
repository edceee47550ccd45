"""Side effects of a run at fixed points of the loop (detectron2's hooks, reduced).

The Trainer calls, for every hook in order: `epoch_metrics` when an epoch's row is being
built (extra metrics.csv columns, e.g. test accuracy or memorization), `after_epoch` when
the row is complete and the checkpoint written (loggers, a search's pruning), and
`summary` when the run has been scored (extra summary.json sections).
"""

from __future__ import annotations

from typing import Any, Protocol


class Trainer(Protocol):
    """What hooks see of `regx.engine.trainer.Trainer` (a protocol: no import cycle)."""

    def test_accuracy(self) -> float: ...

    def noise_metrics(self) -> dict[str, float]: ...

    @property
    def state(self) -> Any: ...  # regx.engine.state.TrainState


class RunHook:
    def epoch_metrics(self, trainer: Trainer, epoch: int) -> dict[str, float]:
        """Columns to add to 0-based `epoch`'s metrics.csv row."""
        return {}

    def after_epoch(self, row: dict[str, Any]) -> None:
        """The epoch's finished row (may raise, e.g. `RunPruned`)."""

    def summary(self, trainer: Trainer) -> dict[str, Any]:
        """Sections to add to summary.json after the final evaluation."""
        return {}


class TrackTest(RunHook):
    """`track_test=true`: test accuracy per epoch, for analysis only (never for selection);
    summary.json `track_test`: the best-test epoch against the one validation picked."""

    def epoch_metrics(self, trainer: Trainer, epoch: int) -> dict[str, float]:
        return {"test_acc": trainer.test_accuracy()}

    def summary(self, trainer: Trainer) -> dict[str, Any]:
        # from the history, so the epochs before a resume count too
        acc = {r["epoch"]: r["test_acc"] for r in trainer.state.history if "test_acc" in r}
        if not acc:
            return {}
        best = max(acc, key=lambda e: (acc[e], -e))  # the first epoch of the highest
        picked = trainer.state.best_epoch
        return {
            "track_test": {
                "best_test_epoch": best,
                "best_test_acc": acc[best],
                "picked_epoch": picked,
                "picked_test_acc": acc.get(picked),
                "epoch_gap": None if picked is None else best - picked,
            }
        }


class CompileTimer(RunHook):
    """torch.compile's cold cost: this process's first epoch minus its second (the first
    epoch alone while only one has run), so a resumed run measures its own."""

    def __init__(self) -> None:
        self.first_epochs: list[float] = []
        self.seconds: float | None = None

    def after_epoch(self, row: dict[str, Any]) -> None:
        timed = self.first_epochs
        if len(timed) < 2:
            timed.append(row["seconds"])
        self.seconds = timed[0] - timed[1] if len(timed) == 2 else timed[0]


class TrackNoise(RunHook):
    """Under `dataset.label_noise`: `fit_clean`, `memorized`, `recovered` on the unmixed
    training images in eval mode, every `every` epochs and at the last (metrics.csv
    `noise_*`; `every` 0: none), and for the final (best) model in summary.json `noise`."""

    def __init__(self, every: int, num_epochs: int, record: dict[str, Any]) -> None:
        self.every, self.num_epochs, self.record = every, num_epochs, record

    def epoch_metrics(self, trainer: Trainer, epoch: int) -> dict[str, float]:
        due = (epoch + 1) % self.every == 0 or epoch + 1 == self.num_epochs
        if self.every == 0 or not due:  # 0: per-epoch tracking off
            return {}
        m = trainer.noise_metrics()
        keys = ("rate", "fit_clean", "memorized", "recovered")
        return {f"noise_{k}": m[k] for k in keys}

    def summary(self, trainer: Trainer) -> dict[str, Any]:
        return {"noise": {**self.record, **trainer.noise_metrics(), "track_every": self.every}}
