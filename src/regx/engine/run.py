"""One training run, start to finish: a resume check, the Trainer's epochs, the final
scoring and every file of the run directory."""

from __future__ import annotations

import logging
import os
import platform
import time
from pathlib import Path
from typing import Any

from regx.engine import distributed, files, outputs
from regx.engine.environment import device_name, versions
from regx.engine.loggers import Trackers
from regx.engine.resume import read_resume_checkpoint
from regx.engine.scoring import (
    Evaluation,
    ReportInputs,
    dataset_record,
    score_model,
    write_run_outputs,
)
from regx.engine.spec import RunSpec
from regx.engine.state import TrainState
from regx.engine.trainer import Trainer
from regx.errors import DivergedError, RunInterrupted, RunPruned
from regx.keys import config_hash
from regx.report.figure_worker import FigureWorker

log = logging.getLogger("regx")

# summary.json's status for a run the loop stopped before its last epoch
STOPPED_STATUS = {DivergedError: "diverged", RunInterrupted: "interrupted", RunPruned: "pruned"}


def write_status(
    run_dir: Path, status: str, message: str, state: TrainState, started: float
) -> None:
    """summary.json for a run in progress (running) or one that did not finish (diverged,
    interrupted, pruned, failed)."""
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


def trained_evaluation(trainer: Trainer) -> Evaluation:
    p, s = trainer.prep, trainer.s
    return Evaluation(
        model=trainer.model,
        normalize=trainer.normalize,
        device=trainer.device,
        batch_size=s.eval_batch_size,
        precision=s.precision,
        n_bins=trainer.spec.calibration_bins,
        test_x=p.data.test_x,
        test_y=p.data.test_y,
        val_x=p.val_x,
        val_y=p.val_y,
        val_weight=p.val_weight,
        loss_fn=trainer.loss_fn,
        analysis=trainer.spec.analysis,
        between=trainer.spec.between,
        seed=trainer.spec.seed,
        classes=list(p.data.classes),
        open_x=p.data.open_x,
        open_y=p.data.open_y,
        open_classes=list(p.data.open_classes),
    )


def training_label_arrays(trainer: Trainer) -> dict[str, Any]:
    """predictions.npz's training-label arrays under label noise (aligned with the training
    images, i.e. the split's train_idx), so `noise` can be recomputed outside regx."""
    p = trainer.prep
    if not p.noisy:
        return {}
    logits, _ = trainer.predict_images(p.train_x)
    return {
        "train_idx": p.split.train_idx.cpu().numpy(),
        "train_noisy_mask": (p.train_y != p.train_clean_y).cpu().numpy(),
        "train_true_labels": p.train_clean_y.cpu().numpy(),
        "train_given_labels": p.train_y.cpu().numpy(),
        "train_logits": logits.cpu().numpy().astype("float32"),
    }


def finalize_run(
    trainer: Trainer,
    started: float,
    phases: dict[str, float],
    t0: float,
    figures: FigureWorker | None = None,
) -> dict[str, Any]:
    """Score the best weights and write predictions, report and summary.json.

    `phases`: wall seconds of setup and the training loop; summary.json `timings` adds the
    scoring phases and the report's (scripts/whole_run.py prints them as shares of a run).
    """
    spec, p = trainer.spec, trainer.prep
    ev = trained_evaluation(trainer)
    scored = score_model(ev)
    summary: dict[str, Any] = {"status": "finished", **scored.sections, "split": dict(p.split.info)}
    summary["shift"] = p.data.info.get("test_shift", {"mode": "none"})
    summary.update(
        best_epoch=trainer.state.best_epoch,
        epochs_run=trainer.state.epoch,
        monitor=trainer.s.monitor,
        dataset=dataset_record(p.data, len(p.train_y), len(p.val_y)),
        aug=spec.mixer.describe() if spec.mixer is not None else None,
        seed=spec.seed,
        config_hash=config_hash(spec.config),
        overrides=list(spec.overrides),
        versions=versions(),
        device=device_name(trainer.device),
        processes=distributed.world_size(),  # > 1: DDP under torchrun
        deterministic=trainer.deterministic,
        compile_seconds=trainer.compile_timer.seconds if trainer.compile_timer else None,
    )
    for hook in trainer.hooks:
        summary.update(hook.summary(trainer))
    train_seconds = phases["setup"] + phases["train_loop"]
    summary.update(started=started, train_time_s=train_seconds, eval_time_s=scored.seconds)
    summary["timings"] = {f"{k}_s": v for k, v in {**phases, **scored.phase_seconds}.items()}
    report = ReportInputs(history=trainer.state.history, split_arrays=p.split.arrays)
    arrays = training_label_arrays(trainer)
    return write_run_outputs(
        trainer.run_dir, ev, scored, summary, report, t0, spec.loggers, arrays, figures
    )


def _finished_summary(run_dir: Path) -> dict[str, Any] | None:
    """summary.json if it already says `finished` (a signal after it was written)."""
    summary = files.summary_of(run_dir)
    return summary if summary is not None and summary.get("status") == "finished" else None


def _log_resumed(trainer: Trainer, run_dir: Path) -> None:
    paused = trainer.state.paused
    epoch, step = (paused.epoch, paused.next_step) if paused else (trainer.state.epoch, 0)
    log.info(
        "resumed %s at epoch %d, step %d", run_dir / "checkpoints" / "last.pt", epoch + 1, step
    )


def train(spec: RunSpec, run_dir: Path, figures: FigureWorker | None = None) -> dict[str, Any]:
    """Train, evaluate and write every file of the run; returns summary.json's content.
    `figures`: a worker that draws the report's figures (inline without one).

    summary.json says `running` from the start (after a resume was accepted), then
    `finished`, `diverged`, `interrupted` or `pruned`: a run killed outright is left
    `running`.
    """
    started, t0 = time.time(), time.perf_counter()
    run_dir.mkdir(parents=True, exist_ok=True)
    # before loading any data: a refused resume should cost nothing
    resume_from = read_resume_checkpoint(spec, run_dir)
    trainer = Trainer(spec, run_dir)
    setup_seconds = time.perf_counter() - t0  # data, split, model, optimizer
    if resume_from is not None:
        trainer.restore_from(resume_from)
        _log_resumed(trainer, run_dir)
        del resume_from
    main = distributed.is_main_process()  # several processes (torchrun): rank 0 writes files
    with trainer.stop, Trackers(spec.loggers if main else [], run_dir, spec.config):
        write_status(run_dir, "running", "training", trainer.state, started)
        try:
            trainer.fit()
        except tuple(STOPPED_STATUS) as e:
            status = next(v for k, v in STOPPED_STATUS.items() if isinstance(e, k))
            write_status(run_dir, status, str(e), trainer.state, started)
            raise
        train_seconds = time.perf_counter() - t0
        trainer.best.load_into(trainer.model)
        phases = {"setup": setup_seconds, "train_loop": train_seconds - setup_seconds}
        # scoring has no step to stop at: a signal now stops the run where it is
        trainer.stop.raise_at_once(lambda: trainer.interrupted("the scoring after training"))
        try:
            summary = finalize_run(trainer, started, phases, t0, figures) if main else {}
        except RunInterrupted as e:
            summary = _finished_summary(run_dir)
            if summary is None:  # not written yet: the run stops here
                write_status(run_dir, "interrupted", str(e), trainer.state, started)
                raise
    if trainer.stop.requested:
        log.warning("%s arrived after the last epoch; the run finished", trainer.stop.signal_name)
    return summary
