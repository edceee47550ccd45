"""Typed settings of the `trainer` config group (also its structured-config schema)."""

from __future__ import annotations

from dataclasses import dataclass, field

MONITORS = ("val_acc", "val_loss", "val_ece")  # `trainer.monitor`: what picks best.pt


@dataclass
class OptimizerSettings:
    name: str = "sgd"  # sgd | adamw
    lr: float = 0.05
    momentum: float = 0.9  # SGD momentum; AdamW's beta1
    nesterov: bool = True
    weight_decay: float = 5e-4


@dataclass
class SchedulerSettings:
    name: str = "cosine"  # cosine | multistep | onecycle | none
    warmup_epochs: float = 0.0  # linear warm-up from 0, in (fractional) epochs
    # multistep: epochs (integers) or fractions of the run (floats in (0, 1))
    milestones: list[float] = field(default_factory=lambda: [0.5, 0.75])
    gamma: float = 0.1  # multistep decay factor
    min_lr_ratio: float = 0.0  # cosine floor as a fraction of lr


@dataclass
class TrainerSettings:
    epochs: int = 30
    batch_size: int = 128
    eval_batch_size: int = 1024
    optimizer: OptimizerSettings = field(default_factory=OptimizerSettings)
    scheduler: SchedulerSettings = field(default_factory=SchedulerSettings)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "32"  # 32 | bf16 | 16
    compile: bool = False
    channels_last: bool | None = None  # None: on for a CPU, off for CUDA (see engine.device)
    num_workers: int = 0  # DataLoader workers when the data stream from the host
    data_on_device: str = "auto"  # auto | always | never: keep the train set on the device
    deterministic: bool | None = None  # None: on for CPU, off for CUDA
    threads: int | None = None  # torch CPU threads; None: all cores (1 per job under joblib)
    reuse_host_memory: bool = True  # keep freed host memory for the next step (engine.host_memory)
    monitor: str = "val_acc"  # val_acc | val_loss | val_ece: picks best.pt
    early_stop: int | None = None  # stop after this many epochs without improvement
    checkpoint: bool = True
    resume: str = "auto"  # auto: continue checkpoints/last.pt in the run dir | never
    grad_clip: float | None = None
    progress: bool = True
    nan_check_every: int = 50  # steps between host checks for a non-finite loss (CUDA)


@dataclass
class AnalysisSettings:
    """What a run measures besides training: the top-level `noise`, `retrieval`, `outputs`
    and `calibration.bootstrap` keys (the `between` node has its own settings class)."""

    noise_track_every: int = 1  # epochs between memorization passes under label noise; 0: off
    retrieval_ks: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    save_features: bool = True  # features.npz
    features_dtype: str = "float16"  # float16 | float32
    bootstrap: int = 1000  # resamples for the 95 % intervals in summary.json `ci`; 0: off
