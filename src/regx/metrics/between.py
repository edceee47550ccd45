"""Between-sample diagnostics: how linearly a model behaves on mixes of two test images.

mixup's claim (Zhang et al., 2018, Figure 2) is that training on mixes asks
f(λa + (1−λ)b) = λf(a) + (1−λ)f(b), which pulls f toward linear behaviour between
samples. On fixed pairs (a, b) of test images of different classes (y_a ≠ y_b) and
x̃ = λa + (1−λ)b, mixed in pixel space with pixels in [0, 1], this measures, per λ:

- `linearity_gap` = mean ‖p(x̃) − (λ·p(a) + (1−λ)·p(b))‖₁, p = softmax of the model's
  output (`space="probs"`, in [0, 2]), or p = the raw output (`space="logits"`: exactly 0
  for a model affine in its input);
- `miss_rate` = the share of x̃ whose argmax is neither y_a nor y_b (the paper's
  "prediction error" between samples);
- `grad_norm` = mean ‖∇_x̃ (λ·L(f(x̃), y_a) + (1−λ)·L(f(x̃), y_b))‖₂, the gradient of the
  run's per-sample loss with respect to x̃ in [0, 1] pixel units;
- `feature_gap` = mean ‖φ(x̃) − (λ·φ(a) + (1−λ)·φ(b))‖₂ / mean ‖φ(x)‖₂, φ = model.features,
  the denominator over the 2·pairs endpoints (a and b of every pair).

Pairs: a numpy Generator seeded by `seed` draws a uniformly over the test images and b
uniformly over the test images of another class, independently for each pair (with
replacement), so every run on the same test set sees the same pairs (paired comparisons
across seeds and methods); torch's global RNG is neither used nor disturbed.

Input convention: `images` are uint8 (N, C, H, W) in 0..255 (the data set's test tensor);
`normalize` is the run's input transform (regx.data.augment.Normalize) and is called on
float pixels in 0..255 units, 255·x̃, so the mix is normalized exactly as training
normalizes images; it must be differentiable (Normalize is one multiply-add). The model
runs in eval mode (its mode is restored afterwards), in float32 (float64 for a float64
model), in chunks of `batch_size` mixes; call it outside `torch.inference_mode()` (the
gradient needs autograd). With fewer than 2 classes in `labels`, or `pairs` = 0, the result is {}.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from regx.errors import ConfigError

SPACES = ("probs", "logits")
MOST_PAIRS = 1_000_000
KEYS = ("pairs", "lams")


@dataclass(frozen=True)
class BetweenSettings:
    """The `between` config node: {pairs: 1000, lams: [0.25, 0.5, 0.75]}; pairs = 0 is off."""

    pairs: int = 1000
    lams: tuple[float, ...] = (0.25, 0.5, 0.75)

    def __post_init__(self) -> None:
        pairs = self.pairs
        if isinstance(pairs, bool) or not isinstance(pairs, int) or pairs < 0:
            raise ConfigError("between.pairs", pairs, "must be an integer ≥ 0 (0 turns it off)")
        if pairs > MOST_PAIRS:
            raise ConfigError(
                "between.pairs",
                pairs,
                f"must be at most {MOST_PAIRS}: each pair costs a forward and backward pass per λ",
            )
        lams = self.lams
        ok = isinstance(lams, (list, tuple)) and len(lams) > 0
        ok = ok and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1 for v in lams
        )
        if not ok or len(set(lams)) != len(lams):
            shown = list(lams) if isinstance(lams, (list, tuple)) else lams
            raise ConfigError(
                "between.lams", shown, "must be a non-empty list of distinct numbers in [0, 1]"
            )
        object.__setattr__(self, "lams", tuple(float(v) for v in lams))

    @classmethod
    def from_config(cls, node: Mapping[str, Any] | None) -> BetweenSettings:
        """From the config node (a mapping, e.g. a DictConfig); None gives the defaults."""
        if node is None:
            return cls()
        for key in node:
            if key not in KEYS:
                raise ConfigError(f"between.{key}", node[key], "unknown key; allowed: pairs, lams")
        lams = node.get("lams", cls.lams)
        return cls(
            pairs=node.get("pairs", cls.pairs),
            lams=tuple(lams) if isinstance(lams, Sequence) and not isinstance(lams, str) else lams,
        )


# The mixes of one pass keep their activations for the input gradient: their pixels are
# bounded as well (256 CIFAR-sized mixes), so large images take smaller passes, not all memory.
PIXELS_PER_PASS = 256 * 3 * 32 * 32


def mixes_per_pass(batch_size: int, pixels_per_image: int) -> int:
    """Mixes per forward/backward pass: `batch_size`, fewer for images of many pixels."""
    return max(1, min(batch_size, PIXELS_PER_PASS // max(pixels_per_image, 1)))


def lam_key(lam: float) -> str:
    """The key of λ in the result's per-λ dicts: "0.25", "0.5", …"""
    return f"{lam:g}"


def draw_pairs(labels: np.ndarray, pairs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (a, b), `pairs` each: a uniform, b uniform among images of another class.

    Needs at least 2 classes in `labels`.
    """
    labels = np.asarray(labels)
    n = len(labels)
    order = np.argsort(labels, kind="stable")
    classes, start, count = np.unique(labels[order], return_index=True, return_counts=True)
    rng = np.random.default_rng(seed)
    a = rng.integers(0, n, size=pairs)
    cls = np.searchsorted(classes, labels[a])
    # r-th image of `order` with a's class block cut out: skip the block where r reaches it
    r = rng.integers(0, n - count[cls])
    b = order[np.where(r < start[cls], r, r + count[cls])]
    return a, b


@dataclass
class _Sums:
    """Per-λ running sums (float64, on the device), read back once at the end."""

    gap: torch.Tensor
    miss: torch.Tensor
    grad: torch.Tensor
    feature_gap: torch.Tensor


@dataclass
class _Endpoints:
    """φ and scores of each distinct endpoint image, computed once (pairs share images)."""

    features: torch.Tensor  # (U, D) float32
    scores: torch.Tensor  # (U, K): probabilities or raw outputs


def _full(t: torch.Tensor) -> torch.Tensor:
    """float32, or float64 for a float64 model (half precision is widened)."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def _scores(outputs: torch.Tensor, space: str) -> torch.Tensor:
    outputs = _full(outputs)
    return outputs.softmax(dim=1) if space == "probs" else outputs


def _pixels(
    images: torch.Tensor, index: np.ndarray, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """images[index] as float pixels in [0, 1] on `device`."""
    rows = torch.from_numpy(index).to(images.device)
    return images[rows].to(device, dtype) / 255.0


def _pixel_dtype(model: torch.nn.Module) -> torch.dtype:
    """float64 for a float64 model (exact tests), else float32."""
    param = next(model.parameters(), None)
    return torch.float64 if param is not None and param.dtype == torch.float64 else torch.float32


@torch.no_grad()
def _endpoints(
    model: torch.nn.Module,
    images: torch.Tensor,
    distinct: np.ndarray,
    normalize: Callable[[torch.Tensor], torch.Tensor],
    space: str,
    batch_size: int,
    device: torch.device,
) -> _Endpoints:
    feats, scores = [], []
    dtype = _pixel_dtype(model)
    for lo in range(0, len(distinct), batch_size):
        x = _pixels(images, distinct[lo : lo + batch_size], device, dtype)
        phi = model.features(normalize(x * 255.0))
        feats.append(_full(phi))
        scores.append(_scores(model.head(phi), space))
    return _Endpoints(torch.cat(feats), torch.cat(scores))


def _add_chunk(
    sums: _Sums,
    model: torch.nn.Module,
    ends: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    known: tuple[_Endpoints, torch.Tensor, torch.Tensor],
    lams: torch.Tensor,
    normalize: Callable[[torch.Tensor], torch.Tensor],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    space: str,
) -> None:
    """Add one chunk of pairs at every λ: `ends` = (a, b in [0, 1] pixels, y_a, y_b);
    `known` = (the endpoints' φ and scores, the rows of a and of b in them)."""
    a, b, ya, yb = ends
    endpoints, row_a, row_b = known
    n_lams, n = len(lams), len(a)
    # all λ at once: rows λ₀'s n mixes, then λ₁'s, …
    lam = lams.repeat_interleave(n)
    lam_px = lam.view(-1, *([1] * (a.dim() - 1)))
    repeat_px = (n_lams, *([1] * (a.dim() - 1)))
    mixed = lam_px * a.repeat(repeat_px) + (1 - lam_px) * b.repeat(repeat_px)
    mixed.requires_grad_(True)
    ya_all, yb_all = ya.repeat(n_lams), yb.repeat(n_lams)
    with torch.enable_grad():
        phi = model.features(normalize(mixed * 255.0))
        outputs = model.head(phi)
        loss = lam * loss_fn(outputs, ya_all) + (1 - lam) * loss_fn(outputs, yb_all)
        (grad,) = torch.autograd.grad(loss.sum(), mixed)
    with torch.no_grad():
        lam_col = lam[:, None]
        row_a, row_b = row_a.repeat(n_lams), row_b.repeat(n_lams)
        expected = lam_col * endpoints.scores[row_a] + (1 - lam_col) * endpoints.scores[row_b]
        gap = (_scores(outputs, space) - expected).abs().sum(dim=1)
        phi_line = lam_col * endpoints.features[row_a] + (1 - lam_col) * endpoints.features[row_b]
        feature_gap = (_full(phi) - phi_line).norm(dim=1)
        predicted = outputs.argmax(dim=1)
        miss = (predicted != ya_all) & (predicted != yb_all)
        per_lam = torch.stack([gap, miss.float(), grad.flatten(1).norm(dim=1), feature_gap])
        per_lam = per_lam.view(4, n_lams, n).sum(dim=2, dtype=torch.float64)
        sums.gap += per_lam[0]
        sums.miss += per_lam[1]
        sums.grad += per_lam[2]
        sums.feature_gap += per_lam[3]


def between_sample_metrics(
    model: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    normalize: Callable[[torch.Tensor], torch.Tensor],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    pairs: int = 1000,
    lams: Sequence[float] = (0.25, 0.5, 0.75),
    seed: int = 0,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    space: str = "probs",
) -> dict[str, Any]:
    """The diagnostics of the module doc on `pairs` seeded pairs of `images` (uint8).

    Returns {"pairs", "lams", "space", "linearity_gap", "miss_rate", "grad_norm",
    "feature_gap"}, each metric a dict {lam_key(λ): float}; {} without 2 classes or pairs.
    `batch_size` bounds the mixes (pairs × λs) per forward pass, and so does
    `PIXELS_PER_PASS` (`mixes_per_pass`); the result does not depend on either.
    """
    settings = BetweenSettings(pairs=pairs, lams=tuple(lams))
    if space not in SPACES:
        raise ValueError(f"space must be one of {SPACES}, not {space!r}")
    labels_np = labels.cpu().numpy()
    if settings.pairs == 0 or len(np.unique(labels_np)) < 2:
        return {}
    a_idx, b_idx = draw_pairs(labels_np, settings.pairs, seed)
    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    device = torch.device(device)
    distinct, rows = np.unique(np.concatenate([a_idx, b_idx]), return_inverse=True)
    rows_t = torch.from_numpy(rows.reshape(2, -1)).to(device)
    dtype = _pixel_dtype(model)
    lam_t = torch.tensor(settings.lams, dtype=dtype, device=device)
    sums = _Sums(*(torch.zeros(len(lam_t), dtype=torch.float64, device=device) for _ in range(4)))
    chunk = max(1, mixes_per_pass(batch_size, images[0].numel()) // len(lam_t))
    labels_dev = labels.to(device)
    was_training = model.training
    model.eval()
    try:
        endpoints = _endpoints(model, images, distinct, normalize, space, batch_size, device)
        for lo in range(0, settings.pairs, chunk):
            ia, ib = a_idx[lo : lo + chunk], b_idx[lo : lo + chunk]
            ends = (
                _pixels(images, ia, device, dtype),
                _pixels(images, ib, device, dtype),
                labels_dev[torch.from_numpy(ia).to(device)],
                labels_dev[torch.from_numpy(ib).to(device)],
            )
            known = (endpoints, rows_t[0, lo : lo + chunk], rows_t[1, lo : lo + chunk])
            _add_chunk(sums, model, ends, known, lam_t, normalize, loss_fn, space)
        # the mean ‖φ‖ over the 2·pairs endpoints, duplicates counted
        endpoint_norm = endpoints.features.norm(dim=1)[rows_t].mean(dtype=torch.float64)
    finally:
        model.train(was_training)
    return _result(sums, endpoint_norm, settings, space)


def _result(
    sums: _Sums, endpoint_norm: torch.Tensor, settings: BetweenSettings, space: str
) -> dict[str, Any]:
    n, k = settings.pairs, len(settings.lams)
    per_lam = torch.stack([sums.gap, sums.miss, sums.grad, sums.feature_gap]) / n
    flat = torch.cat([per_lam.flatten(), endpoint_norm.view(1)]).tolist()  # one sync
    gap, miss, grad, feat = (flat[i * k : (i + 1) * k] for i in range(4))
    mean_norm = flat[-1]
    relative = [v / mean_norm if mean_norm > 0 else math.nan for v in feat]
    keys = [lam_key(v) for v in settings.lams]
    return {
        "pairs": n,
        "lams": list(settings.lams),
        "space": space,
        "linearity_gap": dict(zip(keys, gap)),
        "miss_rate": dict(zip(keys, miss)),
        "grad_norm": dict(zip(keys, grad)),
        "feature_gap": dict(zip(keys, relative)),
    }
