"""Re-scoring a run's best weights (`regx evaluate`): the validation set is the run's own,
recomputed from its unchanged config and seed; the test set may be another one."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from regx.data.augment import Normalize
from regx.data.types import ImageData
from regx.engine import files, outputs
from regx.engine.checkpoint import load_checkpoint
from regx.engine.device import configure_runtime, seed_everything, use_channels_last
from regx.engine.environment import device_name, versions
from regx.engine.predict import predict
from regx.engine.robustness import RobustnessRequest, robustness_sections
from regx.engine.scoring import (
    Evaluation,
    ReportInputs,
    dataset_record,
    score_model,
    write_run_outputs,
)
from regx.engine.setup import Prepared, prepare_data
from regx.engine.spec import RunSpec
from regx.errors import DataError, UserError
from regx.keys import config_hash
from regx.metrics.memorization import noise_metrics


@dataclass
class BestWeights:
    state: dict[str, Any]
    source: str  # which file, for the record
    epoch: int | None


def best_weights(run_dir: Path) -> BestWeights:
    """The run's best weights: best.pt, else the best weights last.pt keeps."""
    best, last = run_dir / "checkpoints" / "best.pt", run_dir / "checkpoints" / "last.pt"
    if best.is_file():
        ckpt = load_checkpoint(best)
        return BestWeights(ckpt["model"], "checkpoints/best.pt", ckpt.get("epoch"))
    if last.is_file():
        ckpt = load_checkpoint(last)
        state = ckpt.get("train_state") or {}
        if ckpt.get("best_weights") is not None:
            source = "checkpoints/last.pt (best weights)"
            return BestWeights(ckpt["best_weights"], source, state.get("best_epoch"))
        return BestWeights(ckpt["model"], "checkpoints/last.pt", state.get("epoch"))
    status = (files.summary_of(run_dir) or {}).get("status")
    why = (
        f"it ended {status} before its first checkpoint"
        if status in ("diverged", "failed", "interrupted", "killed", "running")
        else "was it trained with trainer.checkpoint=false?"
    )
    raise UserError(f"{run_dir} has no checkpoints/best.pt or last.pt to evaluate ({why})")


def check_same_validation(run_dir: Path, val_labels: Any) -> None:
    """The recomputed validation labels must equal those the run stored: a cheap guard
    against a split that came out differently (the temperature would then be fitted on
    images the model may have trained on)."""
    stored = run_dir / "predictions.npz"
    if not stored.is_file():
        return
    with np.load(stored) as npz:
        if "val_labels" not in npz.files:
            return
        same = np.array_equal(npz["val_labels"], val_labels.cpu().numpy())
    if not same:
        raise UserError(
            f"the validation split recomputed from {run_dir}'s config differs from the one "
            "the run used (predictions.npz val_labels); the model may have trained on it, so "
            "evaluate will not fit a temperature there"
        )


def recorded_classes(trained_summary: dict[str, Any], default: list[str]) -> list[str]:
    """The classes the run trained on, as its summary.json records them (`default` if it
    records none): the data read now, e.g. from a dataset.root it moved to, must match."""
    record = trained_summary.get("dataset")
    classes = record.get("classes") if isinstance(record, dict) else None
    return [str(c) for c in classes] if isinstance(classes, list) else list(default)


def check_same_classes(trained: list[str], test: list[str]) -> None:
    """The model's outputs are the run's classes, in its order: a test set must have the
    same ones (labels are indices into the class list), or the scores are meaningless."""
    if test == trained:
        return

    def shown(names: list[str]) -> str:
        return ", ".join(names[:8]) + (f", … ({len(names)} in all)" if len(names) > 8 else "")

    raise DataError(
        f"the test set's classes ({shown(test)}) are not the run's ({shown(trained)}): the "
        "model scores the run's classes in their order; evaluate on data with the same class "
        "folders (or score retrieval on other classes with --retrieval DIR)"
    )


@dataclass(kw_only=True)
class EvaluationRequest:
    """A run to re-score: how it was trained, how to score it, and where to write."""

    run_dir: Path
    trained: RunSpec  # the run's own config: its data and validation split
    spec: RunSpec  # with the overrides: the test set to score on
    model: torch.nn.Module  # the run's best weights, in eval mode (regx.load_run)
    checkpoint: str  # which file the weights came from
    checkpoint_epoch: int | None
    same_test_set: bool
    overrides: list[str]
    out_dir: Path
    choices: dict[str, Any] | None = None  # the run's config-group options, for the report
    robustness: RobustnessRequest = field(default_factory=RobustnessRequest)


def evaluate_run(req: EvaluationRequest) -> dict[str, Any]:
    """Score the run's best weights on `req.spec`'s test set; returns the summary."""
    t0 = time.perf_counter()
    spec, s = req.spec, req.spec.trainer
    device = next(req.model.parameters()).device
    configure_runtime(device, s.deterministic, s.threads, reuse_host_memory=s.reuse_host_memory)
    seed_everything(spec.seed)
    prep = prepare_data(req.trained, device)
    trained_summary = files.summary_of(req.run_dir) or {}
    check_same_classes(
        recorded_classes(trained_summary, prep.data.classes), list(prep.data.classes)
    )
    check_same_validation(req.run_dir, prep.val_y)
    test = prep.data if req.same_test_set else spec.dataset.load(seed=spec.seed)
    check_same_classes(list(prep.data.classes), list(test.classes))
    model = req.model
    channels_last = use_channels_last(s.channels_last, device)
    normalize = Normalize(prep.data.mean, prep.data.std, device, channels_last)
    ev = Evaluation(
        model=model,
        normalize=normalize,
        device=device,
        batch_size=s.eval_batch_size,
        precision=s.precision,
        n_bins=spec.calibration_bins,
        test_x=test.test_x,
        test_y=test.test_y,
        val_x=prep.val_x,
        val_y=prep.val_y,
        val_weight=prep.val_weight,
        loss_fn=spec.loss.to(device),
        analysis=spec.analysis,
        between=spec.between,
        seed=spec.seed,
        classes=list(test.classes),
        open_x=test.open_x,
        open_y=test.open_y,
        open_classes=list(test.open_classes),
    )
    scored = score_model(ev)
    summary = _summary(req, scored.sections, prep, test, device, trained_summary)
    if prep.train_clean_y is not None:
        summary["noise"] = noise_section(ev, prep, trained_summary)
    temperature = scored.sections["temperature"]
    summary.update(robustness_sections(req.robustness, ev, req.trained, temperature))
    summary["eval_time_s"] = time.perf_counter() - t0
    history = []
    if (req.run_dir / "metrics.csv").is_file():
        history = outputs.read_metrics_csv(req.run_dir / "metrics.csv")
    report = ReportInputs(history, prep.split.arrays, req.choices, "Evaluation report")
    return write_run_outputs(req.out_dir, ev, scored, summary, report, t0)


def noise_section(
    ev: Evaluation, prep: Prepared, trained_summary: dict[str, Any]
) -> dict[str, Any]:
    """summary.json `noise` for the evaluated weights: memorization of the run's flipped
    training labels (unmixed images, eval mode), with the run's own noise settings."""
    logits, _ = predict(
        ev.model, prep.train_x, ev.normalize, ev.device, ev.batch_size, ev.precision
    )
    trained = trained_summary.get("noise")
    settings = trained if isinstance(trained, dict) else {}
    return {**settings, **noise_metrics(logits, prep.train_y, prep.train_clean_y)}


def _summary(
    req: EvaluationRequest,
    sections: dict[str, Any],
    prep: Prepared,
    test: ImageData,
    device: torch.device,
    trained_summary: dict[str, Any],
) -> dict[str, Any]:
    s = req.spec.trainer
    summary: dict[str, Any] = {"status": "finished", **sections, "split": dict(prep.split.info)}
    summary["shift"] = test.info.get("test_shift", {"mode": "none"})
    dataset = dataset_record(test, len(prep.train_y), len(prep.val_y))
    dataset["test_shift"] = str(req.spec.config.get("dataset", {}).get("test_shift", "none"))
    summary.update(
        evaluation={
            "run_dir": str(req.run_dir.resolve()),
            "checkpoint": req.checkpoint,
            "checkpoint_epoch": req.checkpoint_epoch,
            "overrides": list(req.overrides),
            "run_status": trained_summary.get("status", "unfinished"),
        },
        best_epoch=req.checkpoint_epoch,
        epochs_run=trained_summary.get("epochs_run"),
        monitor=trained_summary.get("monitor", s.monitor),
        dataset=dataset,
        seed=req.spec.seed,
        config_hash=config_hash(req.spec.config),
        overrides=list(req.spec.overrides),
        versions=versions(),
        device=device_name(device),
    )
    return summary
