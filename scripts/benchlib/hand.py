"""What a careful user writes for the same job, and the inputs every contender shares.

The hand loop: data on the device, a batched crop and flip, normalize, forward, mean
cross-entropy, backward, SGD step, LR step. It calls regx's own `crop_flip` (a plain
tensor function a user could import too), so the ratio isolates what the loop around the
model costs, not the augmentation.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from regx.data.augment import crop_flip
from regx.engine.device import use_channels_last
from regx.engine.settings import OptimizerSettings
from regx.engine.trainer import Trainer


@dataclass
class LoopInputs:
    """regx's model (a fresh copy), data and settings, as another training loop takes them."""

    model: torch.nn.Module
    x_padded: torch.Tensor  # uint8 (N, C, H + 2p, W + 2p): padded once, as regx does
    y: torch.Tensor
    size: tuple[int, int]
    flip: bool
    mean255: torch.Tensor  # (1, C, 1, 1), in uint8 units
    std255: torch.Tensor
    batch_size: int
    steps: int  # optimizer steps per epoch (last partial batch dropped, as regx does)
    epochs: int
    optimizer: OptimizerSettings
    channels_last: bool
    bf16: bool
    device: torch.device

    @classmethod
    def from_trainer(cls, trainer: Trainer) -> LoopInputs:
        s, dev = trainer.s, trainer.device
        aug = trainer.spec.dataset.augment
        x = trainer.prep.train_x.to(dev)
        data = trainer.prep.data
        p = aug.crop_padding
        return cls(
            model=copy.deepcopy(trainer.model),
            x_padded=F.pad(x, (p, p, p, p)),
            y=trainer.prep.train_y.to(dev),
            size=(x.shape[-2], x.shape[-1]),
            flip=aug.flip,
            mean255=torch.tensor(data.mean, device=dev).view(1, -1, 1, 1) * 255,
            std255=torch.tensor(data.std, device=dev).view(1, -1, 1, 1) * 255,
            batch_size=s.batch_size,
            steps=len(trainer.prep.train_y) // s.batch_size or 1,
            epochs=s.epochs,
            optimizer=s.optimizer,
            # the memory format regx chose (a CPU: channels_last), so only the loop differs
            channels_last=use_channels_last(s.channels_last, dev),
            bf16=s.precision == "bf16",
            device=dev,
        )

    def prepare(self, xb: torch.Tensor) -> torch.Tensor:
        """Crop + flip a padded uint8 batch, then normalize: float32 ready for the model."""
        xb = crop_flip(xb, self.size, self.flip)
        xb = (xb.float() - self.mean255) / self.std255
        if self.channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        return xb


def sgd_cosine(
    model: torch.nn.Module, o: OptimizerSettings, total_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """SGD with the run's settings and a cosine decay over `total_steps`, stepped per step."""
    opt = torch.optim.SGD(
        model.parameters(),
        lr=o.lr,
        momentum=o.momentum,
        nesterov=o.nesterov,
        weight_decay=o.weight_decay,
    )
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda t: 0.5 * (1 + math.cos(math.pi * min(t / total_steps, 1.0)))
    )
    return opt, sched


class HandWrittenLoop:
    def __init__(self, inputs: LoopInputs) -> None:
        self.inp = inputs
        self.model = inputs.model
        if inputs.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.opt, self.sched = sgd_cosine(
            self.model, inputs.optimizer, inputs.epochs * inputs.steps
        )

    def epoch(self) -> float:
        inp, model, opt = self.inp, self.model, self.opt
        dev, bs = inp.device, inp.batch_size
        model.train()
        perm = torch.randperm(len(inp.y), device=dev)
        loss_sum = torch.zeros((), device=dev)
        for i in range(inp.steps):
            idx = perm[i * bs : (i + 1) * bs]
            xb = inp.prepare(inp.x_padded.index_select(0, idx))
            with torch.autocast(dev.type, torch.bfloat16, enabled=inp.bf16):
                out = model(xb)
            loss = F.cross_entropy(out.float(), inp.y.index_select(0, idx))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            self.sched.step()
            loss_sum += loss.detach()
        return float(loss_sum) / inp.steps
