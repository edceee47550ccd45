"""The mixup training step: regx's mixup + mixed loss against timm's Mixup + soft-target CE.

Both sides start every step from the same normalized batch (a fresh copy, since timm mixes
in place) and a copy of the same model, with the same optimizer and per-step schedule
(regx's builders, so only the mixup path differs):

- regx: `regx.aug.mixup.Mixup` (λ ~ Beta(α, α) per batch, π a random permutation), then
  the engine's own `TrainStep`: forward, λ·CE(ŷ, y) + (1 − λ)·CE(ŷ, y[π]) per sample,
  mean, backward, SGD step, LR step;
- timm: `timm.data.Mixup(mixup_alpha=α, cutmix_alpha=0, label_smoothing=0)` (one λ per
  batch, partner = the batch reversed, soft targets λ·onehot(y) + (1 − λ)·onehot(y_rev)),
  forward, `timm.loss.SoftTargetCrossEntropy`, backward, SGD step, LR step.

For cross-entropy the two losses are the same function of (λ, π). A second figure times
the mix and the loss alone, on fixed logits (backward into them only): the part that
differs, without the model's forward/backward around it.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from timm.data import Mixup as TimmMixup
from timm.loss import SoftTargetCrossEntropy

from benchlib.cases import Case, build_trainer
from benchlib.timing import Samples, interleaved
from regx.engine.optim import build_optimizer, build_scheduler
from regx.engine.trainer import Trainer

VERSION = timm.__version__


@dataclass
class MixupResult:
    steps_per_repeat: int
    step: dict[str, Samples]  # "regx", "timm": seconds per training step
    mix_loss: dict[str, Samples]  # the same, mix + loss only (no model)


Steps = dict[str, Callable[[], None]]


def step_functions(trainer: Trainer, alpha: float) -> tuple[Steps, Steps]:
    """{regx, timm} one full training step each, and {regx, timm} mix + loss only."""
    mixer = trainer.spec.mixer
    xb, yb, _ = next(iter(trainer.batches.epoch(0)))
    x = trainer.normalize(xb)
    model = copy.deepcopy(trainer.model)
    s = trainer.s
    opt = build_optimizer(model.parameters(), s.optimizer)
    sched = build_scheduler(opt, s.scheduler, s.epochs, len(trainer.batches))
    timm_mix = TimmMixup(
        mixup_alpha=alpha,
        cutmix_alpha=0.0,
        label_smoothing=0.0,
        num_classes=trainer.prep.data.num_classes,
    )
    soft_ce = SoftTargetCrossEntropy()

    def regx_step() -> None:
        mixed = mixer(x.clone(), yb)
        trainer.train_step(mixed.inputs, yb, mixed, None)

    def timm_step() -> None:
        xs, soft = timm_mix(x.clone(), yb)
        loss = soft_ce(model(xs), soft)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()

    with torch.no_grad():
        logits = trainer.model(x)

    def regx_mix_loss() -> None:
        out = logits.detach().requires_grad_()
        mixed = mixer(x.clone(), yb)
        mixed.loss(trainer.loss_fn, out, yb).mean().backward()

    def timm_mix_loss() -> None:
        out = logits.detach().requires_grad_()
        _, soft = timm_mix(x.clone(), yb)
        soft_ce(out, soft).backward()

    steps = {"regx": regx_step, "timm": timm_step}
    return steps, {"regx": regx_mix_loss, "timm": timm_mix_loss}


def interleave(fns: Steps, repeats: int, count: int, device: torch.device) -> dict[str, Samples]:
    """Seconds per call of each function: `count` calls each per repeat, alternating call by
    call, after one untimed warm-up repeat."""
    samples = {name: Samples() for name in fns}
    for r in range(repeats + 1):
        for name, wall_cpu in interleaved(fns, count, device, start=r).items():
            if r > 0:
                samples[name].add(wall_cpu, count)
    return samples


def bench_mixup(case: Case, alpha: float, repeats: int, threads: int) -> MixupResult:
    with tempfile.TemporaryDirectory() as tmp:
        overrides = [*case.overrides, "+aug=mixup", "aug.lam=beta", f"aug.alpha={alpha}"]
        trainer = build_trainer(overrides, Path(tmp), threads)
        trainer.train_step.model.train()
        count = case.epochs_per_repeat * len(trainer.batches)  # an epoch's steps per repeat
        steps, mix_loss = step_functions(trainer, alpha)
        return MixupResult(
            steps_per_repeat=count,
            step=interleave(steps, repeats, count, trainer.device),
            mix_loss=interleave(mix_loss, repeats, 4 * count, trainer.device),
        )
