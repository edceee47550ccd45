"""One optimizer step, as a hand-written loop takes it: forward under autocast, the (mixed,
optionally weighted) loss, backward, gradient clipping, optimizer and scheduler step.

`ScaledTrainStep` is the float16 variant with a `GradScaler` (loss scaling)."""

from __future__ import annotations

from typing import Any

import torch

from regx.aug.base import MixedBatch
from regx.engine.device import autocast


class TrainStep:
    def __init__(
        self,
        model: torch.nn.Module,
        loss_fn: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        device: torch.device,
        precision: str,
        grad_clip: float | None,
    ) -> None:
        self.model, self.loss_fn = model, loss_fn
        self.optimizer, self.scheduler = optimizer, scheduler
        self.device, self.precision, self.grad_clip = device, precision, grad_clip

    def __call__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        mixed: MixedBatch | None,
        weight: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean loss, outputs), both detached; `x` is the (mixed) normalized batch."""
        with autocast(self.device, self.precision):
            if mixed is not None and mixed.hidden_mix is not None:
                out = self.model(x, hidden_mix=mixed.hidden_mix)
            else:
                out = self.model(x)
        # mixed losses (λ·L(ŷ,y) + (1−λ)·L(ŷ,y[π])), never mixed labels: see aug/base.py
        per = self.loss_fn(out, y) if mixed is None else mixed.loss(self.loss_fn, out, y)
        loss = per.mean() if weight is None else (weight * per).sum() / weight.sum()
        self.optimizer.zero_grad(set_to_none=True)
        self.backward_and_step(loss)
        self.scheduler.step()
        return loss.detach(), out.detach()

    def backward_and_step(self, loss: torch.Tensor) -> None:
        loss.backward()
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.optimizer.step()


class ScaledTrainStep(TrainStep):
    """float16 training: the loss is scaled so small gradients do not underflow."""

    def __init__(self, *args: Any, scaler: torch.amp.GradScaler, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.scaler = scaler

    def backward_and_step(self, loss: torch.Tensor) -> None:
        self.scaler.scale(loss).backward()
        if self.grad_clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
