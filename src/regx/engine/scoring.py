"""The end of a run, for `regx train` and `regx evaluate` alike: score the model on the test
and validation sets, and write the files that hold the scores.

summary.json is written last; its presence with `status: finished` marks a complete run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from regx.data.augment import Normalize
from regx.data.types import ImageData
from regx.engine import outputs
from regx.engine.predict import predict
from regx.engine.settings import AnalysisSettings
from regx.metrics.between import BetweenSettings, between_sample_metrics
from regx.metrics.bootstrap import confidence_intervals
from regx.metrics.calibration import calibration_metrics
from regx.metrics.retrieval import retrieval_at_k
from regx.metrics.temperature import fit_temperature
from regx.report.figure_worker import FigureWorker, draw_inline


@dataclass
class Evaluation:
    """A trained model and the images it is scored on (uint8 test, on-device validation)."""

    model: torch.nn.Module
    normalize: Normalize
    device: torch.device
    batch_size: int
    precision: str
    n_bins: int
    test_x: torch.Tensor
    test_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    val_weight: torch.Tensor | None
    loss_fn: torch.nn.Module
    analysis: AnalysisSettings
    between: BetweenSettings
    seed: int
    classes: list[str]
    # `dataset.holdout_classes`: the held-out classes' test images (open-set retrieval)
    open_x: torch.Tensor | None = None
    open_y: torch.Tensor | None = None
    open_classes: list[str] = field(default_factory=list)

    def predict(self, images: torch.Tensor, features: bool = False) -> tuple[Any, Any]:
        return predict(
            self.model,
            images,
            self.normalize,
            self.device,
            self.batch_size,
            self.precision,
            features,
        )


@dataclass
class Scored:
    """Predictions and the summary.json sections computed from them."""

    test_logits: torch.Tensor
    test_features: torch.Tensor
    val_logits: torch.Tensor
    sections: dict[str, Any]
    seconds: float
    open_features: torch.Tensor | None = None
    phase_seconds: dict[str, float] = field(default_factory=dict)


class PhaseClock:
    """Wall seconds of consecutive phases: `lap(name)` ends the phase begun at the last lap."""

    def __init__(self) -> None:
        self.started = self.last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = now - self.last
        self.last = now

    def total(self) -> float:
        return time.perf_counter() - self.started


def score_model(ev: Evaluation) -> Scored:
    """Test metrics before/after temperature scaling (fitted on validation only, with the
    validation weights when the split has them), validation metrics, bootstrap intervals,
    retrieval (closed and open set) and the between-sample diagnostics.

    The probabilities are `softmax(logits)` and `softmax(logits / T)` exactly as
    `prediction_arrays` stores them, so every number can be recomputed from predictions.npz.
    """
    clock = PhaseClock()
    test_logits, test_feats = ev.predict(ev.test_x, features=True)
    val_logits, _ = ev.predict(ev.val_x)
    test_y = ev.test_y.to(ev.device)
    clock.lap("predict")
    sections = calibration_sections(ev, test_logits, test_y, val_logits)
    clock.lap("calibration")
    sections["retrieval"] = retrieval_at_k(test_feats, test_y, ev.analysis.retrieval_ks)
    open_feats = None
    if ev.open_x is not None:
        _, open_feats = ev.predict(ev.open_x, features=True)
        open_y = ev.open_y.to(ev.device)
        found = retrieval_at_k(open_feats, open_y, ev.analysis.retrieval_ks)
        sections["retrieval_open"] = {**found, "classes": list(ev.open_classes)}
    clock.lap("retrieval")
    sections["between"] = between_diagnostics(ev)
    clock.lap("between")
    return Scored(
        test_logits, test_feats, val_logits, sections, clock.total(), open_feats, clock.laps
    )


def calibration_sections(
    ev: Evaluation, test_logits: torch.Tensor, test_y: torch.Tensor, val_logits: torch.Tensor
) -> dict[str, Any]:
    """`test`, `test_ts`, `temperature`, `val` and their bootstrap intervals `ci`."""
    fit = fit_temperature(val_logits, ev.val_y, ev.val_weight)
    t, n_bins = fit.temperature, ev.n_bins
    probs, probs_ts = test_logits.softmax(dim=1), (test_logits / t).softmax(dim=1)
    val_probs = val_logits.softmax(dim=1)
    ci = confidence_intervals(
        probs, test_y, probs_ts, val_probs, ev.val_y, ev.val_weight,
        n_bins=n_bins, resamples=ev.analysis.bootstrap, seed=ev.seed,
    )  # fmt: skip
    return {
        "test": calibration_metrics(probs, test_y, n_bins),
        "test_ts": calibration_metrics(probs_ts, test_y, n_bins),
        "temperature": t,
        "temperature_fit": fit.as_dict(),
        "val": calibration_metrics(val_probs, ev.val_y, n_bins, ev.val_weight),
        "ci": ci,
    }


def between_diagnostics(ev: Evaluation) -> dict[str, Any]:
    """summary.json `between` (regx.metrics.between) on the test set; {} when off."""
    return between_sample_metrics(
        ev.model,
        ev.test_x,
        ev.test_y,
        ev.normalize,
        ev.loss_fn,
        pairs=ev.between.pairs,
        lams=ev.between.lams,
        seed=0,  # the same pairs in every run on a test set: comparisons across runs are paired
        batch_size=min(ev.batch_size, 512),
        device=ev.device,
    )


def features_arrays(ev: Evaluation, scored: Scored) -> dict[str, np.ndarray]:
    """features.npz: test embeddings (model.features(x), before the head, not normalized),
    labels and class names; the open set's too when classes are held out."""
    dtype = np.float16 if ev.analysis.features_dtype == "float16" else np.float32
    arrays = {
        "test_features": scored.test_features.cpu().numpy().astype(dtype),
        "test_labels": ev.test_y.cpu().numpy(),
        "classes": np.array(ev.classes),
    }
    if scored.open_features is not None:
        arrays["open_features"] = scored.open_features.cpu().numpy().astype(dtype)
        arrays["open_labels"] = ev.open_y.cpu().numpy()
        arrays["open_classes"] = np.array(ev.open_classes)
    return arrays


def prediction_arrays(ev: Evaluation, scored: Scored) -> dict[str, np.ndarray]:
    """The content of predictions.npz: test/val probabilities (float32, the exact values the
    metrics used), labels, logits, the temperature-scaled test probabilities, val weights."""
    test, val, t = scored.test_logits, scored.val_logits, scored.sections["temperature"]
    arrays = {
        "probs": test.softmax(dim=1).cpu().numpy().astype(np.float32),
        "labels": ev.test_y.cpu().numpy(),
        "val_probs": val.softmax(dim=1).cpu().numpy().astype(np.float32),
        "val_labels": ev.val_y.cpu().numpy(),
        "logits": test.cpu().numpy().astype(np.float32),
        "val_logits": val.cpu().numpy().astype(np.float32),
        "probs_ts": (test / t).softmax(dim=1).cpu().numpy().astype(np.float32),
    }
    if ev.val_weight is not None:
        arrays["val_weights"] = ev.val_weight.cpu().numpy().astype(np.float32)
    return arrays


@dataclass
class ReportInputs:
    """What the run report shows besides the summary."""

    history: list[dict[str, Any]]
    split_arrays: dict[str, np.ndarray]
    choices: dict[str, Any] | None = None
    title: str | None = None


def write_run_outputs(
    out_dir: Path,
    ev: Evaluation,
    scored: Scored,
    summary: dict[str, Any],
    report: ReportInputs,
    t0: float,
    loggers: tuple[Any, ...] | list[Any] = (),
    extra_arrays: dict[str, np.ndarray] | None = None,
    figures: FigureWorker | None = None,
) -> dict[str, Any]:
    """predictions.npz, the report (report.md and figures), the trackers' final record, then
    summary.json; returns the summary. With a `figures` worker, it draws the figures while
    report.md is written; summary.json waits for them."""
    from regx.report.run_report import write_run_report

    arrays = prediction_arrays(ev, scored)
    outputs.write_predictions(out_dir / "predictions.npz", **arrays, **(extra_arrays or {}))
    if ev.analysis.save_features:
        outputs.write_predictions(out_dir / "features.npz", **features_arrays(ev, scored))
    t_report = time.perf_counter()
    write_run_report(
        out_dir,
        summary=summary,
        history=report.history,
        probs=torch.from_numpy(arrays["probs"]),
        probs_ts=torch.from_numpy(arrays["probs_ts"]),
        labels=ev.test_y,
        n_bins=ev.n_bins,
        split_arrays=report.split_arrays,
        choices=report.choices,
        title=report.title,
        draw=figures.draw if figures is not None else draw_inline,
    )
    if figures is not None:
        figures.wait()
    summary["report_time_s"] = time.perf_counter() - t_report
    if "timings" in summary:
        summary["timings"]["report_s"] = summary["report_time_s"]
    summary["wall_time_s"] = time.perf_counter() - t0
    summary["finished"] = time.time()
    for logger in loggers:
        logger.log_summary(summary, out_dir)
    outputs.write_json(out_dir / "summary.json", summary)
    return summary


def dataset_record(data: ImageData, train_size: int, val_size: int) -> dict[str, Any]:
    """summary.json's `dataset`: the shape of the data a model was scored with, its class
    names and input normalization (what `regx.load_run` rebuilds the model from)."""
    record = {
        "name": data.name,
        "num_classes": data.num_classes,
        "image_size": data.image_size,
        "channels": data.channels,
        "image_shape": list(data.test_x.shape[1:]),  # C, H, W: what the model takes
        "train_size": train_size,
        "val_size": val_size,
        "test_size": len(data.test_y),
        "classes": list(data.classes),
        "mean": list(data.mean),
        "std": list(data.std),
    }
    for key in ("label_noise", "holdout"):
        if key in data.info:
            record[key] = data.info[key]
    return record
