"""The Lightning contender: a `LightningModule` + `lightning.Trainer` on regx's model and data.

Set up the way lightning-hydra-template runs a model: a DataLoader over the in-memory
tensors (TensorDataset, shuffle, the run's batch size, no workers), the augmentation in
`training_step` on the batch (regx's own `crop_flip` on images padded once, exactly the
work the hand loop and regx do), SGD + cosine stepped per step from
`configure_optimizers`, loss and accuracy through `self.log(..., on_epoch=True)`, and no
progress bar, checkpointing, logger or model summary.

Lightning owns its loop, so the other contenders run inside it: a callback, at the start
of every `epochs_per_round`-th epoch, closes the Lightning round that just ended (wall and
CPU time since the previous round's start, so every per-epoch cost Lightning has is
counted once) and then calls `between(round)`, which times the other contenders.
Round 0 is everyone's warm-up.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable

import lightning as L
import torch
import torch.nn.functional as F

from benchlib.hand import LoopInputs, sgd_cosine
from benchlib.timing import Samples, Stopwatch, sync

VERSION = L.__version__


class BenchModule(L.LightningModule):
    def __init__(self, inputs: LoopInputs) -> None:
        super().__init__()
        self.inp = inputs
        self.model = inputs.model
        if inputs.channels_last:
            self.model.to(memory_format=torch.channels_last)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        xb, yb = batch
        xb = self.inp.prepare(xb)  # crop + flip + normalize, on the device regx trains on
        out = self.model(xb)
        loss = F.cross_entropy(out.float(), yb)
        self.log("train/loss", loss, on_step=False, on_epoch=True)
        self.log(
            "train/acc", (out.argmax(dim=1) == yb).float().mean(), on_step=False, on_epoch=True
        )
        return loss

    def configure_optimizers(self):
        inp = self.inp
        opt, sched = sgd_cosine(self.model, inp.optimizer, inp.epochs * inp.steps)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class Rounds(L.Callback):
    """Times Lightning's epochs in rounds and runs the other contenders between rounds."""

    def __init__(
        self, epochs_per_round: int, between: Callable[[int], None], device: torch.device
    ) -> None:
        self.k, self.between, self.device = epochs_per_round, between, device
        self.samples = Samples()
        self.watch: Stopwatch | None = None
        self.round = 0

    def _close_round(self) -> None:
        sync(self.device)
        if self.watch is not None and self.round > 0:  # round 0 is the warm-up
            self.samples.add(self.watch.lap(), self.k)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch % self.k:
            return
        self._close_round()
        self.round = trainer.current_epoch // self.k
        self.between(self.round)
        sync(self.device)
        self.watch = Stopwatch()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._close_round()


def run_rounds(
    inputs: LoopInputs, rounds: int, epochs_per_round: int, between: Callable[[int], None]
) -> Samples:
    """Train `rounds` × `epochs_per_round` Lightning epochs; seconds per epoch of rounds 1…"""
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    # the template's loader has no workers either; torch deprecations inside Lightning
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    cuda = inputs.device.type == "cuda"
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(inputs.x_padded.cpu(), inputs.y.cpu()),
        batch_size=inputs.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=0,
        pin_memory=cuda,
    )
    rounds_cb = Rounds(epochs_per_round, between, inputs.device)
    trainer = L.Trainer(
        accelerator="gpu" if cuda else "cpu",
        devices=1,
        max_epochs=rounds * epochs_per_round,
        precision="bf16-mixed" if inputs.bf16 else "32-true",
        enable_progress_bar=False,
        enable_checkpointing=False,
        logger=False,
        enable_model_summary=False,
        callbacks=[rounds_cb],
    )
    trainer.fit(BenchModule(inputs), train_dataloaders=loader)
    if trainer.global_step != rounds * epochs_per_round * inputs.steps:
        raise RuntimeError(
            f"Lightning took {trainer.global_step} steps, expected "
            f"{rounds * epochs_per_round} epochs × {inputs.steps}"
        )
    return rounds_cb.samples
