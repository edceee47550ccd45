"""One training run, start to finish: data → split → model → epochs → final evaluation → files.

The step does what a hand-written loop would and nothing more: the batch is already on
the device (uint8), augmentation and mixing are tensor ops there, and loss/accuracy
accumulate in device tensors that are read once per epoch (plus a cheap non-finite
check every `nan_check_every` steps).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from regx.aug.base import MixedBatch
from regx.data.augment import Normalize
from regx.data.batches import DeviceBatches, HostBatches
from regx.data.types import ImageData
from regx.engine import distributed, outputs
from regx.engine.checkpoint import (
    atomic_write_bytes,
    config_differences,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from regx.engine.device import (
    autocast,
    check_precision,
    configure_runtime,
    resolve_device,
    seed_everything,
)
from regx.engine.loggers import Trackers
from regx.engine.optim import build_optimizer, build_scheduler
from regx.engine.predict import predict
from regx.engine.progress import EpochProgress
from regx.engine.results import config_hash, finalize_run, write_status
from regx.engine.signals import StopRequest
from regx.engine.spec import RunSpec
from regx.errors import ConfigError, DivergedError, ResumeMismatchError, RunInterrupted
from regx.losses.base import EpochContext
from regx.metrics.calibration import basic_metrics
from regx.splits.base import Split

log = logging.getLogger("regx")

MONITORS = ("val_acc", "val_loss", "val_ece")
INIT_SAMPLE = 5000  # training images shown to a model's `init_from_data`


@dataclass
class TrainState:
    """What a checkpoint restores besides model/optimizer/scheduler weights."""

    epoch: int = 0  # epochs completed
    history: list[dict[str, Any]] = field(default_factory=list)
    best_key: tuple[float, ...] | None = None
    best_epoch: int | None = None
    stale_epochs: int = 0
    # Set when SIGINT/SIGTERM stopped training inside an epoch: that epoch, the next step
    # and the epoch's running sums, so a resumed run continues the epoch bit for bit.
    partial: dict[str, Any] | None = None


@dataclass
class Prepared:
    """The data of a run after the split, ready for the loop."""

    data: ImageData
    split: Split
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    val_weight: torch.Tensor | None
    train_weight: torch.Tensor | None


def prepare_data(spec: RunSpec, device: torch.device) -> Prepared:
    data = spec.dataset.load(seed=spec.seed)
    split = spec.split(data.train_x, data.train_y, data.test_x, spec.seed)
    if len(split.train_idx) == 0 or len(split.val_idx) == 0:
        raise ConfigError(
            "split",
            type(spec.split).__name__,
            f"left {len(split.train_idx)} training and {len(split.val_idx)} validation images; "
            "use more data (dataset.subset) or another split.val_fraction",
        )
    val_weight = None if split.val_weight is None else split.val_weight.to(device, torch.float32)
    train_weight = (
        None if split.train_weight is None else split.train_weight.to(device, torch.float32)
    )
    return Prepared(
        data=data,
        split=split,
        train_x=data.train_x[split.train_idx],
        train_y=data.train_y[split.train_idx],
        val_x=data.train_x[split.val_idx].to(device),
        val_y=data.train_y[split.val_idx].to(device),
        val_weight=val_weight,
        train_weight=train_weight,
    )


def build_model(spec: RunSpec, data: ImageData, device: torch.device) -> torch.nn.Module:
    try:
        model = spec.model_factory(
            num_classes=data.num_classes, in_channels=data.channels, image_size=data.image_size
        )
    except ConfigError as e:
        raise e.under("model") from None
    head = spec.loss.make_head(model.feature_dim, data.num_classes)
    if head is not None:
        model.head = head
    model.to(device)
    if spec.trainer.channels_last:
        model.to(memory_format=torch.channels_last)
    return model


def _cpu_has_bf16() -> bool:
    """Whether oneDNN has native bfloat16 kernels on this CPU (unknown: assume yes)."""
    probe = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        return bool(probe()) if probe is not None else True
    except RuntimeError:
        return True


def _monitor_key(row: dict[str, Any], monitor: str) -> tuple[float, ...]:
    """Larger is better; val_acc ties are broken by the lower validation loss."""
    if monitor == "val_acc":
        return (row["val_acc"], -row["val_loss"])
    return (-row[monitor],)


def _is_finite_key(key: tuple[float, ...]) -> bool:
    return all(math.isfinite(k) for k in key)


class Trainer:
    def __init__(self, spec: RunSpec, run_dir: Path) -> None:
        self.spec = spec
        self.s = spec.trainer
        self.run_dir = run_dir
        self.ckpt_dir = run_dir / "checkpoints"
        self.device = distributed.device_for_rank(resolve_device(self.s.device))
        check_precision(self.device, self.s.precision)
        if self.s.precision == "bf16" and self.device.type == "cpu" and not _cpu_has_bf16():
            log.warning(
                "trainer.precision=bf16: this CPU has no native bfloat16 (AVX512-BF16 or AMX); "
                "torch emulates it, so the run is usually slower than trainer.precision=32"
            )
        self.deterministic = configure_runtime(
            self.device, self.s.deterministic, self.s.threads, compiling=self.s.compile
        )
        seed_everything(spec.seed)
        self.prep = prepare_data(spec, self.device)
        data = self.prep.data
        self.model = build_model(spec, data, self.device)
        self.loss_fn = spec.loss.to(self.device)
        self.normalize = Normalize(data.mean, data.std, self.device, self.s.channels_last)
        init_from_data = getattr(self.model, "init_from_data", None)
        if callable(init_from_data):
            # data-dependent initialisation (e.g. AirNet's whitening first layer); a resumed
            # run overwrites it with the checkpoint's weights
            sample = self.prep.train_x[:INIT_SAMPLE].to(self.device)
            init_from_data(self.normalize(sample))
        self.batches = self._make_batches()
        self.optimizer = build_optimizer(self.model.parameters(), self.s.optimizer)
        self.scheduler = build_scheduler(
            self.optimizer, self.s.scheduler, self.s.epochs, len(self.batches)
        )
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.s.precision == "16")
        # under torchrun: DDP around the model (gradients averaged over the processes)
        ddp = distributed.wrap_model(self.model, self.device)
        self.step_model = torch.compile(ddp) if self.s.compile else ddp
        self.state = TrainState()
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.compile_seconds: float | None = None
        self._first_epoch_seconds: list[float] = []
        # SIGINT/SIGTERM set this flag (see train()); the loop reads it between steps.
        self.stop = StopRequest()
        # The run's .hydra/ files as first written, kept in checkpoints so that a refused
        # resume can put back what Hydra overwrote with the refused command's config.
        self.hydra_files = read_hydra_files(run_dir)
        # Loss and RNG state at a mid-epoch stop, re-applied after the resumed epoch's
        # `start_epoch` (which may re-estimate what the stopped run had already estimated).
        self._stopped_state: dict[str, Any] | None = None
        self.epoch_started = 0.0  # perf_counter() at the start of the current epoch

    # -- data ------------------------------------------------------------------
    def _make_batches(self) -> DeviceBatches | HostBatches:
        p = self.prep
        nbytes = p.train_x.numel() * p.train_x.element_size()
        on_device = self.s.data_on_device
        if on_device == "auto":
            # CPU: the "device" is host memory already. CUDA: keep data up to 25 % of the GPU.
            if self.device.type == "cuda":
                total = torch.cuda.get_device_properties(self.device).total_memory
                on_device = "always" if nbytes < 0.25 * total else "never"
            else:
                on_device = "always"
        cls_kwargs = dict(
            x=p.train_x,
            y=p.train_y,
            batch_size=self.s.batch_size,
            device=self.device,
            augment=self.spec.dataset.augment,
            seed=self.spec.seed,
            rank=distributed.rank(),
            world_size=distributed.world_size(),
        )
        distributed.check_batch_size(self.s.batch_size)
        if on_device == "always":
            return DeviceBatches(**cls_kwargs)
        return HostBatches(**cls_kwargs, num_workers=self.s.num_workers)

    def embed_train(self) -> tuple[torch.Tensor, torch.Tensor]:
        _, feats = predict(
            self.model,
            self.prep.train_x,
            self.normalize,
            self.device,
            self.s.eval_batch_size,
            self.s.precision,
            features=True,
        )
        return feats, self.prep.train_y.to(self.device)

    # -- checkpoints ---------------------------------------------------------------
    def checkpoint_state(self) -> dict[str, Any]:
        partial = self.state.partial
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "loss": self.loss_fn.state_dict(),
            "loss_extra": getattr(self.loss_fn, "extra_state", lambda: {})(),
            "train_state": vars(self.state).copy(),
            "best_weights": self.best_weights,
            "rng": rng_state(),
            "config_hash": config_hash(self.spec.config),
            "config": self.spec.config,
            "overrides": list(self.spec.overrides),
            "hydra_files": self.hydra_files,
            # Data order: the permutation of epoch e is a pure function of (seed, epoch),
            # so (seed, epoch, step) is all a resumed run needs to see the same batches.
            "data_order": {
                "seed": self.spec.seed,
                "epoch": partial["epoch"] if partial else self.state.epoch,
                "step": partial["step"] if partial else 0,
            },
        }

    def restore(self, path: Path) -> None:
        """Continue from the checkpoint at `path` (refused if it is another config's)."""
        self.restore_from(read_resume_checkpoint(self.spec, self.run_dir, path))

    def restore_from(self, ckpt: dict[str, Any]) -> None:
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.loss_fn.load_state_dict(ckpt["loss"])
        if hasattr(self.loss_fn, "load_extra_state"):
            self.loss_fn.load_extra_state(ckpt.get("loss_extra", {}))
        self.state = TrainState(**ckpt["train_state"])
        self.best_weights = ckpt.get("best_weights")
        set_rng_state(ckpt["rng"])
        self.hydra_files = ckpt.get("hydra_files") or self.hydra_files
        if self.state.partial is not None:
            self._stopped_state = {
                "loss": ckpt["loss"],
                "loss_extra": ckpt.get("loss_extra", {}),
                "rng": ckpt["rng"],
            }

    def save(self, best: bool) -> None:
        if not self.s.checkpoint or not distributed.is_main_process():
            return
        state = self.checkpoint_state()
        save_checkpoint(self.ckpt_dir / "last.pt", state)
        if best:
            save_checkpoint(
                self.ckpt_dir / "best.pt",
                {
                    "model": self.model.state_dict(),
                    "epoch": self.state.epoch,
                    "config_hash": state["config_hash"],
                },
            )

    # -- one epoch ---------------------------------------------------------------
    def train_epoch(self, epoch: int, progress: EpochProgress) -> dict[str, float]:
        s, dev = self.s, self.device
        model, loss_fn, opt, sched, scaler = (
            self.step_model,
            self.loss_fn,
            self.optimizer,
            self.scheduler,
            self.scaler,
        )
        scaling = scaler.is_enabled()
        mixer = self.spec.mixer
        mixing = mixer is not None and mixer.active(epoch, s.epochs)
        train_weight = self.prep.train_weight
        model.train()
        # Each step's mean loss is copied into this device buffer (one tiny op, no sync);
        # the epoch's loss, the periodic non-finite check and the divergence report all
        # read it, instead of ~10 scalar ops per step of running where()-bookkeeping.
        step_loss = torch.zeros(len(self.batches), device=dev)
        step_sizes: list[int] = []
        correct = torch.zeros((), device=dev, dtype=torch.long)
        lam_sum: float | torch.Tensor = 0.0
        n_mixed = seen = 0
        lr = opt.param_groups[0]["lr"]
        first_step = 0
        partial = self.state.partial
        if partial is not None and partial["epoch"] == epoch:
            # a signal stopped this epoch: continue its running sums from the next step
            first_step, lr = partial["step"], partial["lr"]
            n_mixed, seen = partial["n_mixed"], partial["seen"]
            step_loss.copy_(partial["step_loss"])
            step_sizes = list(partial["step_sizes"])
            correct.copy_(partial["correct"])
            lam_sum = partial["lam_sum"]
            if isinstance(lam_sum, torch.Tensor):
                lam_sum = lam_sum.to(dev)
            self.state.partial = None
        last_step = len(self.batches) - 1
        batches = self.batches.epoch(epoch, start=first_step)
        for step, (xb, yb, idx) in enumerate(batches, start=first_step):
            x = self.normalize(xb)
            mixed: MixedBatch | None = mixer(x, yb) if mixing else None
            if mixed is not None:
                x = mixed.inputs
                n_mixed += 1
                lam_sum = lam_sum + (
                    mixed.lam if isinstance(mixed.lam, float) else mixed.lam.float().mean()
                )
            with autocast(dev, s.precision):
                out = model(x)
            # mixed losses (λ·L(ŷ,y) + (1−λ)·L(ŷ,y[π])), never mixed labels: see aug/base.py
            per = loss_fn(out, yb) if mixed is None else mixed.loss(loss_fn, out, yb)
            if train_weight is not None:
                w = train_weight[idx]
                loss = (w * per).sum() / w.sum()
            else:
                loss = per.mean()
            opt.zero_grad(set_to_none=True)
            if scaling:
                scaler.scale(loss).backward()
                if s.grad_clip:
                    scaler.unscale_(opt)
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), s.grad_clip)
                scaler.step(opt)
                scaler.update()
            else:  # the plain step a hand-written loop takes (no float16 loss scaling)
                loss.backward()
                if s.grad_clip:
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), s.grad_clip)
                opt.step()
            sched.step()

            n = yb.shape[0]
            seen += n
            step_sizes.append(n)
            step_loss[step] = loss.detach()
            correct += (out.detach().argmax(dim=1) == yb).sum()
            if (step + 1) % s.nan_check_every == 0:
                self._check_finite(epoch, step_loss, step + 1)
            progress.advance()
            if self.stop.requested and step < last_step:  # a flag read: no host sync
                self._check_finite(epoch, step_loss, step + 1)
                sums = dict(step_loss=step_loss, step_sizes=step_sizes, correct=correct)
                sums.update(lam_sum=lam_sum)
                self._stop_inside_epoch(epoch, step + 1, lr, n_mixed, seen, sums)
        steps_done = len(step_sizes)
        self._check_finite(epoch, step_loss, steps_done)
        sizes = torch.tensor(step_sizes, dtype=torch.float32).to(dev, non_blocking=True)
        loss_total = (step_loss[:steps_done] * sizes).sum()
        loss_total, n_correct = torch.stack([loss_total, correct.float()]).tolist()  # one sync
        row = {
            "lr": lr,
            "train_loss": loss_total / max(seen, 1),
            "train_acc": n_correct / max(seen, 1),
        }
        if mixer is not None:
            batches = len(self.batches)
            row["mix_fraction"] = n_mixed / batches
            row["lam_mean"] = float(lam_sum) / n_mixed if n_mixed else float("nan")
        return row

    def _stop_inside_epoch(
        self,
        epoch: int,
        next_step: int,
        lr: float,
        n_mixed: int,
        seen: int,
        sums: dict[str, Any],
    ) -> None:
        """Checkpoint the middle of `epoch` (before `next_step`) and raise `RunInterrupted`."""
        self.state.partial = {
            "epoch": epoch,
            "step": next_step,
            "lr": lr,
            "n_mixed": n_mixed,
            "seen": seen,
            "seconds": time.perf_counter() - self.epoch_started,
            **{
                k: v.detach().to("cpu", copy=True) if isinstance(v, torch.Tensor) else v
                for k, v in sums.items()
            },
        }
        self.save(best=False)
        raise self._interrupted(f"epoch {epoch + 1}, step {next_step}/{len(self.batches)}")

    def _interrupted(self, where: str) -> RunInterrupted:
        kept = (
            f"checkpoint {self.ckpt_dir / 'last.pt'} saved"
            if self.s.checkpoint
            else "no checkpoint (trainer.checkpoint=false)"
        )
        return RunInterrupted(
            f"interrupted by {self.stop.signal_name} at {where}: {kept}; "
            f"continue with: regx train --resume {self.run_dir}",
            self.stop.signum or 2,
        )

    def _check_weights_finite(self, epoch: int) -> None:
        """Weights (and BN statistics) finite after the epoch: a NaN/Inf gradient shows up
        here even when every loss was finite, before it can reach a checkpoint."""
        tensors = [t for t in self.model.state_dict().values() if t.is_floating_point()]
        if tensors and not bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all()):
            raise DivergedError(
                f"training diverged: the weights became NaN/Inf during epoch {epoch + 1} "
                "(a NaN/Inf gradient); lower trainer.optimizer.lr, set trainer.grad_clip"
                + (" or use trainer.precision=32" if self.s.precision != "32" else "")
                + f"; {self._kept()}"
            )

    def _kept(self) -> str:
        """What a diverged run leaves behind, for its message."""
        done = self.state.epoch
        if done == 0:
            return "it diverged in the first epoch, so there is no checkpoint to keep"
        if not self.s.checkpoint:
            return f"metrics.csv of the {done} finished epoch(s) is kept (trainer.checkpoint=false)"
        return f"checkpoints/last.pt and metrics.csv of the {done} finished epoch(s) are kept"

    def _check_finite(self, epoch: int, step_loss: torch.Tensor, upto: int) -> None:
        """Raise `DivergedError` if a loss among the epoch's first `upto` steps is NaN/Inf."""
        losses = step_loss[:upto]
        if bool(torch.isfinite(losses).all()):  # one host sync per check
            return
        values = losses.cpu()
        step = int((~torch.isfinite(values)).nonzero()[0])
        last = float(values[step - 1]) if step > 0 else float("nan")
        raise DivergedError(
            f"training diverged: the loss became NaN/Inf at epoch {epoch + 1}, step {step + 1} "
            f"(last finite loss {last:.4g}); lower trainer.optimizer.lr"
            + (" or use trainer.precision=32" if self.s.precision != "32" else "")
            + f"; {self._kept()}"
        )

    def validate(self) -> dict[str, float]:
        p = self.prep
        logits, _ = predict(
            self.model,
            p.val_x,
            self.normalize,
            self.device,
            self.s.eval_batch_size,
            self.s.precision,
        )
        m = basic_metrics(logits.softmax(dim=1), p.val_y, self.spec.calibration_bins, p.val_weight)
        values = torch.stack([m["nll"], m["acc"], m["ece"]]).tolist()  # one host sync
        return dict(zip(("val_loss", "val_acc", "val_ece"), values))

    def test_accuracy(self) -> float:
        """Test accuracy now; for analysis only (`track_test`), never for model selection."""
        p = self.prep
        logits, _ = predict(
            self.model,
            p.data.test_x,
            self.normalize,
            self.device,
            self.s.eval_batch_size,
            self.s.precision,
        )
        return (logits.argmax(dim=1).cpu() == p.data.test_y).float().mean().item()

    def _note_compile_cost(self, epoch_seconds: float) -> None:
        """torch.compile's cold cost: this process's first epoch minus its second (the
        first epoch alone while only one has run), so a resumed run measures its own."""
        timed = self._first_epoch_seconds
        if len(timed) < 2:
            timed.append(epoch_seconds)
        self.compile_seconds = timed[0] - timed[1] if len(timed) == 2 else timed[0]

    # -- the loop ----------------------------------------------------------------
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
                partial = self.state.partial
                t0 = time.perf_counter() - (partial["seconds"] if partial else 0.0)
                self.epoch_started = t0
                distributed.seed_rank_streams(self.spec.seed, epoch)
                progress.start_epoch(epoch)
                self.loss_fn.start_epoch(EpochContext(epoch, s.epochs, self.embed_train))
                if partial is not None and self._stopped_state is not None:
                    # the stopped run had already started this epoch: its loss state and
                    # RNG at the stop win over what start_epoch just recomputed
                    stopped, self._stopped_state = self._stopped_state, None
                    self.loss_fn.load_state_dict(stopped["loss"])
                    if hasattr(self.loss_fn, "load_extra_state"):
                        self.loss_fn.load_extra_state(stopped["loss_extra"])
                    set_rng_state(stopped["rng"])
                row: dict[str, Any] = {"epoch": epoch + 1}
                row.update(distributed.mean_over_ranks(self.train_epoch(epoch, progress)))
                self._check_weights_finite(epoch)
                # rank 0 validates; all ranks then take the same best/early-stop decisions
                row.update(distributed.broadcast_from_main(self.validate() if main else None))
                row.update(self.loss_fn.epoch_stats())
                row["seconds"] = time.perf_counter() - t0
                if self.spec.track_test:
                    row["test_acc"] = self.test_accuracy()
                if self.s.compile:
                    self._note_compile_cost(row["seconds"])
                self.state.epoch = epoch + 1
                self.state.history.append(row)
                key = _monitor_key(row, s.monitor)
                improved = _is_finite_key(key) and (
                    self.state.best_key is None or key > tuple(self.state.best_key)
                )
                if improved:
                    self.state.best_key, self.state.best_epoch = key, epoch + 1
                    self.state.stale_epochs = 0
                    self.best_weights = {
                        k: v.detach().to("cpu", copy=True)
                        for k, v in self.model.state_dict().items()
                    }
                else:
                    self.state.stale_epochs += 1
                if main:
                    outputs.write_metrics_csv(self.run_dir / "metrics.csv", self.state.history)
                    for logger in self.spec.loggers:
                        logger.log_epoch(row)
                self.save(best=improved)
                log.info(_epoch_line(row, s.epochs, improved))
                if self.stop.requested and epoch + 1 < s.epochs:
                    raise self._interrupted(f"the end of epoch {epoch + 1}")

    def load_best(self) -> None:
        if self.best_weights is not None:
            self.model.load_state_dict(copy.deepcopy(self.best_weights))


def _epoch_line(row: dict[str, Any], epochs: int, improved: bool) -> str:
    extras = "".join(
        f"  {k} {row[k]:.3g}"
        for k in ("gamma", "margin", "lam_mean")
        if k in row and row[k] == row[k]
    )
    return (
        f"epoch {row['epoch']:>3}/{epochs}  loss {row['train_loss']:.4f}  acc {100 * row['train_acc']:.2f}"
        f"  | val loss {row['val_loss']:.4f}  acc {100 * row['val_acc']:.2f}  ece {100 * row['val_ece']:.2f}"
        f"{extras}  {row['seconds']:.1f}s{'  *' if improved else ''}"
    )


HYDRA_FILES = ("config.yaml", "hydra.yaml", "overrides.yaml")


def read_hydra_files(run_dir: Path) -> dict[str, str]:
    """The text of the run's .hydra/*.yaml (empty outside Hydra, e.g. in-process tests)."""
    folder = run_dir / ".hydra"
    return {n: (folder / n).read_text() for n in HYDRA_FILES if (folder / n).is_file()}


def _put_back_hydra_files(run_dir: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        atomic_write_bytes(run_dir / ".hydra" / name, lambda f, t=text: f.write(t.encode()))


def read_resume_checkpoint(
    spec: RunSpec, run_dir: Path, path: Path | None = None
) -> dict[str, Any] | None:
    """The checkpoint a run continues from, or None for a fresh start.

    With `trainer.resume=auto` that is `checkpoints/last.pt` in the run dir, if present.
    It must come from the same config up to settings that do not change the numbers
    (`RESUME_FREE_KEYS`); otherwise the resume is refused with the differing settings,
    and the run's .hydra/ files, which Hydra has already overwritten with this command's
    config, are put back.
    """
    if path is None:
        path = run_dir / "checkpoints" / "last.pt"
        if spec.trainer.resume != "auto" or not path.is_file():
            return None
    ckpt = load_checkpoint(path, map_location="cpu")
    if "config" in ckpt:
        differences = config_differences(ckpt["config"], spec.config)
    elif ckpt.get("config_hash") != config_hash(spec.config):
        differences = [f"config hash {ckpt.get('config_hash')} → {config_hash(spec.config)}"]
    else:
        differences = []
    if differences:
        _put_back_hydra_files(run_dir, ckpt.get("hydra_files") or {})
        raise ResumeMismatchError(
            "trainer.resume",
            spec.trainer.resume,
            f"{path} was written with a different config ({'; '.join(differences)}): "
            f"re-run with the run's own overrides (regx train --resume {run_dir}), "
            "use another run dir, or pass trainer.resume=never to start this one over",
        )
    return ckpt


def train(spec: RunSpec, run_dir: Path) -> dict[str, Any]:
    """Train, evaluate and write every file of the run; returns summary.json's content.

    summary.json says `running` from the start (after a resume was accepted), then
    `finished`, `diverged` or `interrupted`: a run killed outright is left `running`.
    """
    started = time.time()
    t0 = time.perf_counter()
    run_dir.mkdir(parents=True, exist_ok=True)
    # before loading any data: a refused resume should cost nothing
    resume_from = read_resume_checkpoint(spec, run_dir)
    trainer = Trainer(spec, run_dir)
    if resume_from is not None:
        trainer.restore_from(resume_from)
        where = trainer.state.partial or {"epoch": trainer.state.epoch, "step": 0}
        log.info(
            "resumed %s at epoch %d, step %d",
            run_dir / "checkpoints" / "last.pt",
            where["epoch"] + 1,
            where["step"],
        )
        del resume_from
    main = distributed.is_main_process()  # several processes (torchrun): rank 0 writes files
    with trainer.stop, Trackers(spec.loggers if main else [], run_dir, spec.config):
        write_status(run_dir, "running", "training", trainer.state, started)
        try:
            trainer.fit()
        except (DivergedError, RunInterrupted) as e:
            status = "diverged" if isinstance(e, DivergedError) else "interrupted"
            write_status(run_dir, status, str(e), trainer.state, started)
            raise
        train_seconds = time.perf_counter() - t0
        trainer.load_best()
        summary = (
            finalize_run(trainer, started=started, train_seconds=train_seconds, t0=t0)
            if main
            else {}
        )
    if trainer.stop.requested:
        log.warning("%s arrived after the last epoch; the run finished", trainer.stop.signal_name)
    return summary
