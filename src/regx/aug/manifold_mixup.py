"""Manifold Mixup (Verma et al., 2019): mixup of hidden representations at a random layer.

The model has mixable points 0, 1, …, P − 1 (0: the input, k > 0: the k-th stage
boundary; see models/base.py). For a batch (x, y), a uniformly random permutation π, λ
drawn as for mixup and a point k drawn uniformly from `layers` (null: all P points), the
model runs up to point k, replaces the hidden state h there by

    h̃ = λ·h + (1 − λ)·h[π],        and the loss is  λ·L(ŷ, y) + (1 − λ)·L(ŷ, y[π]).

At k = 0 this is mixup, to the bit (the same draws and the same lerp). λ ~ Uniform(0, 1)
(`lam="uniform"`) or Beta(α, α) (`lam="beta"`, the paper's α = 2 on CIFAR); `mode`, `prob`
and `off_epoch` as for mixup.
The mixer returns the inputs unchanged with a `HiddenMix(layer, λ, π)`; the model does the
mixing when called as `model(inputs, hidden_mix=…)`.

`bind(model)` reads the model's mixable points before training and refuses a model that
has none, or `layers` that name points it lacks. Random draws, in order: whether to mix
(CPU), π (device), λ (CPU, or device per sample), the point (CPU; no draw for one point),
so with one point the λ and π equal mixup's for the same seed.
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from regx.aug.base import (
    Concentration,
    HiddenMix,
    MixedBatch,
    MixMode,
    OffEpoch,
    Probability,
    mix_this_batch,
    random_partners,
)
from regx.aug.mixup import Mixup
from regx.errors import ConfigError
from regx.params import check_params

MIXABLE_MODELS = "model=cnn, mlp, resnet, wrn or airnet"


def check_layers(layers: list[int] | None) -> None:
    if layers is None:
        return
    ok = (
        isinstance(layers, (list, tuple))
        and len(layers) > 0
        and all(isinstance(k, int) and not isinstance(k, bool) and k >= 0 for k in layers)
        and len(set(layers)) == len(layers)
    )
    if not ok:
        raise ConfigError(
            "layers", layers, "must be null (all mixable points) or a list of distinct integers ≥ 0"
        )


class ManifoldMixup(Mixup):
    name = "manifold_mixup"

    @check_params
    def __init__(
        self,
        lam: Literal["uniform", "beta"] = "beta",
        alpha: Concentration = 2.0,
        mode: MixMode = "batch",
        prob: Probability = 1.0,
        off_epoch: OffEpoch = None,
        layers: list[int] | None = None,
    ) -> None:
        super().__init__(lam=lam, alpha=alpha, mode=mode, prob=prob, off_epoch=off_epoch)
        check_layers(layers)
        self.layers = list(layers) if layers is not None else None
        self._points: list[int] | None = None  # the points drawn from, set by bind()

    def bind(self, model: Any) -> None:
        count = model.mixable_points() if hasattr(model, "mixable_points") else 0
        model_name = type(model).__name__
        if count == 0:
            raise ConfigError(
                "aug",
                "manifold_mixup",
                f"model {model_name} has no mixable points; use {MIXABLE_MODELS}, "
                "or +aug=mixup (mixing the input only)",
            )
        missing = [k for k in self.layers or () if k >= count]
        if missing:
            raise ConfigError(
                "aug.layers",
                self.layers,
                f"must name mixable points of {model_name}: 0 to {count - 1} (0 = the input)",
            )
        self._points = list(self.layers) if self.layers is not None else list(range(count))

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> MixedBatch | None:
        points = self._points
        if points is None:
            raise RuntimeError("ManifoldMixup.bind(model) must be called before mixing")
        if not mix_this_batch(self.prob):
            return None
        n = x.shape[0]
        partners = random_partners(n, x.device)
        lam = self.sample_lam(None if self.mode == "batch" else n, x.device)
        layer = points[0] if len(points) == 1 else points[int(torch.randint(len(points), ()))]
        return MixedBatch(
            inputs=x,
            lam=lam,
            partner_targets=y.index_select(0, partners),
            partner_index=partners,
            hidden_mix=HiddenMix(layer=layer, lam=lam, partners=partners),
        )

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        if self._points is not None:
            out["points"] = list(self._points)  # the points actually drawn from
        return out
