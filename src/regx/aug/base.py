"""The mixing-augmentation contract.

A `Mixer` takes a normalized batch (x, y) already on the device and returns a
`MixedBatch`, or None to leave this batch as it is. The engine computes the per-sample
loss with `MixedBatch.loss`:

    λ·L(ŷ, y) + (1 − λ)·L(ŷ, y[π])      if `partner_targets` is given (mixup),
    L(ŷ, y)                             otherwise (SamplePairing keeps y),

always mixing per-sample losses, never one-hot labels: for cross-entropy the two agree,
for γ-CE and AM-Softmax they do not. `lam` is the weight of the first image in the input
mix: a float (one λ for the batch) or a tensor (N,) (one per sample). `active(epoch,
num_epochs)` switches mixing on or off for a whole epoch (schedules).

Randomness comes from torch's global generators (seeded by the run, saved in its
checkpoints), so a resumed run mixes exactly as the uninterrupted one: scalars (λ per
batch, whether to mix a batch) from the CPU generator, which never waits for the GPU;
anything of batch size (π, λ per sample) on the batch's device, so no step copies or
syncs between host and device.

Manifold mixup mixes a hidden state instead of the input: its `MixedBatch` carries
`hidden_mix` (the layer, λ and π), the inputs stay unchanged, and the engine calls
`model(inputs, hidden_mix=…)`, which replaces the hidden state h at that layer's boundary
by λ·h + (1 − λ)·h[π]. A mixer that depends on the model reads it in `bind(model)`,
called once after the model is built (the default does nothing).

Adding an augmentation is one module with a `Mixer` subclass plus one YAML file in
conf/aug/ whose `_target_` names it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import torch

from regx.params import Range

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# Keys most mixers share: one λ per batch or per sample (`mode`), the fraction of batches
# mixed (`prob`), the epoch mixing stops at (`off_epoch`, null: never).
MixMode = Literal["batch", "elem"]
Probability = Annotated[float, Range(0, 1)]
Concentration = Annotated[float, Range(0, None, lo_open=True)]  # Beta(α, α) needs α > 0
OffEpoch = Annotated[int | None, Range(1, integer=True)]


@dataclass
class HiddenMix:
    """Mix the hidden state h at mixable point `layer` of the model: λ·h + (1 − λ)·h[π].

    Point 0 is the input; point k > 0 the k-th stage boundary (see models/base.py).
    """

    layer: int
    # float, or (N,) per sample, broadcast over the hidden state's other dimensions.
    lam: float | torch.Tensor
    partners: torch.Tensor


@dataclass
class MixedBatch:
    """A mixed batch: what the model sees and how its loss is formed."""

    inputs: torch.Tensor
    # Weight of the first image in the input mix: float, or (N,) per sample.
    lam: float | torch.Tensor
    # y[π] when the loss mixes two labels; None keeps the first image's label alone.
    partner_targets: torch.Tensor | None = None
    # π, the partner of each sample (for inspection and tests; the engine needs none).
    partner_index: torch.Tensor | None = None
    # Manifold mixup: mix a hidden representation instead of the inputs (the model does it).
    hidden_mix: HiddenMix | None = None

    def loss(self, loss_fn: LossFn, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Per-sample loss (N,): λ·L(ŷ, y) + (1 − λ)·L(ŷ, y[π]), or L(ŷ, y) alone.

        A loss with a `mixed(outputs, y, y[π], λ)` method forms the same sum itself in one
        pass (cross-entropy: one log-softmax for both terms)."""
        if self.partner_targets is None:
            return loss_fn(outputs, targets)
        mixed = getattr(loss_fn, "mixed", None)
        if mixed is not None:
            return mixed(outputs, targets, self.partner_targets, self.lam)
        lam = self.lam
        return lam * loss_fn(outputs, targets) + (1 - lam) * loss_fn(outputs, self.partner_targets)


class Mixer:
    """Base class of mixing augmentations; `name` is what summary.json calls it."""

    name = "mixer"

    def active(self, epoch: int, num_epochs: int) -> bool:
        """Whether to mix during 0-based `epoch` of a `num_epochs` run."""
        return True

    def bind(self, model: Any) -> None:
        """Read what the mixer needs from the built model (called once, before training)."""

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> MixedBatch | None:
        raise TypeError(f"{type(self).__name__} must implement __call__()")

    def image_warning(self, height: int, width: int) -> str | None:
        """Why this mixer's settings do nothing useful on height×width images, or None."""
        return None

    def describe(self) -> dict[str, Any]:
        """The mixer's settings for summary.json."""
        settings = {k: v for k, v in vars(self).items() if not k.startswith("_")}
        return {"name": self.name, **settings}


def mix_this_batch(prob: float) -> bool:
    """A coin with P(True) = prob, from torch's global CPU generator (no device sync)."""
    if prob >= 1.0:
        return True  # no draw: the common case costs nothing
    return bool(torch.rand(()) < prob)


def partner_images(x: torch.Tensor, partners: torch.Tensor) -> torch.Tensor:
    """x[π] along the batch, in x's memory format. `index_select` returns an NCHW
    (contiguous) result even for a channels_last x, and a mix of the two layouts would be
    converted twice more (by the elementwise op, then by the model): a channels_last batch
    is gathered as the contiguous (N, H, W, C) tensor it is in memory."""
    if (
        x.dim() == 4
        and not x.is_contiguous()
        and x.is_contiguous(memory_format=torch.channels_last)
    ):
        return x.permute(0, 2, 3, 1).index_select(0, partners).permute(0, 3, 1, 2)
    return x.index_select(0, partners)


def random_partners(n: int, device: torch.device) -> torch.Tensor:
    """π: a uniformly random permutation of range(n), drawn on `device`."""
    return torch.randperm(n, device=device)


class BetaSampler:
    """λ ~ Beta(α, α): one float from the CPU generator, or n of them on a device.

    Drawn as the first coordinate of a Dirichlet(α, α) sample, which is how
    `torch.distributions.Beta` draws (the same numbers from the same generator state)
    without its Python layers: a third of the cost of each batch's draw."""

    def __init__(self, alpha: float) -> None:
        self.alpha = float(alpha)
        self._concentration: dict[torch.device, torch.Tensor] = {}  # [α, α] per device

    def sample(self, n: int | None, device: torch.device) -> float | torch.Tensor:
        if n is None:
            return torch._sample_dirichlet(self._on(torch.device("cpu"))).tolist()[0]
        return torch._sample_dirichlet(self._on(device).expand(n, 2))[:, 0].contiguous()

    def _on(self, device: torch.device) -> torch.Tensor:
        concentration = self._concentration.get(device)
        if concentration is None:
            concentration = torch.full((2,), self.alpha, dtype=torch.float32, device=device)
            self._concentration[device] = concentration
        return concentration


def box_span(centre: Any, side: Any, extent: int) -> tuple[Any, Any]:
    """[lo, hi) of a box of `side` pixels around `centre` (its pixel side // 2), clipped to
    [0, extent). Works on Python ints and on integer tensors alike."""
    lo = centre - side // 2
    hi = lo + side
    if isinstance(lo, torch.Tensor):
        return lo.clamp(0, extent), hi.clamp(0, extent)
    return min(max(lo, 0), extent), min(max(hi, 0), extent)


def box_mask(
    top: torch.Tensor, bottom: torch.Tensor, left: torch.Tensor, right: torch.Tensor, h: int, w: int
) -> torch.Tensor:
    """Boolean (…, h, w): pixel (r, c) is inside the box [top, bottom) × [left, right) of the
    same leading index (the bounds have any leading shape, e.g. (N,) or (N, holes))."""
    rows = torch.arange(h, device=top.device)
    cols = torch.arange(w, device=top.device)
    in_rows = (rows >= top[..., None]) & (rows < bottom[..., None])  # (…, h)
    in_cols = (cols >= left[..., None]) & (cols < right[..., None])  # (…, w)
    return in_rows[..., :, None] & in_cols[..., None, :]
