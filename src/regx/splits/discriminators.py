"""Train-vs-test discriminators for adversarial validation, fitted with balanced classes.

Both learn D(x) = P(test | x) from training images (label 0) and test images (label 1)
with the two sides weighted equally, as if the smaller side were oversampled to the size
of the larger. Under that balance the Bayes-optimal discriminator is

    D(x) = q(x) / (p(x) + q(x)),   so   D/(1 − D) = q(x)/p(x),

with p the training and q the test density: the odds are the importance weight, without
a correction for the sizes of the two sets. `fit_logits(x_fit, d_fit, x_eval, seed)`
returns the logit log(D/(1 − D)) for each image in `x_eval`.

- `LogisticDiscriminator`: logistic regression (L2, inverse strength `c`) on pixels
  scaled to [0, 1] and standardized per pixel, optionally projected on the first `pca`
  principal components. `class_weight="balanced"` weights each side by N/(2·N_side),
  which is the loss of oversampling the smaller side, without materializing copies.
- `ConvDiscriminator`: a small conv net (three 3×3 conv layers, global average pooling,
  one logit) trained with AdamW on balanced batches (half train, half test images; the
  smaller side is cycled through fresh permutations), early-stopped on the balanced
  cross-entropy of a held-out part of the fitting data (1/`holdout` of each side): the
  weights of the best epoch are kept, and training stops after `patience` epochs
  without improvement (that loss is noisy early on, hence a patience of 5).
- `split.discriminator=features`: `LogisticDiscriminator` on embeddings of the images
  (`regx.splits.embeddings`) instead of their pixels; float inputs are taken as they are.
"""

from __future__ import annotations

import copy
import math
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from regx.errors import check, check_range


class Discriminator(Protocol):
    def fit_logits(
        self, x_fit: torch.Tensor, d_fit: np.ndarray, x_eval: torch.Tensor, seed: int
    ) -> np.ndarray:
        """Fit on uint8 images `x_fit` with domains `d_fit` (0 train, 1 test); logits of `x_eval`."""
        ...


def _flat_pixels(x: torch.Tensor) -> np.ndarray:
    """uint8 images as pixels in [0, 1]; float inputs (embeddings) as they are, flattened."""
    if x.dtype != torch.uint8:
        return x.reshape(len(x), -1).to(torch.float32).numpy()
    return (x.reshape(len(x), -1).to(torch.float32) / 255.0).numpy()


class LogisticDiscriminator:
    def __init__(self, c: float = 0.01, pca: int | None = None, pca_key: str = "pca") -> None:
        check_range("logreg_c", c, 0, lo_open=True)
        if pca is not None:
            check(
                isinstance(pca, int) and not isinstance(pca, bool) and pca >= 1,
                pca_key,
                pca,
                "must be a positive number of components (or null for "
                + ("raw pixels)" if pca_key == "pca" else "all of them)"),
            )
        self.c, self.pca = float(c), pca

    def fit_logits(
        self, x_fit: torch.Tensor, d_fit: np.ndarray, x_eval: torch.Tensor, seed: int
    ) -> np.ndarray:
        from sklearn.decomposition import PCA
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        steps: list = [StandardScaler()]
        features = x_fit[0].numel()
        if self.pca is not None and self.pca < min(features, len(x_fit)):
            steps.append(PCA(n_components=self.pca, random_state=seed))
        steps.append(LogisticRegression(C=self.c, class_weight="balanced", max_iter=2000, tol=1e-4))
        model = make_pipeline(*steps)
        model.fit(_flat_pixels(x_fit), d_fit)
        return model.decision_function(_flat_pixels(x_eval)).astype(np.float64)


class SmallConvNet(nn.Module):
    """Three 3×3 conv layers (pooling while the map is ≥ 8 px), global average pool, then a
    linear head: one logit (`outputs=1`, squeezed to shape (N,)) or `outputs` scores."""

    def __init__(self, channels: int, image_size: int, width: int, outputs: int = 1) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        size, c_in = image_size, channels
        for c_out in (width, 2 * width, 2 * width):
            # momentum=None: running stats are the plain average since the last reset
            # (each epoch), not an EMA that lags behind weights moving at a high rate.
            norm = nn.BatchNorm2d(c_out, momentum=None)
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), norm, nn.ReLU()]
            if size >= 8:
                layers.append(nn.MaxPool2d(2))
                size //= 2
            c_in = c_out
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(c_in, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.head(self.body(x))
        return out.squeeze(1) if out.shape[1] == 1 else out


class ConvDiscriminator:
    def __init__(
        self,
        epochs: int = 20,
        patience: int = 5,
        width: int = 16,
        batch_size: int = 128,
        lr: float = 1e-2,
        holdout: int = 5,
        device: str = "auto",
    ) -> None:
        check_range("cnn_epochs", epochs, 1)
        check_range("cnn_patience", patience, 1)
        check_range("cnn_width", width, 1)
        check_range("cnn_batch_size", batch_size, 2)
        check_range("cnn_lr", lr, 0, lo_open=True)
        check_range("cnn_holdout", holdout, 2)
        self.epochs, self.patience, self.width = int(epochs), int(patience), int(width)
        self.batch_size, self.lr, self.holdout = int(batch_size), float(lr), int(holdout)
        self.device_name = device

    def _device(self) -> torch.device:
        if self.device_name == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device_name)

    def fit_logits(
        self, x_fit: torch.Tensor, d_fit: np.ndarray, x_eval: torch.Tensor, seed: int
    ) -> np.ndarray:
        device = self._device()
        rng = np.random.default_rng(seed)
        # Hold out 1/holdout of each side for early stopping.
        sides = [rng.permutation(np.flatnonzero(d_fit == k)) for k in (0, 1)]
        held = [s[: max(1, len(s) // self.holdout)] for s in sides]
        fit = [s[len(h) :] for s, h in zip(sides, held)]
        x = x_fit.to(device, torch.float32) / 255.0
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        std = x.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-3)
        x = (x - mean) / std
        # Private RNG: the split must not move the global stream the trainer seeded.
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            net = SmallConvNet(x.shape[1], x.shape[-1], self.width).to(device)
            opt = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=1e-4)
            best, best_state, stale = math.inf, copy.deepcopy(net.state_dict()), 0
            for _ in range(self.epochs):
                net.train()
                for module in net.modules():
                    if isinstance(module, nn.BatchNorm2d):
                        module.reset_running_stats()
                for batch in _balanced_batches(fit[0], fit[1], self.batch_size // 2, rng):
                    xb = x[torch.from_numpy(batch).to(device)]
                    target = torch.from_numpy(d_fit[batch]).to(device, torch.float32)
                    loss = F.binary_cross_entropy_with_logits(net(xb), target)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                held_loss = self._balanced_loss(net, x, held, device)
                if held_loss < best - 1e-4:
                    best, best_state, stale = held_loss, copy.deepcopy(net.state_dict()), 0
                else:
                    stale += 1
                    if stale >= self.patience:
                        break
            net.load_state_dict(best_state)
            x_e = (x_eval.to(device, torch.float32) / 255.0 - mean) / std
            return self._logits(net, x_e).cpu().numpy().astype(np.float64)

    @torch.no_grad()
    def _logits(self, net: nn.Module, x: torch.Tensor) -> torch.Tensor:
        net.eval()
        return torch.cat([net(chunk) for chunk in x.split(1024)])

    def _balanced_loss(
        self, net: nn.Module, x: torch.Tensor, held: list[np.ndarray], device: torch.device
    ) -> float:
        """Mean of the two sides' cross-entropies, so each side counts half."""
        losses = []
        for label, idx in enumerate(held):
            logits = self._logits(net, x[torch.from_numpy(idx).to(device)])
            target = torch.full_like(logits, float(label))
            losses.append(F.binary_cross_entropy_with_logits(logits, target).item())
        return float(np.mean(losses))


def _balanced_batches(
    side0: np.ndarray, side1: np.ndarray, half: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """One epoch of batches with `half` items from each side: the larger side is seen once,
    the smaller one is cycled through fresh permutations (oversampled) to keep pace."""
    large, small = (side0, side1) if len(side0) >= len(side1) else (side1, side0)
    steps = math.ceil(len(large) / half)
    large_order = rng.permutation(large)
    reps = math.ceil(steps * half / len(small))
    small_order = np.concatenate([rng.permutation(small) for _ in range(reps)])
    batches = []
    for i in range(steps):
        large_part = large_order[i * half : (i + 1) * half]
        # As many from the smaller side as the (possibly short) last slice of the larger.
        small_part = small_order[i * half : i * half + len(large_part)]
        batches.append(np.concatenate([large_part, small_part]))
    return batches
