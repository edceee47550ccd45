"""What a run is built from: its data after the split, its model, its batch source."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from regx.data.batches import DeviceBatches, HostBatches
from regx.data.types import ImageData
from regx.engine import distributed
from regx.engine.device import use_channels_last
from regx.engine.spec import RunSpec
from regx.errors import ConfigError
from regx.splits.base import Split

log = logging.getLogger("regx")
# Fewer distinct validation images than this per class (on average): the best epoch and the
# temperature are picked on too few images to mean much.
MIN_VAL_PER_CLASS = 2


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
    # Under label noise: the true labels of the training images (train_y holds the given).
    train_clean_y: torch.Tensor | None = None

    @property
    def noisy(self) -> bool:
        return self.train_clean_y is not None


def prepare_data(spec: RunSpec, device: torch.device) -> Prepared:
    data = spec.dataset.load(seed=spec.seed)
    split = spec.split(data.train_x, data.train_y, data.test_x, spec.seed)
    if len(split.train_idx) == 0 or len(split.val_idx) == 0:
        fraction = getattr(spec.split, "val_fraction", None)
        key, value = ("split.val_fraction", fraction) if fraction is not None else ("split", "")
        raise ConfigError(
            key,
            value,
            f"left {len(split.train_idx)} training and {len(split.val_idx)} validation images "
            f"of {len(data.train_y)}; use more data (dataset.subset) or another val_fraction",
        )

    warn_small_validation(split, data.num_classes)

    def on_device(weight: torch.Tensor | None) -> torch.Tensor | None:
        return None if weight is None else weight.to(device, torch.float32)

    # `split.clean_val`: validation scores against the true labels under label noise
    val_y = spec.split.validation_labels(data.train_y, data.train_true_y, split.val_idx)
    noisy = data.train_clean_y is not None
    return Prepared(
        data=data,
        split=split,
        train_x=data.train_x[split.train_idx],
        train_y=data.train_y[split.train_idx],
        val_x=data.train_x[split.val_idx].to(device),
        val_y=val_y.to(device),
        val_weight=on_device(split.val_weight),
        train_weight=on_device(split.train_weight),
        train_clean_y=data.train_clean_y[split.train_idx] if noisy else None,
    )


def warn_small_validation(split: Split, num_classes: int) -> None:
    distinct = len(torch.unique(split.val_idx))
    if distinct < MIN_VAL_PER_CLASS * num_classes:
        log.warning(
            "the validation set holds %d distinct image(s) for %d classes: the best epoch "
            "(trainer.monitor) and the temperature are picked on too few to mean much; "
            "raise split.val_fraction or use more data",
            distinct, num_classes,
        )  # fmt: skip


def build_model(spec: RunSpec, data: ImageData, device: torch.device) -> torch.nn.Module:
    return build_model_for(spec, data.num_classes, data.channels, data.image_size, device)


def build_model_for(
    spec: RunSpec, num_classes: int, channels: int, image_size: int, device: torch.device
) -> torch.nn.Module:
    """The configured model with the loss's head (e.g. AM-Softmax's cosine head), on `device`."""
    try:
        model = spec.model_factory(
            num_classes=num_classes, in_channels=channels, image_size=image_size
        )
    except ConfigError as e:
        raise e.under("model") from None
    head = spec.loss.make_head(model.feature_dim, num_classes)
    if head is not None:
        model.head = head
    model.to(device)
    if use_channels_last(spec.trainer.channels_last, device):
        model.to(memory_format=torch.channels_last)
    return model


def make_batches(
    spec: RunSpec, prep: Prepared, device: torch.device
) -> DeviceBatches | HostBatches:
    """Training batches from the device-resident uint8 tensor, or streamed from the host
    when `trainer.data_on_device` says so (auto: CUDA keeps up to 25 % of its memory)."""
    s = spec.trainer
    on_device = s.data_on_device
    if on_device == "auto":
        on_device = "always"  # on the CPU the "device" is host memory already
        if device.type == "cuda":
            nbytes = prep.train_x.numel() * prep.train_x.element_size()
            total = torch.cuda.get_device_properties(device).total_memory
            on_device = "always" if nbytes < 0.25 * total else "never"
    kwargs = dict(
        x=prep.train_x,
        y=prep.train_y,
        batch_size=s.batch_size,
        device=device,
        augment=spec.dataset.augment,
        seed=spec.seed,
        rank=distributed.rank(),
        world_size=distributed.world_size(),
    )
    if on_device == "always":
        return DeviceBatches(**kwargs)
    return HostBatches(**kwargs, num_workers=s.num_workers)


def cpu_has_bf16() -> bool:
    """Whether oneDNN has native bfloat16 kernels on this CPU (unknown: assume yes)."""
    probe = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        return bool(probe()) if probe is not None else True
    except RuntimeError:
        return True
