"""CutMix, Cutout, Manifold Mixup and the mixup/CutMix switch: pixel counts, exact boxes,
hidden-state mixing in every model, config and errors, and short runs through the engine."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from regx.aug.base import HiddenMix
from regx.aug.cutmix import CutMix
from regx.aug.cutout import Cutout
from regx.aug.manifold_mixup import MIXABLE_MODELS, ManifoldMixup
from regx.aug.mixup import Mixup, mix_inputs
from regx.aug.mixup_cutmix import MixupCutMix
from regx.config.build import build_spec
from regx.errors import ConfigError
from regx.losses.ce import CrossEntropy
from regx.models.airnet import AirNet
from regx.models.base import Classifier
from regx.models.cnn import SmallCNN
from regx.models.mlp import MLP
from regx.models.resnet import PreActResNet
from regx.models.wrn import WideResNet


def _distinct_batch(n: int, c: int = 2, h: int = 8, w: int = 8) -> torch.Tensor:
    """Every value different, so a pasted pixel always differs from the original."""
    return torch.arange(n * c * h * w, dtype=torch.float32).view(n, c, h, w)


def _box_of(changed: torch.Tensor) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the bounding box of a (H, W) boolean mask."""
    rows, cols = changed.any(dim=1).nonzero().flatten(), changed.any(dim=0).nonzero().flatten()
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _check_pasted_box(out: torch.Tensor, x: torch.Tensor, partner: torch.Tensor, lam) -> bool:
    """One image: the changed pixels fill a box, come from the partner, and λ = 1 − area/HW.
    Returns whether the box touches the image border."""
    h, w = x.shape[-2:]
    changed = (out != x).any(dim=0)
    count = int(changed.sum())
    assert float(lam) == pytest.approx(1 - count / (h * w), abs=1e-7)
    if count == 0:
        return False
    top, bottom, left, right = _box_of(changed)
    assert count == (bottom - top) * (right - left)  # a filled rectangle inside the image
    assert torch.equal(out[:, top:bottom, left:right], partner[:, top:bottom, left:right])
    assert torch.equal(out[:, changed], partner[:, changed])
    return top == 0 or left == 0 or bottom == h or right == w


# -- CutMix -----------------------------------------------------------------------------


def test_cutmix_batch_lam_is_exact_kept_area() -> None:
    x, y = _distinct_batch(6), torch.arange(6)
    torch.manual_seed(0)
    mixer, touching, areas = CutMix(alpha=1.0, mode="batch"), 0, set()
    for _ in range(200):
        mixed = mixer(x, y)
        assert isinstance(mixed.lam, float)
        pi = mixed.partner_index
        assert torch.equal(mixed.partner_targets, y[pi])
        boxes = set()
        for i in range(6):
            if pi[i] == i:  # pasting from itself changes nothing
                assert torch.equal(mixed.inputs[i], x[i])
                continue
            touching += _check_pasted_box(mixed.inputs[i], x[i], x[pi[i]], mixed.lam)
            changed = (mixed.inputs[i] != x[i]).any(dim=0)
            assert mixed.lam == 1 - int(changed.sum()) / 64  # exactly, in batch mode
            if changed.any():
                boxes.add(_box_of(changed))
        assert len(boxes) <= 1  # batch mode: the same box in every image
        areas.add(round((1 - mixed.lam) * 64))
    assert touching > 0 and len(areas) > 10  # clipped boxes happen; areas vary


def test_cutmix_elem_lam_is_exact_kept_area_per_sample() -> None:
    x, y = _distinct_batch(64), torch.arange(64) % 10
    torch.manual_seed(1)
    mixed = CutMix(mode="elem")(x, y)
    lam, pi = mixed.lam, mixed.partner_index
    assert isinstance(lam, torch.Tensor) and lam.shape == (64,)
    for i in range(64):
        if pi[i] != i:
            _check_pasted_box(mixed.inputs[i], x[i], x[pi[i]], lam[i])
    assert lam.unique().numel() > 10  # one box per sample
    outputs = torch.randn(64, 10)
    expected = lam * F.cross_entropy(outputs, y, reduction="none") + (1 - lam) * F.cross_entropy(
        outputs, y[pi], reduction="none"
    )
    torch.testing.assert_close(mixed.loss(CrossEntropy(), outputs, y), expected)


def test_cutmix_same_seed_same_mix_and_prob() -> None:
    x, y = _distinct_batch(8), torch.arange(8)
    torch.manual_seed(5)
    first = CutMix()(x, y)
    torch.manual_seed(5)
    again = CutMix()(x, y)
    assert first.lam == again.lam and torch.equal(first.inputs, again.inputs)
    torch.manual_seed(0)
    mixer = CutMix(prob=0.25)
    share = sum(mixer(x, y) is not None for _ in range(1000)) / 1000
    assert abs(share - 0.25) < 0.05
    assert [CutMix(off_epoch=2).active(e, 4) for e in range(4)] == [True, True, False, False]


# -- Cutout -----------------------------------------------------------------------------


def _expected_cutout(n, holes, side, h, w, seed, per_image: bool) -> torch.Tensor:
    """The erased mask (N, H, W) from the documented draws, computed with Python loops."""
    torch.manual_seed(seed)
    if per_image:
        cy, cx = torch.randint(0, h, (n, holes)), torch.randint(0, w, (n, holes))
    else:
        draws = [(int(torch.randint(0, h, ())), int(torch.randint(0, w, ()))) for _ in range(holes)]
        cy = torch.tensor([[d[0] for d in draws]] * n)
        cx = torch.tensor([[d[1] for d in draws]] * n)
    mask = torch.zeros(n, h, w, dtype=torch.bool)
    for i in range(n):
        for k in range(holes):
            for r in range(h):
                for c in range(w):
                    top, left = int(cy[i, k]) - side // 2, int(cx[i, k]) - side // 2
                    if top <= r < top + side and left <= c < left + side:
                        mask[i, r, c] = True
    return mask


@pytest.mark.parametrize(
    ("mode", "holes", "size", "side"), [("elem", 1, 0.5, 4), ("elem", 3, 3, 3), ("batch", 2, 5, 5)]
)
def test_cutout_erases_exactly_the_clipped_squares(mode, holes, size, side) -> None:
    n, h, w = 24, 8, 8
    x = torch.randn(n, 3, h, w) + 10  # no zeros of its own
    y = torch.arange(n) % 4
    torch.manual_seed(7)
    mixed = Cutout(size=size, holes=holes, mode=mode)(x, y)
    expected = _expected_cutout(n, holes, side, h, w, seed=7, per_image=mode == "elem")
    erased = mixed.inputs == 0
    assert torch.equal(erased, expected[:, None].expand(n, 3, h, w))
    assert torch.equal(mixed.inputs[~erased], x[~erased])
    kept = 1 - expected.flatten(1).sum(dim=1) / (h * w)
    if mode == "batch":
        assert isinstance(mixed.lam, float) and mixed.lam == float(kept[0])
    else:
        torch.testing.assert_close(mixed.lam, kept, rtol=0, atol=1e-7)
    assert (kept < 1).all() and (kept >= 1 - holes * side * side / (h * w)).all()
    # the label is unchanged: the loss is the plain per-sample loss
    assert mixed.partner_targets is None
    outputs = torch.randn(n, 4)
    assert torch.equal(
        mixed.loss(CrossEntropy(), outputs, y), F.cross_entropy(outputs, y, reduction="none")
    )


def test_cutout_fraction_follows_the_image_side_and_clips() -> None:
    x, y = torch.ones(200, 1, 10, 10), torch.zeros(200, dtype=torch.long)
    torch.manual_seed(0)
    erased = Cutout(size=0.3)(x, y).inputs[:, 0] == 0  # round(0.3·10) = 3 pixels
    sizes = [int(m.sum()) for m in erased]
    assert max(sizes) == 9 and min(sizes) == 4  # a 3×3 square; in a corner 2×2 remain
    assert Cutout(size=25)(x, y).lam.eq(0).all()  # larger than the image: all erased


# -- Manifold Mixup -----------------------------------------------------------------------

MODELS = [
    (SmallCNN, {}, 8, 1, (0, 4, 8)),
    (MLP, {"hidden": [16, 16, 16]}, 8, 1, (0, 4, 7)),
    (PreActResNet, {"depth": 10, "width": 4}, 8, 3, (0, 2, 3, 4)),
    (WideResNet, {"depth": 10, "widen": 1}, 8, 3, (0, 2, 3)),
    (AirNet, {"widths": [8, 16, 16]}, 8, 3, (0, 3, 4)),
]


@pytest.mark.parametrize(("cls", "params", "size", "channels", "points"), MODELS)
def test_models_declare_their_stage_boundaries(cls, params, size, channels, points) -> None:
    torch.manual_seed(0)
    model = cls(num_classes=5, in_channels=channels, image_size=size, **params)
    assert model.mix_points == points and model.mixable_points() == len(points)
    assert not any("mix" in key for key in model.state_dict())
    x = torch.randn(6, channels, size, size)
    partners = torch.randperm(6)
    lam = torch.rand(6, dtype=torch.float64).float()
    model.train()
    for layer, at in enumerate(points):
        # independent: slice the backbone at the point, mix by hand, run the rest
        torch.manual_seed(1)
        h = model.backbone[:at](x)
        lam_h = lam.view(-1, *([1] * (h.dim() - 1)))
        expected = model.backbone[at:](lam_h * h + (1 - lam_h) * h[partners])
        if cls is AirNet:
            expected = expected * model.output_scale
        torch.manual_seed(1)
        out = model(x, hidden_mix=HiddenMix(layer=layer, lam=lam, partners=partners))
        torch.testing.assert_close(out, model.head(expected), rtol=0, atol=1e-6)
    # without a hidden mix the forward pass is the plain one, bit for bit
    model.eval()
    assert torch.equal(model(x), model.head(model.features(x)))


@pytest.mark.parametrize(("cls", "params", "size", "channels", "points"), MODELS)
@pytest.mark.parametrize("mode", ["batch", "elem"])
def test_manifold_mixup_at_the_input_is_mixup(cls, params, size, channels, points, mode) -> None:
    torch.manual_seed(0)
    # train mode: AirNet's eval-time flip TTA does not apply to hidden mixes
    model = cls(num_classes=5, in_channels=channels, image_size=size, **params).train()
    x, y = torch.randn(16, channels, size, size), torch.arange(16) % 5
    mixer = ManifoldMixup(alpha=0.4, mode=mode, layers=[0])
    mixer.bind(model)
    torch.manual_seed(3)
    manifold = mixer(x, y)
    torch.manual_seed(3)
    plain = Mixup(alpha=0.4, mode=mode)(x, y)
    assert torch.equal(manifold.partner_index, plain.partner_index)
    assert torch.equal(torch.as_tensor(manifold.lam), torch.as_tensor(plain.lam))
    assert manifold.inputs is x and manifold.hidden_mix.layer == 0
    assert torch.equal(manifold.partner_targets, plain.partner_targets)
    out = model(manifold.inputs, hidden_mix=manifold.hidden_mix)
    assert torch.equal(out, model(plain.inputs))


def test_manifold_mixup_draws_layers_uniformly() -> None:
    model = SmallCNN(num_classes=3, in_channels=1, image_size=8)
    x, y = torch.randn(4, 1, 8, 8), torch.arange(4) % 3
    mixer = ManifoldMixup()
    mixer.bind(model)
    torch.manual_seed(0)
    counts = torch.bincount(torch.tensor([mixer(x, y).hidden_mix.layer for _ in range(3000)]))
    assert counts.tolist() == pytest.approx([1000, 1000, 1000], abs=90)
    assert mixer.describe()["points"] == [0, 1, 2]
    picky = ManifoldMixup(layers=[2, 1])
    picky.bind(model)
    assert {picky(x, y).hidden_mix.layer for _ in range(100)} == {1, 2}


def test_bind_refuses_models_without_points_and_unknown_layers() -> None:
    plain = Classifier(nn.Flatten(), 64, 10)  # e.g. a torchvision backbone declares none
    with pytest.raises(ConfigError) as err:
        ManifoldMixup().bind(plain)
    assert err.value.key == "aug" and str(err.value).startswith(
        "aug=manifold_mixup: model Classifier has no mixable points; use model=cnn"
    )
    with pytest.raises(ConfigError) as err:
        ManifoldMixup(layers=[0, 3]).bind(SmallCNN(num_classes=3, in_channels=1, image_size=8))
    assert err.value.key == "aug.layers" and "0 to 2 (0 = the input)" in str(err.value)
    with pytest.raises(RuntimeError, match="bind"):
        ManifoldMixup()(torch.zeros(2, 1, 8, 8), torch.zeros(2, dtype=torch.long))


def test_torchvision_model_has_no_mixable_points(compose_cfg) -> None:
    spec = build_spec(compose_cfg(["model=torchvision", "+aug=manifold_mixup"]))
    model = spec.model_factory(num_classes=10, in_channels=1, image_size=8)
    with pytest.raises(ConfigError, match="model TorchvisionModel has no mixable points"):
        spec.mixer.bind(model)


def test_the_refusal_names_exactly_the_shipped_models_with_mixable_points(compose_cfg) -> None:
    conf = Path(__file__).resolve().parent.parent / "conf" / "model"
    mixable = []
    # model=torchvision (none: test_torchvision_model_has_no_mixable_points) costs 2 s to build
    for name in sorted(p.stem for p in conf.glob("*.yaml") if p.stem != "torchvision"):
        spec = build_spec(compose_cfg([f"model={name}", "dataset=synthetic"]))
        model = spec.model_factory(num_classes=10, in_channels=3, image_size=32)
        if model.mixable_points():
            mixable.append(name)
    named = MIXABLE_MODELS.removeprefix("model=").replace(" or ", ", ").split(", ")
    assert sorted(named) == mixable


# -- the mixup / CutMix switch ----------------------------------------------------------


def test_mixup_cutmix_switch() -> None:
    x, y = _distinct_batch(8), torch.arange(8)
    torch.manual_seed(2)
    cut = MixupCutMix(switch_prob=1.0)(x, y)
    torch.manual_seed(2)
    assert torch.equal(cut.inputs, CutMix(alpha=1.0)(x, y).inputs)
    torch.manual_seed(2)
    blend = MixupCutMix(switch_prob=0.0, mixup_alpha=0.8)(x, y)
    torch.manual_seed(2)
    reference = Mixup(alpha=0.8)(x, y)
    assert blend.lam == reference.lam
    assert torch.equal(blend.inputs, mix_inputs(x, reference.lam, reference.partner_index))
    torch.manual_seed(0)
    mixer = MixupCutMix(switch_prob=0.3)

    def is_cutmix(m) -> bool:  # CutMix pixels are copies: each equals x or x[π] exactly
        return bool(((m.inputs == x) | (m.inputs == x[m.partner_index])).all())

    share = sum(is_cutmix(mixer(x, y)) for _ in range(600)) / 600
    assert abs(share - 0.3) < 0.06


# -- config: YAML, validation, one-line errors -------------------------------------------


def test_yaml_builds_the_new_mixers(compose_cfg) -> None:
    def mixer(*overrides: str):
        return build_spec(compose_cfg(list(overrides))).mixer

    cutmix = mixer("+aug=cutmix", "aug.mode=elem")
    assert isinstance(cutmix, CutMix)
    assert cutmix.describe() == {
        "name": "cutmix",
        "alpha": 1.0,
        "mode": "elem",
        "prob": 1.0,
        "off_epoch": None,
    }
    cutout = mixer("+aug=cutout", "aug.size=16", "aug.holes=2")
    assert isinstance(cutout, Cutout) and (cutout.size, cutout.holes) == (16, 2)
    manifold = mixer("+aug=manifold_mixup", "aug.layers=[0,2]")
    assert isinstance(manifold, ManifoldMixup) and manifold.layers == [0, 2]
    assert manifold.describe()["alpha"] == 2.0
    switch = mixer("+aug=mixup_cutmix", "aug.switch_prob=0.25")
    assert isinstance(switch, MixupCutMix) and switch.switch_prob == 0.25


@pytest.mark.parametrize(
    ("aug", "override", "message"),
    [
        ("cutmix", "aug.alpha=0", "aug.alpha=0: must be in (0, inf)"),
        ("cutmix", "aug.mode=pixel", "aug.mode=pixel: must be one of batch, elem"),
        ("cutmix", "aug.off_epoch=0", "aug.off_epoch=0: must be an integer ≥ 1 or null"),
        (
            "cutout",
            "aug.size=0",
            "aug.size=0: must be an integer ≥ 1 (pixels) or a number in (0, 1)",
        ),
        ("cutout", "aug.size=1.5", "aug.size=1.5: must be an integer ≥ 1 (pixels) or a number in"),
        ("cutout", "aug.holes=0", "aug.holes=0: must be an integer ≥ 1"),
        ("cutout", "aug.prob=2", "aug.prob=2: must be in [0, 1]"),
        ("manifold_mixup", "aug.layers=[-1]", "aug.layers=[-1]: must be null (all mixable points)"),
        ("manifold_mixup", "aug.layers=[1,1]", "aug.layers=[1, 1]: must be null (all mixable"),
        ("manifold_mixup", "aug.lam=normal", "aug.lam=normal: must be one of uniform, beta"),
        ("mixup_cutmix", "aug.switch_prob=1.5", "aug.switch_prob=1.5: must be in [0, 1]"),
        ("mixup_cutmix", "aug.cutmix_alpha=0", "aug.cutmix_alpha=0: must be in (0, inf)"),
    ],
)
def test_bad_values_are_one_line_config_errors(compose_cfg, aug, override, message) -> None:
    with pytest.raises(ConfigError) as err:
        build_spec(compose_cfg([f"+aug={aug}", override]))
    assert str(err.value).startswith(message)


# -- through the engine -------------------------------------------------------------------


@pytest.mark.parametrize("aug", ["cutmix", "cutout"])
def test_short_run_with_new_mixer(train_run, tmp_path: Path, aug: str) -> None:
    run_dir = tmp_path / aug
    summary = train_run(
        ["trainer=smoke", "dataset=synthetic", f"+aug={aug}", "trainer.checkpoint=false"], run_dir
    )
    assert summary["aug"]["name"] == aug
    with open(run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["mix_fraction"]) for r in rows] == [1.0, 1.0]
    assert all(0.0 < float(r["lam_mean"]) < 1.0 for r in rows)
    with np.load(run_dir / "predictions.npz") as npz:
        recomputed = float((npz["probs"].argmax(axis=1) == npz["labels"]).mean())
    assert summary["test"]["acc"] == pytest.approx(recomputed, abs=1e-12)
