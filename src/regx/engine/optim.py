"""Optimizer and per-step learning-rate schedule from `TrainerSettings`.

Every schedule is a `LambdaLR` over optimizer steps with an optional linear warm-up
(factor (s+1)/W for the first W steps), then:
- cosine: lr·(r + (1 − r)·½(1 + cos(π·t))), t ∈ [0, 1] the post-warm-up progress, r = min_lr_ratio;
- multistep: lr·γ^(number of milestones passed);
- onecycle: linear rise to lr over the first 30 % (or the warm-up), then cosine to 0;
- none: constant lr.

The optimizer is torch's fused SGD/AdamW where torch has one for the parameters (CPU and
CUDA, torch ≥ 2.4): the same update as the per-tensor loop, to float rounding, in one kernel.
"""

from __future__ import annotations

import math

import torch

from regx.engine.settings import OptimizerSettings, SchedulerSettings

FUSED_DEVICES = ("cpu", "cuda")
FUSED_SINCE = (2, 4)  # torch's fused SGD and AdamW for CPU tensors (CUDA ones had them before)


def torch_version() -> tuple[int, int]:
    major, minor = torch.__version__.split("+")[0].split(".")[:2]
    return int(major), int(minor)


def can_fuse(params: list[torch.Tensor]) -> bool:
    """Whether torch's fused optimizer step runs on these parameters: one kernel over all of
    them instead of ~5 ops per tensor (a small CNN's SGD step on a CPU: ~2.4× faster)."""
    return (
        torch_version() >= FUSED_SINCE
        and bool(params)
        and all(p.device.type in FUSED_DEVICES and p.is_floating_point() for p in params)
    )


def build_optimizer(params, settings: OptimizerSettings) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for p in params:
        if p.requires_grad:
            # BatchNorm scales and biases are not weight-decayed (standard practice)
            (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": settings.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    fused = {"fused": True} if can_fuse(decay + no_decay) else {}
    if settings.name == "sgd":
        return torch.optim.SGD(
            groups,
            lr=settings.lr,
            momentum=settings.momentum,
            nesterov=settings.nesterov and settings.momentum > 0,
            **fused,
        )
    return torch.optim.AdamW(groups, lr=settings.lr, betas=(settings.momentum, 0.999), **fused)


IMPLEMENTATION_KEYS = ("fused", "foreach")


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """`optimizer.load_state_dict(state)`, keeping the implementation this machine chose
    (fused or not): torch would take it from the checkpoint, whose machine may differ."""
    chosen = [{k: g.get(k) for k in IMPLEMENTATION_KEYS} for g in optimizer.param_groups]
    optimizer.load_state_dict(state)
    for group, flags in zip(optimizer.param_groups, chosen):
        group.update(flags)


def lr_factor(step: int, total_steps: int, steps_per_epoch: int, s: SchedulerSettings) -> float:
    """The multiplier of the base lr at optimizer step `step` (0-based)."""
    warmup = round(s.warmup_epochs * steps_per_epoch)
    if s.name == "onecycle" and warmup == 0:
        warmup = max(1, int(0.3 * total_steps))
    if step < warmup:
        return (step + 1) / warmup
    if s.name == "none":
        return 1.0
    t = (step - warmup) / max(1, total_steps - warmup)
    if s.name in ("cosine", "onecycle"):
        floor = s.min_lr_ratio if s.name == "cosine" else 0.0
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
    # multistep
    epoch = step / steps_per_epoch
    total_epochs = total_steps / steps_per_epoch
    passed = sum(epoch >= (m * total_epochs if 0 < m < 1 else m) for m in s.milestones)
    return s.gamma**passed


def build_scheduler(
    optimizer: torch.optim.Optimizer, s: SchedulerSettings, epochs: int, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    total = epochs * steps_per_epoch
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total, steps_per_epoch, s)
    )
