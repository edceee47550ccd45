"""Inference over a uint8 image tensor in chunks, in eval mode, under the run's autocast."""

from __future__ import annotations

import torch

from regx.data.augment import Normalize
from regx.engine.device import autocast
from regx.models.base import Classifier


@torch.no_grad()
def predict(
    model: Classifier,
    images: torch.Tensor,
    normalize: Normalize,
    device: torch.device,
    batch_size: int,
    precision: str = "32",
    features: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(logits (N, K) float32, features (N, D) float32 or None), both on `device`."""
    was_training = model.training
    model.eval()
    logits, feats = [], []
    try:
        for i in range(0, len(images), batch_size):
            x = normalize(images[i : i + batch_size].to(device, non_blocking=True))
            with autocast(device, precision):
                f = model.features(x)
                out = model.head(f)
            logits.append(out.float())
            if features:
                feats.append(f.float())
    finally:
        model.train(was_training)
    if not logits:
        k = model.num_classes
        return torch.zeros(0, k, device=device), (
            torch.zeros(0, model.feature_dim, device=device) if features else None
        )
    return torch.cat(logits), (torch.cat(feats) if features else None)
