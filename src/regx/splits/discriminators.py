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
- `ConvDiscriminator`: a small conv net (`regx.splits.convnets.SmallConvNet`: three 3×3
  conv blocks, global average pooling, one logit) trained with AdamW (lr `lr`) on balanced
  batches (`batch_size`/2 train and as many test images; each side cycled through fresh
  permutations, so the smaller one is oversampled; an epoch is as many batches as it takes
  to go once through the larger side), early-stopped on the balanced cross-entropy of a
  held-out part of the fitting data (1/`holdout` of each side): the weights of the best
  epoch are kept, and training stops after `patience` epochs without improvement. Before
  each evaluation the batch-norm statistics are re-estimated under the epoch's final
  weights from its last `NORM_BATCHES` batches (averaged over the whole epoch, they would
  mix in the weights of its early steps and make the held-out loss, and so the stopping
  epoch, jump by noise). The k folds' networks are independent (fold j's initialized and
  its batches drawn with seed + j) but train as one `StackedConvNet`, each fold keeping
  its own best epoch and stopping on its own. Patience 3: the best epoch of a shift the net
  cannot learn is the first; a learnable one (e.g. a mild corruption) improves for several
  epochs, and patience 2 stopped those too early.
- `split.discriminator=features`: `LogisticDiscriminator` on embeddings of the images
  (`regx.splits.embeddings`) instead of their pixels; float inputs are taken as they are.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from regx.errors import ConfigError, check
from regx.params import Range, check_params
from regx.splits.convnets import SmallConvNet, StackedConvNet, stack_batches

# Batches of an epoch's end whose statistics become the eval-mode batch-norm statistics.
NORM_BATCHES = 4
# ConvDiscriminator's limits that AdversarialSplit's `cnn_epochs`, `cnn_patience` and
# `cnn_width` declare as well.
CnnEpochs = Annotated[int, Range(1, integer=True)]
CnnPatience = Annotated[int, Range(1, integer=True)]
CnnWidth = Annotated[int, Range(1, integer=True)]


class Discriminator(Protocol):
    def fit_logits(
        self, x_fit: torch.Tensor, d_fit: np.ndarray, x_eval: torch.Tensor, seed: int
    ) -> np.ndarray:
        """Fit on uint8 images `x_fit` with domains `d_fit` (0 train, 1 test); logits of `x_eval`."""
        ...


@runtime_checkable
class FoldsDiscriminator(Protocol):
    def fit_folds(
        self,
        x: torch.Tensor,
        domain: np.ndarray,
        folds: list[Fold],
        seed: int,
        folds_done: Callable[[int], None],
    ) -> list[np.ndarray]:
        """Every fold's logits of `x[fold.held]` from a model fitted on `x[fold.fit]`, the
        folds fitted together; `folds_done(count)` as folds finish."""
        ...


def _flat_pixels(x: torch.Tensor) -> np.ndarray:
    """uint8 images as pixels in [0, 1]; float inputs (embeddings) as they are, flattened."""
    if x.dtype != torch.uint8:
        return x.reshape(len(x), -1).to(torch.float32).numpy()
    return (x.reshape(len(x), -1).to(torch.float32) / 255.0).numpy()


class LogisticDiscriminator:
    def __init__(self, c: float = 0.01, pca: int | None = None, pca_key: str = "pca") -> None:
        # c > 0 is checked where users set it: AdversarialSplit's `logreg_c`.
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


class ConvDiscriminator:
    @check_params
    def __init__(
        self,
        epochs: CnnEpochs = 20,
        patience: CnnPatience = 3,
        width: CnnWidth = 16,
        batch_size: Annotated[int, Range(2, integer=True)] = 128,  # ≥ 1 image of each side
        lr: Annotated[float, Range(0, lo_open=True)] = 1e-2,
        holdout: Annotated[int, Range(2, integer=True)] = 5,  # 1/holdout of a side early-stops
        device: str = "auto",
    ) -> None:
        self.epochs, self.patience, self.width = int(epochs), int(patience), int(width)
        self.batch_size, self.lr, self.holdout = int(batch_size), float(lr), int(holdout)
        self.device_name = device
        self._device()  # a device this machine lacks fails now, before any data loads

    def _device(self) -> torch.device:
        if self.device_name == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        device = torch.device(self.device_name)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError("device", self.device_name, "no CUDA device here; use auto or cpu")
        return device

    def fit_logits(
        self, x_fit: torch.Tensor, d_fit: np.ndarray, x_eval: torch.Tensor, seed: int
    ) -> np.ndarray:
        """One fold on its own: fitted on `x_fit`, the logits of `x_eval`."""
        n = len(x_fit)
        x = torch.cat([x_fit, x_eval])
        domain = np.concatenate([d_fit, np.zeros(len(x_eval), np.int64)])  # unused for x_eval
        return self.fit_folds(x, domain, [Fold(np.arange(n), np.arange(n, len(x)))], seed)[0]

    def fit_folds(
        self,
        x: torch.Tensor,
        domain: np.ndarray,
        folds: list[Fold],
        seed: int,
        folds_done: Callable[[int], None] = lambda count: None,
    ) -> list[np.ndarray]:
        """Fold j's discriminator (initialized and drawn with seed + j) is fitted on
        `x[folds[j].fit]` and gives the logits of `x[folds[j].held]`; the k folds train at
        once as one `StackedConvNet`. `folds_done(count)` as folds stop training."""
        smallest = min(int(np.bincount(domain[f.fit], minlength=2).min()) for f in folds)
        if smallest < 2:  # one image of a side cannot both train and early-stop
            raise ConfigError(
                "split.folds",
                len(folds),
                "leaves a fold with fewer than 2 images of one side to fit the cnn on",
            )
        device = self._device()
        rngs = [np.random.default_rng(seed + j) for j in range(len(folds))]
        plans = [_FoldPlan.draw(domain, f.fit, self.holdout, rng) for f, rng in zip(folds, rngs)]
        images = _Standardized.of(x.to(device), folds)
        # Private RNG: the split must not move the global stream the trainer seeded.
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            nets = []
            for j in range(len(folds)):
                torch.manual_seed(seed + j)
                nets.append(SmallConvNet(x.shape[1], x.shape[-1], self.width))
            net = StackedConvNet(nets).to(device, memory_format=torch.channels_last)
            net.load_state_dict(self._train(net, images, plans, rngs, folds_done))
        held = _padded([fold.held for fold in folds], device)
        logits = images.logits(net, held).cpu().numpy().astype(np.float64)
        return [row[: len(fold.held)] for row, fold in zip(logits, folds)]

    def _train(
        self,
        net: StackedConvNet,
        images: _Standardized,
        plans: list[_FoldPlan],
        rngs: list[np.random.Generator],
        folds_done: Callable[[int], None],
    ) -> dict[str, torch.Tensor]:
        """AdamW on balanced batches; per fold, the state of the epoch with the lowest
        early-stopping loss, each fold stopping after `patience` epochs without one."""
        k, device = net.copies, images.pixels.device
        trainable = [param for param in net.parameters() if param.requires_grad]
        opt = torch.optim.AdamW(trainable, lr=self.lr, weight_decay=1e-4)
        larger = [max(len(side) for side in plan.train_sides) for plan in plans]
        half = min(self.batch_size // 2, min(larger))
        steps = math.ceil(max(larger) / half)  # the same for every fold: one stacked step
        target = torch.cat([torch.zeros(half), torch.ones(half)]).to(device).expand(k, -1)
        stopping = _StoppingSet.of(plans, device)
        best = torch.full((k,), math.inf, dtype=torch.float64)
        stale = torch.zeros(k, dtype=torch.long)
        active = torch.ones(k, dtype=torch.bool)
        best_state = {name: value.clone() for name, value in net.state_dict().items()}
        for _ in range(self.epochs):
            net.train()
            order = [_balanced_batches(*p.train_sides, half, steps, r) for p, r in zip(plans, rngs)]
            batches = torch.from_numpy(np.stack(order, axis=1)).to(device)  # (steps, k, 2·half)
            for batch in batches:
                logits = net(images.stacked(batch)).T  # (k, 2·half)
                losses = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
                opt.zero_grad(set_to_none=True)
                losses.mean(dim=1).sum().backward()  # the sum: each fold's own gradient
                opt.step()
            _refresh_norm_statistics(net, images, batches[-NORM_BATCHES:])
            loss = stopping.loss(net, images)
            improved = active & (loss < best - 1e-4)
            best_state = net.copy_blocks(best_state, improved)
            best[improved], stale[improved] = loss[improved], 0
            stale[active & ~improved] += 1
            stopped = active & (stale >= self.patience)
            active &= ~stopped
            folds_done(int(stopped.sum()))
            if not active.any():
                break
        folds_done(int(active.sum()))
        return best_state


@dataclass
class Fold:
    """One fold of the out-of-fold loop: the indices fitted on and the indices scored."""

    fit: np.ndarray
    held: np.ndarray


@dataclass
class _FoldPlan:
    """A fold's fitting images by side (0 train, 1 test): those trained on, and the
    held-out 1/holdout of each side whose balanced loss early-stops."""

    train_sides: list[np.ndarray]
    stopping_sides: list[np.ndarray]

    @classmethod
    def draw(
        cls, domain: np.ndarray, fit: np.ndarray, holdout: int, rng: np.random.Generator
    ) -> _FoldPlan:
        sides = [rng.permutation(fit[domain[fit] == label]) for label in (0, 1)]
        stopping = [side[: max(1, len(side) // holdout)] for side in sides]
        return cls([s[len(h) :] for s, h in zip(sides, stopping)], stopping)


@dataclass
class _Standardized:
    """The images in [0, 1], channels last (N, H, W, C), and per fold the channel mean and
    std of its fitting images (k, C): each fold's network sees the images standardized by
    its own statistics."""

    pixels: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor

    @classmethod
    def of(cls, x: torch.Tensor, folds: list[Fold]) -> _Standardized:
        pixels = x.permute(0, 2, 3, 1).to(torch.float32) / 255.0
        # Per-image channel sums (float64), so each fold's statistics are sums of rows.
        sums = pixels.sum(dim=(1, 2), dtype=torch.float64)
        squares = pixels.double().square().sum(dim=(1, 2))
        area = pixels.shape[1] * pixels.shape[2]
        mean, std = [], []
        for fold in folds:
            rows = torch.from_numpy(fold.fit).to(x.device)
            count = len(rows) * area
            m = sums[rows].sum(0) / count
            var = (squares[rows].sum(0) - count * m.square()) / max(count - 1, 1)
            mean.append(m)
            std.append(var.clamp_min(0).sqrt().clamp_min(1e-3))
        return cls(pixels.contiguous(), torch.stack(mean).float(), torch.stack(std).float())

    def stacked(self, index: torch.Tensor) -> torch.Tensor:
        return stack_batches(self.pixels, index, self.mean, self.std)

    @torch.no_grad()
    def logits(self, net: StackedConvNet, index: torch.Tensor) -> torch.Tensor:
        """(k, M) logits of fold j's network for the images `index[j]`, in eval mode."""
        net.eval()
        return torch.cat([net(self.stacked(part)).T for part in index.split(1024, dim=1)], 1)


@dataclass
class _StoppingSet:
    """Every fold's early-stopping images as one padded (k, M) index, with targets and
    weights 1/(2·N_side) (0 on padding): Σ weight·ℓ is the mean of the two sides' mean
    cross-entropies, so each side counts half."""

    index: torch.Tensor
    target: torch.Tensor
    weight: torch.Tensor

    @classmethod
    def of(cls, plans: list[_FoldPlan], device: torch.device) -> _StoppingSet:
        index = _padded([np.concatenate(p.stopping_sides) for p in plans], device)
        target = torch.zeros(index.shape, dtype=torch.float32)
        weight = torch.zeros(index.shape, dtype=torch.float32)
        for j, plan in enumerate(plans):
            n0, n1 = (len(side) for side in plan.stopping_sides)
            target[j, n0 : n0 + n1] = 1.0
            weight[j, :n0], weight[j, n0 : n0 + n1] = 0.5 / n0, 0.5 / n1
        return cls(index, target.to(device), weight.to(device))

    def loss(self, net: StackedConvNet, images: _Standardized) -> torch.Tensor:
        """(k,) float64 on the CPU: each fold's balanced cross-entropy."""
        logits = images.logits(net, self.index)
        ce = F.binary_cross_entropy_with_logits(logits, self.target, reduction="none")
        return (ce * self.weight).sum(dim=1).double().cpu()


@torch.no_grad()
def _refresh_norm_statistics(
    net: StackedConvNet, images: _Standardized, batches: torch.Tensor
) -> None:
    """Eval-mode batch-norm statistics: plain averages over `batches` under the current
    weights (a no-grad pass in train mode), not over a whole epoch of moving weights."""
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.reset_running_stats()
    for batch in batches:
        net(images.stacked(batch))


def _padded(rows: list[np.ndarray], device: torch.device) -> torch.Tensor:
    """Index arrays of unequal length as one (k, max length) tensor, each padded with its
    own first index (harmless in eval mode, where images do not interact)."""
    width = max(len(row) for row in rows)
    padded = np.stack([np.concatenate([row, np.full(width - len(row), row[0])]) for row in rows])
    return torch.from_numpy(padded.astype(np.int64)).to(device)


def _balanced_batches(
    side0: np.ndarray, side1: np.ndarray, half: int, steps: int, rng: np.random.Generator
) -> np.ndarray:
    """One epoch, (steps, 2·half): each batch `half` images of side 0 then `half` of side
    1, each side cycled through fresh permutations (the smaller one oversampled)."""
    parts = []
    for side in (side0, side1):
        reps = math.ceil(steps * half / len(side))
        cycled = np.concatenate([rng.permutation(side) for _ in range(reps)])
        parts.append(cycled[: steps * half].reshape(steps, half))
    return np.concatenate(parts, axis=1)
