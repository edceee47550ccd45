"""`regx.load_run(run_dir)`: a finished run's model, ready to embed and classify images.

    import regx
    run = regx.load_run("outputs/runs/2026-12-01/10-00-00-000000-123")
    logits = run.predict(images)     # uint8 (N, C, H, W) → (N, K) float32 logits
    feats = run.embed(images)        # → (N, D) model.features(x), before the head
    run.classes, run.config          # class names, the resolved config

The weights are the run's best (checkpoints/best.pt, else the best weights last.pt keeps),
in eval mode, on `device`; images are normalized with the run's own training statistics.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from regx.errors import UserError


@dataclass
class LoadedRun:
    run_dir: Path
    config: dict[str, Any]
    model: torch.nn.Module
    normalize: Any  # regx.data.augment.Normalize
    device: torch.device
    classes: list[str]
    checkpoint: str  # which file the weights came from
    checkpoint_epoch: int | None
    batch_size: int = 512
    precision: str = "32"

    def _run(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from regx.engine.predict import predict

        images = torch.as_tensor(images)
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise UserError(
                f"images must be a uint8 tensor (N, C, H, W), got {images.dtype} {tuple(images.shape)}"
            )
        logits, feats = predict(
            self.model, images, self.normalize, self.device, self.batch_size, self.precision, True
        )
        return logits.cpu(), feats.cpu()

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Logits (N, K) float32 of uint8 images (N, C, H, W); softmax gives probabilities."""
        return self._run(images)[0]

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Embeddings (N, D) float32: `model.features(x)`, before the head, not normalized."""
        return self._run(images)[1]


def _dataset_record(run_dir: Path, spec: Any) -> dict[str, Any]:
    """summary.json's `dataset` (shape, classes, mean/std); runs without the statistics
    recorded get them from their training data, loaded as the run loaded it."""
    from regx.engine.files import summary_of

    record = (summary_of(run_dir) or {}).get("dataset")  # a damaged summary: as if absent
    if _complete_record(record):
        return record
    data = spec.dataset.load(seed=spec.seed)
    return {
        "num_classes": data.num_classes,
        "channels": data.channels,
        "image_size": data.image_size,
        "classes": list(data.classes),
        "mean": list(data.mean),
        "std": list(data.std),
    }


def _complete_record(record: Any) -> bool:
    """Whether summary.json's `dataset` holds everything `load_run` reads, as regx writes it."""
    if not isinstance(record, dict):
        return False
    ints = all(isinstance(record.get(k), int) for k in ("num_classes", "channels"))
    lists = all(isinstance(record.get(k), list) and record[k] for k in ("classes", "mean", "std"))
    if not (ints and lists and isinstance(record.get("image_size"), (int, list))):
        return False
    stats = [*record["mean"], *record["std"]]
    same_length = len(record["mean"]) == len(record["std"]) == record["channels"]
    return same_length and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in stats
    )


def load_run(run_dir: str | Path, device: str = "cpu") -> LoadedRun:
    """The run's best model in eval mode on `device` (see the module docstring)."""
    from omegaconf import OmegaConf

    from regx.config import register_resolvers
    from regx.config.build import build_spec
    from regx.data.augment import Normalize
    from regx.engine.device import resolve_device, use_channels_last
    from regx.engine.evaluate import best_weights
    from regx.engine.setup import build_model_for

    run_dir = Path(run_dir)
    config_file = run_dir / ".hydra" / "config.yaml"
    if not config_file.is_file():
        raise UserError(f"{run_dir} is not a regx run directory (no .hydra/config.yaml)")
    register_resolvers()
    cfg = OmegaConf.load(config_file)
    cfg.logger = None
    spec = build_spec(cfg)
    weights = best_weights(run_dir)
    ds = _dataset_record(run_dir, spec)
    dev = resolve_device(device)
    model = build_model_for(spec, ds["num_classes"], ds["channels"], ds["image_size"], dev)
    try:
        model.load_state_dict(weights.state)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise UserError(f"{weights.source} does not fit the configured model: {first}") from None
    model.eval()
    s = spec.trainer
    return LoadedRun(
        run_dir=run_dir,
        config=spec.config,
        model=model,
        normalize=Normalize(
            tuple(ds["mean"]), tuple(ds["std"]), dev, use_channels_last(s.channels_last, dev)
        ),
        device=dev,
        classes=list(ds["classes"]),
        checkpoint=weights.source,
        checkpoint_epoch=weights.epoch,
        batch_size=s.eval_batch_size,
        precision=s.precision,
    )
