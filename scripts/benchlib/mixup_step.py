"""The mixup training step: regx's mixup + mixed loss against timm's Mixup + soft-target CE.

Both sides start every step from the same normalized batch (a fresh copy, since timm mixes
in place) and a copy of the same model, with the same optimizer and per-step schedule
(regx's builders, so only the mixup path differs); the two copies change hands every
repeat:

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
from regx.engine.step import TrainStep
from regx.engine.trainer import Trainer

VERSION = timm.__version__


@dataclass
class MixupResult:
    steps_per_repeat: int
    step: dict[str, Samples]  # "regx", "timm": seconds per training step
    mix_loss: dict[str, Samples]  # the same, mix + loss only (no model)


Steps = dict[str, Callable[[], None]]


def model_copies(trainer: Trainer, count: int) -> list[TrainStep]:
    """`count` copies of the run's model, each with its own optimizer and schedule (regx's
    builders), as regx's `TrainStep`s; timm's step uses a copy's model, optimizer and
    schedule directly."""
    s = trainer.s
    copies = []
    for _ in range(count):
        model = copy.deepcopy(trainer.model).train()
        opt = build_optimizer(model.parameters(), s.optimizer)
        sched = build_scheduler(opt, s.scheduler, s.epochs, len(trainer.batches))
        step = TrainStep(model, trainer.loss_fn, opt, sched, trainer.device, s.precision, None)
        copies.append(step)
    return copies


def step_functions(trainer: Trainer, alpha: float) -> tuple[Callable[[int], Steps], Steps]:
    """{regx, timm} one full training step each for repeat r, and {regx, timm} mix + loss
    only. The two contenders train two copies of the model and swap them every repeat: a
    model's own memory placement can make its steps ~0.5 % faster or slower, which would
    otherwise count for one contender."""
    mixer = trainer.spec.mixer
    xb, yb, _ = next(iter(trainer.batches.epoch(0)))
    x = trainer.normalize(xb)
    copies = model_copies(trainer, 2)
    timm_mix = TimmMixup(
        mixup_alpha=alpha,
        cutmix_alpha=0.0,
        label_smoothing=0.0,
        num_classes=trainer.prep.data.num_classes,
    )
    soft_ce = SoftTargetCrossEntropy()

    def regx_step(step: TrainStep) -> Callable[[], None]:
        def run() -> None:
            mixed = mixer(x.clone(), yb)
            step(mixed.inputs, yb, mixed, None)

        return run

    def timm_step(step: TrainStep) -> Callable[[], None]:
        def run() -> None:
            xs, soft = timm_mix(x.clone(), yb)
            loss = soft_ce(step.model(xs), soft)
            step.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            step.optimizer.step()
            step.scheduler.step()

        return run

    def steps_for(r: int) -> Steps:
        return {"regx": regx_step(copies[r % 2]), "timm": timm_step(copies[1 - r % 2])}

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

    return steps_for, {"regx": regx_mix_loss, "timm": timm_mix_loss}


def interleave(
    fns_for: Callable[[int], Steps], repeats: int, count: int, device: torch.device
) -> dict[str, Samples]:
    """Seconds per call of each function: `count` calls each per repeat, alternating call by
    call, after one untimed warm-up repeat; repeat r times `fns_for(r)`."""
    samples: dict[str, Samples] = {}
    for r in range(repeats + 1):
        for name, wall_cpu in interleaved(fns_for(r), count, device, start=r).items():
            if r > 0:
                samples.setdefault(name, Samples()).add(wall_cpu, count)
    return samples


def bench_mixup(case: Case, alpha: float, repeats: int, threads: int) -> MixupResult:
    with tempfile.TemporaryDirectory() as tmp:
        overrides = [*case.overrides, "+aug=mixup", "aug.lam=beta", f"aug.alpha={alpha}"]
        trainer = build_trainer(overrides, Path(tmp), threads)
        count = case.epochs_per_repeat * len(trainer.batches)  # an epoch's steps per repeat
        steps_for, mix_loss = step_functions(trainer, alpha)
        return MixupResult(
            steps_per_repeat=count,
            step=interleave(steps_for, repeats, count, trainer.device),
            mix_loss=interleave(lambda r: mix_loss, repeats, 4 * count, trainer.device),
        )
