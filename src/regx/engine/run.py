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
from regx.data.base import ImageData
from regx.data.batches import DeviceBatches, HostBatches
from regx.engine import outputs
from regx.engine.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from regx.engine.device import (
    autocast,
    check_precision,
    configure_runtime,
    resolve_device,
    seed_everything,
)
from regx.engine.optim import build_optimizer, build_scheduler
from regx.engine.predict import predict
from regx.engine.progress import EpochProgress
from regx.engine.results import config_hash, finalize_run, write_status
from regx.engine.spec import RunSpec
from regx.errors import ConfigError, DivergedError
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
        self.device = resolve_device(self.s.device)
        check_precision(self.device, self.s.precision)
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
        self.step_model = torch.compile(self.model) if self.s.compile else self.model
        self.state = TrainState()
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.compile_seconds: float | None = None
        self._first_epoch_seconds: list[float] = []

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
        )
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
        }

    def restore(self, path: Path) -> None:
        ckpt = load_checkpoint(path, map_location=self.device)
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

    def save(self, best: bool) -> None:
        if not self.s.checkpoint:
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
        for step, (xb, yb, idx) in enumerate(self.batches.epoch(epoch)):
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
            + "; the last good checkpoint and metrics.csv are kept"
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
        s = self.s
        if s.resume == "auto" and (self.ckpt_dir / "last.pt").is_file():
            self.restore(self.ckpt_dir / "last.pt")
            log.info("resumed from %s after epoch %d", self.ckpt_dir / "last.pt", self.state.epoch)
        with EpochProgress(len(self.batches), s.epochs, enabled=s.progress) as progress:
            for epoch in range(self.state.epoch, s.epochs):
                if self.state.stale_epochs >= (s.early_stop or math.inf):
                    break
                t0 = time.perf_counter()
                progress.start_epoch(epoch)
                self.loss_fn.start_epoch(EpochContext(epoch, s.epochs, self.embed_train))
                row: dict[str, Any] = {"epoch": epoch + 1}
                row.update(self.train_epoch(epoch, progress))
                row.update(self.validate())
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
                outputs.write_metrics_csv(self.run_dir / "metrics.csv", self.state.history)
                for logger in self.spec.loggers:
                    logger.log_epoch(row)
                self.save(best=improved)
                log.info(_epoch_line(row, s.epochs, improved))

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


def train(spec: RunSpec, run_dir: Path) -> dict[str, Any]:
    """Train, evaluate and write every file of the run; returns summary.json's content."""
    started = time.time()
    t0 = time.perf_counter()
    run_dir.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(spec, run_dir)
    for logger in spec.loggers:
        logger.start(run_dir, spec.config)
    try:
        trainer.fit()
    except DivergedError as e:
        write_status(run_dir, "diverged", str(e), trainer.state, started)
        raise
    train_seconds = time.perf_counter() - t0
    trainer.load_best()
    return finalize_run(trainer, started=started, train_seconds=train_seconds, t0=t0)
