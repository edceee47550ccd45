"""The training loop: epochs of steps, validation, the best checkpoint, a clean stop.

A step does what a hand-written loop would and nothing more: the batch is already on the
device (uint8), augmentation and mixing are tensor ops there, and loss/accuracy accumulate
in device tensors read once per epoch (plus a cheap non-finite check every
`nan_check_every` steps and, on a terminal, the progress bar's read at most every 0.5 s).
Side effects beyond the loop's own files live in hooks.
"""

from __future__ import annotations

import logging
import math
import shlex
import time
from pathlib import Path
from typing import Any

import torch

from regx.data.augment import Normalize
from regx.engine import distributed, outputs
from regx.engine.best import BestTracker
from regx.engine.checkpoint import rng_state, save_checkpoint, set_rng_state
from regx.engine.device import (
    check_precision,
    configure_runtime,
    resolve_device,
    seed_everything,
    use_channels_last,
)
from regx.engine.divergence import check_losses, check_weights, kept_files
from regx.engine.files import read_hydra_files
from regx.engine.hooks import CompileTimer, RunHook, TrackNoise, TrackTest
from regx.engine.idle_settings import warn_idle_settings
from regx.engine.optim import build_optimizer, build_scheduler, load_optimizer_state
from regx.engine.predict import predict
from regx.engine.progress import EpochProgress
from regx.engine.setup import build_model, cpu_has_bf16, make_batches, prepare_data
from regx.engine.signals import StopRequest
from regx.engine.spec import RunSpec
from regx.engine.state import EpochSums, PausedEpoch, TrainState
from regx.engine.step import ScaledTrainStep, TrainStep
from regx.errors import RunInterrupted
from regx.keys import config_hash
from regx.losses.base import EpochContext
from regx.metrics.calibration import basic_metrics
from regx.metrics.memorization import noise_metrics

log = logging.getLogger("regx")

INIT_SAMPLE = 5000  # training images shown to a model's `init_from_data`


class Trainer:
    def __init__(self, spec: RunSpec, run_dir: Path) -> None:
        self.spec, self.s, self.run_dir = spec, spec.trainer, run_dir
        self.ckpt_dir = run_dir / "checkpoints"
        # first, on every rank alike: a rank that failed later (after its data) would be
        # ended by torchrun, and report that instead of the cause
        distributed.check_batch_size(self.s.batch_size)
        self.device = distributed.device_for_rank(resolve_device(self.s.device))
        self._configure_runtime()
        self.prep = prepare_data(spec, self.device)
        self.model = build_model(spec, self.prep.data, self.device)
        self.loss_fn = spec.loss.to(self.device)
        data = self.prep.data
        channels_last = use_channels_last(self.s.channels_last, self.device)
        self.normalize = Normalize(data.mean, data.std, self.device, channels_last)
        # data-dependent initialisation (e.g. AirNet's whitening first layer); a resumed run
        # overwrites it with the checkpoint's weights
        self.model.init_from_data(
            lambda: self.normalize(self.prep.train_x[:INIT_SAMPLE].to(self.device))
        )
        if spec.mixer is not None:
            spec.mixer.bind(self.model)
        warn_idle_settings(spec, *self.prep.train_x.shape[-2:])
        self.batches = make_batches(spec, self.prep, self.device)
        self._build_optimization()
        self.state = TrainState()
        self.best = BestTracker(self.s.monitor)
        self.compile_timer = CompileTimer() if self.s.compile else None
        self.hooks: list[RunHook] = [
            *([TrackTest()] if spec.track_test else []),
            *([self.compile_timer] if self.compile_timer else []),
            *self._noise_hooks(),
            *spec.hooks,
        ]
        self.stop = StopRequest()  # SIGINT/SIGTERM set its flag; the loop reads it between steps
        # The run's .hydra/ files as first written, kept in checkpoints so that a refused
        # resume can put back what Hydra overwrote with the refused command's config.
        self.hydra_files = read_hydra_files(run_dir)
        # Loss state and RNG at a mid-epoch stop, re-applied after the resumed epoch's
        # `start_epoch` (which may re-estimate what the stopped run had already estimated).
        self._paused_loss_rng: tuple[dict[str, Any], dict[str, Any]] | None = None
        self.last_loss = math.nan  # the last step's loss of the last epoch (divergence lines)

    def _noise_hooks(self) -> list[RunHook]:
        """Memorization tracking under label noise (no extra pass without noise)."""
        if not self.prep.noisy:
            return []
        record = {
            **self.prep.data.info.get("label_noise", {}),
            "clean_val": self.spec.split.clean_val,
        }
        return [TrackNoise(self.spec.analysis.noise_track_every, self.s.epochs, record)]

    def _configure_runtime(self) -> None:
        check_precision(self.device, self.s.precision)
        if self.s.precision == "bf16" and self.device.type == "cpu" and not cpu_has_bf16():
            log.warning(
                "trainer.precision=bf16: this CPU has no native bfloat16 (AVX512-BF16 or AMX); "
                "torch emulates it, so the run is usually slower than trainer.precision=32"
            )
        self.deterministic = configure_runtime(
            self.device,
            self.s.deterministic,
            self.s.threads,
            compiling=self.s.compile,
            reuse_host_memory=self.s.reuse_host_memory,
        )
        seed_everything(self.spec.seed)

    def _build_optimization(self) -> None:
        s = self.s
        self.optimizer = build_optimizer(self.model.parameters(), s.optimizer)
        self.scheduler = build_scheduler(self.optimizer, s.scheduler, s.epochs, len(self.batches))
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=s.precision == "16")
        # under torchrun: DDP around the model (gradients averaged over the processes)
        ddp = distributed.wrap_model(self.model, self.device)
        step_model = torch.compile(ddp) if s.compile else ddp
        args = (step_model, self.loss_fn, self.optimizer, self.scheduler, self.device)
        kwargs = dict(precision=s.precision, grad_clip=s.grad_clip)
        if self.scaler.is_enabled():
            self.train_step: TrainStep = ScaledTrainStep(*args, scaler=self.scaler, **kwargs)
        else:
            self.train_step = TrainStep(*args, **kwargs)

    # -- checkpoints ---------------------------------------------------------------
    def checkpoint_state(self) -> dict[str, Any]:
        paused = self.state.paused
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "loss": self.loss_fn.state_dict(),
            "train_state": self.state.to_dict(),
            "best_weights": self.best.weights,
            "rng": rng_state(),
            "config_hash": config_hash(self.spec.config),
            "config": self.spec.config,
            "overrides": list(self.spec.overrides),
            "hydra_files": self.hydra_files,
            # Data order: the permutation of epoch e is a pure function of (seed, epoch),
            # so (seed, epoch, step) is all a resumed run needs to see the same batches.
            "data_order": {
                "seed": self.spec.seed,
                "epoch": paused.epoch if paused else self.state.epoch,
                "step": paused.next_step if paused else 0,
            },
        }

    def restore_from(self, ckpt: dict[str, Any]) -> None:
        self.model.load_state_dict(ckpt["model"])
        load_optimizer_state(self.optimizer, ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.loss_fn.load_state_dict(ckpt["loss"])
        self.state = TrainState.from_dict(ckpt["train_state"])
        self.best.weights = ckpt.get("best_weights")
        set_rng_state(ckpt["rng"])
        self.hydra_files = ckpt.get("hydra_files") or self.hydra_files
        if self.state.paused is not None:
            self._paused_loss_rng = (ckpt["loss"], ckpt["rng"])

    def save(self, best: bool) -> None:
        if not self.s.checkpoint or not distributed.is_main_process():
            return
        state = self.checkpoint_state()
        save_checkpoint(self.ckpt_dir / "last.pt", state)
        if best:
            best_state = {
                "model": self.model.state_dict(),
                "epoch": self.state.epoch,
                "config_hash": state["config_hash"],
            }
            save_checkpoint(self.ckpt_dir / "best.pt", best_state)

    # -- evaluation during training ---------------------------------------------------
    def predict_images(self, images: torch.Tensor, features: bool = False) -> tuple[Any, Any]:
        s = self.s
        return predict(
            self.model,
            images,
            self.normalize,
            self.device,
            s.eval_batch_size,
            s.precision,
            features,
        )

    def embed_train(self) -> tuple[torch.Tensor, torch.Tensor]:
        _, feats = self.predict_images(self.prep.train_x, features=True)
        return feats, self.prep.train_y.to(self.device)

    def validate(self) -> dict[str, float]:
        p = self.prep
        logits, _ = self.predict_images(p.val_x)
        m = basic_metrics(logits.softmax(dim=1), p.val_y, self.spec.calibration_bins, p.val_weight)
        values = torch.stack([m["nll"], m["acc"], m["ece"]]).tolist()  # one host sync
        return dict(zip(("val_loss", "val_acc", "val_ece"), values))

    def noise_metrics(self) -> dict[str, float]:
        """Memorization of the flipped training labels, on unmixed images in eval mode."""
        logits, _ = self.predict_images(self.prep.train_x)
        return noise_metrics(logits, self.prep.train_y, self.prep.train_clean_y)

    def test_accuracy(self) -> float:
        """Test accuracy now; for analysis only (`track_test`), never for model selection."""
        logits, _ = self.predict_images(self.prep.data.test_x)
        return (logits.argmax(dim=1).cpu() == self.prep.data.test_y).float().mean().item()

    # -- one epoch ---------------------------------------------------------------
    def _epoch_sums(self, epoch: int) -> tuple[EpochSums, int]:
        """Fresh sums, or those of the epoch a signal stopped, and the step to start at."""
        paused = self.state.paused
        if paused is not None and paused.epoch == epoch:
            self.state.paused = None
            return paused.sums.to(self.device), paused.next_step
        lr = self.optimizer.param_groups[0]["lr"]
        return EpochSums.fresh(len(self.batches), self.device, lr), 0

    def train_epoch(self, epoch: int, progress: EpochProgress) -> dict[str, float]:
        mixer = self.spec.mixer
        mixing = mixer is not None and mixer.active(epoch, self.s.epochs)
        train_weight = self.prep.train_weight
        sums, first_step = self._epoch_sums(epoch)
        self.train_step.model.train()
        for step, (xb, yb, idx) in enumerate(
            self.batches.epoch(epoch, start=first_step), first_step
        ):
            x = self.normalize(xb)
            mixed = mixer(x, yb) if mixing else None
            if mixed is not None:
                x = mixed.inputs
                sums.n_mixed += 1
                lam = mixed.lam
                sums.lam_sum = sums.lam_sum + (
                    lam if isinstance(lam, float) else lam.float().mean()
                )
            weight = None if train_weight is None else train_weight[idx]
            loss, out = self.train_step(x, yb, mixed, weight)
            sums.seen += yb.shape[0]
            sums.step_sizes.append(yb.shape[0])
            sums.step_loss[step] = loss
            sums.correct += (out.argmax(dim=1) == yb).sum()
            if (step + 1) % self.s.nan_check_every == 0:
                self._check_losses(epoch, sums, step + 1)
            progress.advance(sums)
            if self.stop.requested and step < len(self.batches) - 1:  # a flag read: no sync
                self._stop_inside_epoch(epoch, step + 1, sums)
        self._check_losses(epoch, sums, len(sums.step_sizes))
        return self._epoch_row(sums, mixer is not None)

    def _epoch_row(self, sums: EpochSums, has_mixer: bool) -> dict[str, float]:
        sizes = torch.tensor(sums.step_sizes, dtype=torch.float32).to(
            self.device, non_blocking=True
        )
        n = len(sums.step_sizes)
        loss_total = (sums.step_loss[:n] * sizes).sum()
        stacked = torch.stack([loss_total, sums.correct.float(), sums.step_loss[n - 1]])
        loss_total, n_correct, self.last_loss = stacked.tolist()  # one sync
        seen = max(sums.seen, 1)
        row = {"lr": sums.lr, "train_loss": loss_total / seen, "train_acc": n_correct / seen}
        if has_mixer:
            row["mix_fraction"] = sums.n_mixed / len(self.batches)
            row["lam_mean"] = float(sums.lam_sum) / sums.n_mixed if sums.n_mixed else math.nan
        return row

    def _kept(self) -> str:
        return kept_files(self.state.epoch, self.s.checkpoint)

    def _check_losses(self, epoch: int, sums: EpochSums, upto: int) -> None:
        check_losses(sums.step_loss, upto, epoch, self.s.precision, self._kept(), self.last_loss)

    def _stop_inside_epoch(self, epoch: int, next_step: int, sums: EpochSums) -> None:
        """Checkpoint the middle of `epoch` (before `next_step`) and raise `RunInterrupted`."""
        self._check_losses(epoch, sums, next_step)
        seconds = time.perf_counter() - self.epoch_started
        self.state.paused = PausedEpoch(epoch, next_step, sums.to("cpu"), seconds)
        self.save(best=False)
        raise self.interrupted(f"epoch {epoch + 1}, step {next_step}/{len(self.batches)}")

    def interrupted(self, where: str) -> RunInterrupted:
        kept = (
            f"checkpoint {self.ckpt_dir / 'last.pt'} saved"
            if self.s.checkpoint
            else "no checkpoint (trainer.checkpoint=false)"
        )
        return RunInterrupted(
            f"interrupted by {self.stop.signal_name} at {where}: {kept}; "
            f"continue with: regx train --resume {shlex.quote(str(self.run_dir))}",
            self.stop.signum or 2,
        )

    # -- the loop ----------------------------------------------------------------
    def _start_epoch(self, epoch: int, progress: EpochProgress) -> None:
        paused = self.state.paused
        self.epoch_started = time.perf_counter() - (paused.seconds if paused else 0.0)
        distributed.seed_rank_streams(self.spec.seed, epoch)
        progress.start_epoch(epoch)
        self.loss_fn.start_epoch(EpochContext(epoch, self.s.epochs, self.embed_train))
        if paused is not None and self._paused_loss_rng is not None:
            # the stopped run had already started this epoch: its loss state and RNG at
            # the stop win over what start_epoch just recomputed
            loss_state, rng = self._paused_loss_rng
            self._paused_loss_rng = None
            self.loss_fn.load_state_dict(loss_state)
            set_rng_state(rng)

    def _finish_epoch(self, epoch: int, row: dict[str, Any], main: bool) -> bool:
        """Validate, log and checkpoint the epoch; True if it is the new best."""
        steps = len(self.batches)
        check_weights(self.model, epoch, self.s.precision, self._kept(), self.last_loss, steps)
        # rank 0 validates; all ranks then take the same best/early-stop decisions
        row.update(distributed.broadcast_from_main(self.validate() if main else None))
        row.update(self.loss_fn.epoch_stats())
        row["seconds"] = time.perf_counter() - self.epoch_started
        for hook in self.hooks:
            row.update(hook.epoch_metrics(self, epoch))
        self.state.epoch = epoch + 1
        self.state.history.append(row)
        improved = self.best.update(self.state, row, self.model)
        if main:
            outputs.write_metrics_csv(self.run_dir / "metrics.csv", self.state.history)
            for logger in self.spec.loggers:
                logger.log_epoch(row)
        self.save(best=improved)
        for hook in self.hooks:
            hook.after_epoch(row)
        return improved

    def fit(self) -> None:
        """Train the remaining epochs (all of them, or those after a restored checkpoint).

        SIGINT/SIGTERM (while `self.stop` is entered) stop after the current step with a
        checkpoint, raising `RunInterrupted`.
        """
        s = self.s
        main = distributed.is_main_process()  # several processes: only rank 0 writes files
        with EpochProgress(len(self.batches), s.epochs, enabled=s.progress and main) as progress:
            for epoch in range(self.state.epoch, s.epochs):
                if self.state.stale_epochs >= (s.early_stop or math.inf):
                    break
                self._start_epoch(epoch, progress)
                row: dict[str, Any] = {"epoch": epoch + 1}
                row.update(distributed.mean_over_ranks(self.train_epoch(epoch, progress)))
                improved = self._finish_epoch(epoch, row, main)
                shown = (*self.loss_fn.epoch_stats(), "lam_mean")  # the loss's own values
                log.info(epoch_line(row, s.epochs, improved, shown))
                if self.stop.requested and epoch + 1 < s.epochs:
                    raise self.interrupted(f"the end of epoch {epoch + 1}")


def epoch_line(
    row: dict[str, Any], epochs: int, improved: bool, extras: tuple[str, ...] = ()
) -> str:
    """The epoch's console line; `extras`: more keys of `row` to show where they are numbers."""
    shown = "".join(f"  {k} {row[k]:.3g}" for k in extras if k in row and row[k] == row[k])
    return (
        f"epoch {row['epoch']:>3}/{epochs}  loss {row['train_loss']:.4f}  acc {100 * row['train_acc']:.2f}"
        f"  | val loss {row['val_loss']:.4f}  acc {100 * row['val_acc']:.2f}  ece {100 * row['val_ece']:.2f}"
        f"{shown}  {row['seconds']:.1f}s{'  *' if improved else ''}"
    )
