"""The end of a run: test/validation predictions, their metrics, and the files that hold them.

summary.json is written last; its presence with `status: finished` marks a complete run.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

import regx
from regx.engine import distributed, outputs
from regx.engine.predict import predict
from regx.metrics.calibration import calibration_metrics
from regx.metrics.retrieval import retrieval_metrics
from regx.metrics.temperature import fit_temperature

if TYPE_CHECKING:
    from regx.engine.run import Trainer, TrainState


def config_hash(config: dict[str, Any]) -> str:
    """A short hash of the resolved config without run-location and run-control keys
    (same hash = same experiment; `sweep.skip_done` compares it)."""
    clean = {k: v for k, v in config.items() if k not in ("out_dir", "hydra", "_hash", "sweep")}
    return hashlib.sha1(json.dumps(clean, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _installed_version(dist: str) -> str | None:
    """A distribution's version from its metadata, without importing it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def versions() -> dict[str, str | None]:
    # torchvision's version is read from its metadata: importing it only for the version
    # string costs seconds on every run that does not use a torchvision model or dataset
    return {
        "regx": regx.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": _installed_version("torchvision"),
        "numpy": np.__version__,
    }


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def score_predictions(
    test_logits: torch.Tensor,
    test_labels: torch.Tensor,
    val_logits: torch.Tensor,
    val_labels: torch.Tensor,
    val_weight: torch.Tensor | None,
    test_features: torch.Tensor | None,
    n_bins: int,
) -> dict[str, Any]:
    """Test metrics before/after temperature scaling (fitted on validation only, with the
    validation weights when the split has them), validation metrics, retrieval.

    The probabilities are `softmax(logits)` and `softmax(logits / T)` exactly as
    `prediction_arrays` stores them, so every number can be recomputed from predictions.npz.
    """
    fit = fit_temperature(val_logits, val_labels, val_weight)
    t = fit.temperature
    return {
        "test": calibration_metrics(test_logits.softmax(dim=1), test_labels, n_bins),
        "test_ts": calibration_metrics((test_logits / t).softmax(dim=1), test_labels, n_bins),
        "temperature": t,
        "temperature_fit": fit.as_dict(),
        "val": calibration_metrics(val_logits.softmax(dim=1), val_labels, n_bins, val_weight),
        "retrieval": (
            retrieval_metrics(test_features, test_labels) if test_features is not None else {}
        ),
    }


def prediction_arrays(
    test_logits: torch.Tensor,
    test_labels: torch.Tensor,
    val_logits: torch.Tensor,
    val_labels: torch.Tensor,
    val_weight: torch.Tensor | None,
    temperature: float,
) -> dict[str, np.ndarray]:
    """The content of predictions.npz: test/val probabilities (float32, the exact values the
    metrics used), labels, logits, the temperature-scaled test probabilities, val weights."""
    arrays = {
        "probs": test_logits.softmax(dim=1).cpu().numpy().astype(np.float32),
        "labels": test_labels.cpu().numpy(),
        "val_probs": val_logits.softmax(dim=1).cpu().numpy().astype(np.float32),
        "val_labels": val_labels.cpu().numpy(),
        "logits": test_logits.cpu().numpy().astype(np.float32),
        "val_logits": val_logits.cpu().numpy().astype(np.float32),
        "probs_ts": (test_logits / temperature).softmax(dim=1).cpu().numpy().astype(np.float32),
    }
    if val_weight is not None:
        arrays["val_weights"] = val_weight.cpu().numpy().astype(np.float32)
    return arrays


def run_record(spec_config: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    return {"config_hash": config_hash(spec_config), "overrides": list(overrides)}


def write_status(
    run_dir: Path, status: str, message: str, state: TrainState, started: float
) -> None:
    """summary.json for a run in progress (running) or one that did not finish (diverged,
    interrupted, failed)."""
    if not distributed.is_main_process():
        return  # several processes (torchrun): rank 0 writes the run's files
    record: dict[str, Any] = {
        "status": status,
        "message": message,
        "epochs_run": state.epoch,
        "best_epoch": state.best_epoch,
        "started": started,
    }
    if status == "running":
        # a reader can tell a live run from one killed outright (left "running")
        record.update(pid=os.getpid(), host=platform.node())
    else:
        record["stopped"] = time.time()
    outputs.write_json(run_dir / "summary.json", record)


def finalize_run(
    trainer: Trainer, started: float, train_seconds: float, t0: float
) -> dict[str, Any]:
    from regx.report.run_report import write_run_report

    spec, p, s = trainer.spec, trainer.prep, trainer.s
    run_dir = trainer.run_dir
    t_eval = time.perf_counter()
    test_logits, test_feats = predict(
        trainer.model,
        p.data.test_x,
        trainer.normalize,
        trainer.device,
        s.eval_batch_size,
        s.precision,
        features=True,
    )
    val_logits, _ = predict(
        trainer.model, p.val_x, trainer.normalize, trainer.device, s.eval_batch_size, s.precision
    )
    test_y = p.data.test_y.to(trainer.device)
    scores = score_predictions(
        test_logits, test_y, val_logits, p.val_y, p.val_weight, test_feats, spec.calibration_bins
    )
    eval_seconds = time.perf_counter() - t_eval

    arrays = prediction_arrays(
        test_logits, p.data.test_y, val_logits, p.val_y, p.val_weight, scores["temperature"]
    )
    outputs.write_predictions(run_dir / "predictions.npz", **arrays)

    summary: dict[str, Any] = {"status": "finished", **scores}
    summary["split"] = dict(p.split.info)
    summary.update(
        best_epoch=trainer.state.best_epoch,
        epochs_run=trainer.state.epoch,
        monitor=s.monitor,
        dataset={
            "name": p.data.name,
            "num_classes": p.data.num_classes,
            "image_size": p.data.image_size,
            "channels": p.data.channels,
            "train_size": len(p.train_y),
            "val_size": len(p.val_y),
            "test_size": len(p.data.test_y),
        },
        aug=spec.mixer.describe() if spec.mixer is not None else None,
        seed=spec.seed,
        **run_record(spec.config, spec.overrides),
        versions=versions(),
        device=device_name(trainer.device),
        processes=distributed.world_size(),  # > 1: DDP under torchrun
        deterministic=trainer.deterministic,
        compile_seconds=trainer.compile_seconds,
        started=started,
        train_time_s=train_seconds,
        eval_time_s=eval_seconds,
    )
    t_report = time.perf_counter()
    write_run_report(
        run_dir,
        summary=summary,
        history=trainer.state.history,
        probs=torch.from_numpy(arrays["probs"]),
        probs_ts=torch.from_numpy(arrays["probs_ts"]),
        labels=p.data.test_y,
        n_bins=spec.calibration_bins,
        split_arrays=p.split.arrays,
    )
    summary["report_time_s"] = time.perf_counter() - t_report
    summary["wall_time_s"] = time.perf_counter() - t0
    summary["finished"] = time.time()
    for logger in spec.loggers:
        logger.log_summary(summary, run_dir)
    outputs.write_json(run_dir / "summary.json", summary)
    return summary
