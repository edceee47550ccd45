"""The workloads every contender runs, and regx's trainer for one of them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from regx.engine.trainer import Trainer

CIFAR_BATCH = 128
CIFAR_TRAIN = 2048  # dataset.num_train: ≈ 4 s per CNN epoch on one loaded CPU core
CIFAR_TRAIN_QUICK = 512


@dataclass
class Case:
    key: str  # the name --cases selects it by
    title: str
    overrides: list[str]
    epochs_per_repeat: int  # epochs timed per repeat: enough that one repeat lasts ≳ 0.5 s


def cifar_sized(n: int) -> list[str]:
    """A CIFAR-10-shaped synthetic set: 3×32×32 uint8, 10 classes, crop 4 + flip."""
    return [
        "dataset=synthetic",
        "dataset.image_size=32",
        "dataset.channels=3",
        "dataset.num_classes=10",
        f"dataset.num_train={n}",
        "dataset.train_augment.crop_padding=4",
        "dataset.train_augment.flip=true",
        f"trainer.batch_size={CIFAR_BATCH}",
    ]


def all_cases(quick: bool, gpu: bool, resnet_width: int) -> list[Case]:
    n = CIFAR_TRAIN_QUICK if quick else CIFAR_TRAIN
    resnet = ["model=resnet", "model.depth=10", f"model.width={resnet_width}"]
    cases = [
        Case("digits", "digits, SmallCNN, batch 64 (the default run)", [], 1 if quick else 4),
        Case("cifar-cnn", f"CIFAR-sized N={n}, SmallCNN, batch {CIFAR_BATCH}", cifar_sized(n), 1),
        Case(
            "cifar-resnet10",
            f"CIFAR-sized N={n}, ResNet-10 width {resnet_width}, batch {CIFAR_BATCH}",
            [*cifar_sized(n), *resnet],
            1,
        ),
    ]
    if gpu:
        # the GPU recipe's own shape: AirNet, bf16, channels_last, data on the device
        airnet = [
            "dataset=synthetic",
            "dataset.image_size=32",
            "dataset.channels=3",
            "dataset.num_classes=10",
            "dataset.num_train=20480",
            "dataset.train_augment.crop_padding=2",
            "dataset.train_augment.flip=true",
            "model=airnet",
            "trainer=fast",
        ]
        cases.append(Case("gpu-airnet", "CIFAR-sized, AirNet, trainer=fast", airnet, 2))
    return cases


BENCH_EPOCHS = 1000


def build_trainer(overrides: list[str], run_dir: Path, threads: int) -> Trainer:
    """regx's own Trainer for the run `regx train OVERRIDES` would do, quiet, no files."""
    from regx.config import compose_config
    from regx.config.build import build_spec

    run = [
        "trainer.progress=false",
        "trainer.checkpoint=false",
        f"trainer.threads={threads}",
        # a schedule longer than every repeat together: past its end the learning rate is 0
        # and the momentum buffers decay into denormal floats, whose slow CPU paths would
        # time the contenders on an unrepresentative state
        f"trainer.epochs={BENCH_EPOCHS}",
        *overrides,
    ]
    return Trainer(build_spec(compose_config(run), run), run_dir)
