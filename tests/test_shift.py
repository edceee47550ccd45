"""dataset.test_shift: prior (skewed class frequencies) and corrupt (test images only)."""

from __future__ import annotations

import hashlib
import itertools
from collections import Counter

import numpy as np
import pytest
import torch

from regx.config.build import build_spec
from regx.data.corruptions import SEVERITY_PARAMS, corrupt
from regx.data.shift import (
    Shift,
    corrupted_copies,
    prior_class_frequencies,
    prior_shift_indices,
)
from regx.errors import ConfigError


def load(compose_cfg, *overrides: str, seed: int = 0):
    spec = build_spec(compose_cfg([*overrides, f"seed={seed}"]))
    return spec.dataset.load(seed=spec.seed)


@pytest.fixture(scope="module")
def clean(request):
    from conftest import compose_config

    return load(compose_config)


def test_prior_follows_the_documented_class_frequencies(compose_cfg, clean):
    data = load(compose_cfg, "dataset.test_shift=prior", "shift.strength=0.8")
    counts = np.bincount(data.test_y.numpy(), minlength=10)
    available = np.bincount(clean.test_y.numpy(), minlength=10)
    # π_c ∝ (1 − s)^(c/(K−1)), written out here: 0.2^(c/9)
    target = 0.2 ** (np.arange(10) / 9)
    target /= target.sum()
    np.testing.assert_allclose(prior_class_frequencies(10, 0.8), target, rtol=1e-12)
    total = np.min(available / target)
    np.testing.assert_array_equal(counts, np.floor(total * target + 1e-9).astype(int))
    # Class 0 most frequent, class 9 rarest, ratio ≈ 1/(1 − 0.8) = 5.
    assert counts[0] == available[0]
    assert 4.0 < counts[0] / counts[9] < 6.5
    # The kept images are test images, unchanged; training images are untouched.
    originals = {bytes(x.numpy()) for x in clean.test_x}
    assert all(bytes(x.numpy()) in originals for x in data.test_x)
    assert torch.equal(data.train_x, clean.train_x)


def test_a_prior_shift_records_its_counts_and_warns_for_classes_it_empties(compose_cfg, caplog):
    import logging

    with caplog.at_level(logging.WARNING, logger="regx"):
        data = load(compose_cfg, "dataset.test_shift=prior", "shift.strength=0.999999")
    counts = np.bincount(data.test_y.numpy(), minlength=10)
    record = data.info["test_shift"]
    assert record["class_counts"] == counts.tolist() and record["test_size"] == len(data.test_y)
    emptied = [str(c) for c in range(10) if counts[c] == 0]
    assert len(emptied) >= 3  # (1 − s)^(c/9): the rarest classes get no image
    shown = ", ".join(emptied[:6]) + (", …" if len(emptied) > 6 else "")
    assert [r.getMessage() for r in caplog.records] == [
        f"shift.strength=0.999999 leaves no test image of {len(emptied)} class(es) ({shown}): "
        "the shifted test set does not score them"
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="regx"):
        load(compose_cfg, "dataset.test_shift=prior", "shift.strength=0.8")
    assert caplog.records == []


def test_a_test_set_without_the_last_class_keeps_the_k_class_frequencies() -> None:
    # 4 classes, 100 test images each of classes 0–2 and none of class 3 (K = 4, not 3)
    labels = torch.arange(3).repeat_interleave(100)
    keep = prior_shift_indices(labels, 4, 0.5, np.random.default_rng(0))
    counts = np.bincount(labels[keep].numpy(), minlength=4)
    target = 0.5 ** (np.arange(4) / 3)  # π_c ∝ (1 − s)^(c/(K−1)) with K = 4
    target /= target.sum()
    total = 100 / target[0]  # class 0, the most frequent, is the one that runs out
    np.testing.assert_array_equal(counts, [100, *np.floor(total * target[1:3] + 1e-9), 0])
    assert counts.tolist() == [100, 79, 62, 0]  # K = 3 would keep [100, 70, 50, 0]


def test_prior_is_deterministic_given_the_seed(compose_cfg):
    a = load(compose_cfg, "dataset.test_shift=prior", seed=3)
    b = load(compose_cfg, "dataset.test_shift=prior", seed=3)
    c = load(compose_cfg, "dataset.test_shift=prior", seed=4)
    assert torch.equal(a.test_x, b.test_x)
    assert len(a.test_y) == len(c.test_y) and not torch.equal(a.test_x, c.test_x)


def test_strength_zero_keeps_a_balanced_test_set(compose_cfg, clean):
    data = load(compose_cfg, "dataset.test_shift=prior", "shift.strength=0")
    counts = np.bincount(data.test_y.numpy(), minlength=10)
    assert counts.min() == np.bincount(clean.test_y.numpy()).min()
    assert counts.max() - counts.min() <= 1


@pytest.mark.parametrize("kind", ["brightness", "contrast", "blur", "noise", "jpeg", "pixelate"])
def test_corrupt_changes_test_images_only(compose_cfg, clean, kind):
    data = load(compose_cfg, "dataset.test_shift=corrupt", f"shift.kind={kind}")
    assert torch.equal(data.train_x, clean.train_x)
    assert torch.equal(data.test_y, clean.test_y)
    assert data.test_x.dtype == torch.uint8 and data.test_x.shape == clean.test_x.shape
    changed = (data.test_x != clean.test_x).flatten(1).any(dim=1).float().mean().item()
    assert changed > 0.95
    # Normalization stats still come from the clean training images.
    assert data.mean == clean.mean and data.std == clean.std


def test_corruption_formulas():
    x = torch.tensor([[[[0, 51, 102, 255]]]], dtype=torch.uint8)  # 0, .2, .4, 1.0
    g = torch.Generator().manual_seed(0)
    bright = corrupt(x, "brightness", 3, g)  # + 0.15
    assert bright.tolist() == [[[[38, 89, 140, 255]]]]
    low = corrupt(x, "contrast", 2, g)  # (x − m)·0.5 + m, m = 0.4
    m = x.float().mean() / 255
    expected = ((x.float() / 255 - m) * 0.5 + m).clamp(0, 1).mul(255).round()
    assert torch.equal(low.float(), expected)
    flat = torch.full((1, 1, 8, 8), 90, dtype=torch.uint8)
    assert torch.equal(corrupt(flat, "blur", 5, g), flat)  # blur keeps constant images


def test_noise_severity_sets_the_noise_level_and_the_seed_the_draw():
    flat = torch.full((64, 1, 16, 16), 128, dtype=torch.uint8)
    for severity in (1, 5):
        noisy = corrupt(flat, "noise", severity, torch.Generator().manual_seed(0))
        sigma = (noisy.float() - 128).std().item() / 255
        assert sigma == pytest.approx(SEVERITY_PARAMS["noise"][severity - 1], rel=0.05)
    a = corrupt(flat, "noise", 3, torch.Generator().manual_seed(1))
    b = corrupt(flat, "noise", 3, torch.Generator().manual_seed(1))
    c = corrupt(flat, "noise", 3, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_blur_smooths_more_at_higher_severity(clean):
    def roughness(x: torch.Tensor) -> float:
        return (x.float().diff(dim=-1).abs().mean()).item()

    g = torch.Generator()
    r = [roughness(corrupt(clean.test_x, "blur", s, g)) for s in (1, 3, 5)]
    assert roughness(clean.test_x) > r[0] > r[1] > r[2]


def test_corrupt_noise_is_deterministic_given_the_run_seed(compose_cfg):
    a = load(compose_cfg, "dataset.test_shift=corrupt", seed=1)
    b = load(compose_cfg, "dataset.test_shift=corrupt", seed=1)
    c = load(compose_cfg, "dataset.test_shift=corrupt", seed=2)
    assert torch.equal(a.test_x, b.test_x) and not torch.equal(a.test_x, c.test_x)


def test_the_engine_evaluates_the_shifted_test_set(compose_cfg):
    from regx.engine.setup import prepare_data

    spec = build_spec(compose_cfg(["dataset.test_shift=corrupt", "shift.kind=brightness"]))
    prep = prepare_data(spec, torch.device("cpu"))
    assert prep.data.info["test_shift"] == {"mode": "corrupt", "kind": "brightness", "severity": 3}
    # Digits' test backgrounds are 0 before the shift; +0.15 makes them 38.
    assert prep.data.test_x.min().item() == 38


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "dataset.test_shift=rotate",
            "dataset.test_shift=rotate: must be one of none, prior, corrupt, subpop",
        ),
        ("shift.severity=6", "shift.severity=6: must be an integer in [1, 5]"),
        (
            "shift.kind=fog",
            "shift.kind=fog: must be one of brightness, contrast, blur, noise, jpeg, pixelate",
        ),
        (
            "shift.score=size",
            "shift.score=size: must be one of brightness, ink, contrast, class_subgroup, hue",
        ),
        ("shift.keep=0", "shift.keep=0: must be in (0, 1]"),
        ("shift.tilt=inf", "shift.tilt=inf: must be a finite number"),
        ("shift.strength=1.0", "shift.strength=1.0: must be in [0, 1)"),
    ],
)
def test_bad_shift_values_name_the_key(compose_cfg, override, message):
    with pytest.raises(ConfigError) as err:
        build_spec(compose_cfg([override]))
    assert str(err.value) == message


def test_bad_shift_value_is_one_line_exit_2_on_the_cli(cli):
    result = cli("train", "shift.severity=0")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].endswith("shift.severity=0: must be an integer in [1, 5]")


def test_shift_object_rejects_unknown_modes():
    from regx.data.digits import Digits

    with pytest.raises(
        ConfigError, match="test_shift=blur: must be one of none, prior, corrupt, subpop"
    ):
        Digits(test_shift="blur")
    assert Shift(kind="blur", severity=1).describe("none") == {"mode": "none"}


# -- jpeg and pixelate ----------------------------------------------------------------------
def _rgb_images(n: int = 4, size: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(5)
    coarse = torch.rand(n, 3, size // 4, size // 4, generator=g)
    smooth = torch.nn.functional.interpolate(coarse, size=size, mode="bilinear")
    return (smooth * 255).round().to(torch.uint8)


@pytest.mark.parametrize("kind", ["jpeg", "pixelate"])
def test_jpeg_and_pixelate_are_per_image_deterministic(clean, kind):
    x = clean.test_x[:12]
    for severity in (1, 3, 5):
        batch = corrupt(x, kind, severity, torch.Generator().manual_seed(0))
        one_by_one = torch.cat([corrupt(x[i : i + 1], kind, severity, None) for i in range(12)])
        assert torch.equal(batch, one_by_one)
    flat = torch.full((2, 1, 8, 8), 77, dtype=torch.uint8)
    assert (corrupt(flat, kind, 5, None).int() - 77).abs().max() <= 1  # constant stays put


def test_jpeg_and_pixelate_match_pil_on_rgb_images():
    import io

    from PIL import Image

    x = _rgb_images()
    a = x[1].permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(a).save(buffer, format="JPEG", quality=50)  # severity 4
    expected = np.asarray(Image.open(buffer).convert("RGB"))
    ours = corrupt(x, "jpeg", 4, None)[1].permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(ours, expected)
    # pixelate severity 4: c = 0.75, 32 → 24 px box, back to 32 px box (CIFAR-10-C's)
    expected = np.asarray(
        Image.fromarray(a).resize((24, 24), Image.BOX).resize((32, 32), Image.BOX)
    )
    ours = corrupt(x, "pixelate", 4, None)[1].permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(ours, expected)
    assert not np.array_equal(ours, a)


@pytest.mark.parametrize("kind", ["jpeg", "pixelate"])
def test_jpeg_and_pixelate_degrade_more_at_higher_severity(clean, kind):
    # pixelate on detailed 32-px images (pixel noise): on 8-px digits the floor to whole
    # pixels merges and reorders severities (sizes 7, 7, 6, 6, 5; see regx.data.corruptions),
    # and on smooth images the error of the box resampling is not monotone either (aliasing)
    g = torch.Generator().manual_seed(0)
    noise = torch.randint(0, 256, (16, 3, 32, 32), generator=g, dtype=torch.uint8)
    x = clean.test_x if kind == "jpeg" else noise

    def error(severity: int) -> float:
        out = corrupt(x, kind, severity, None)
        return (out.float() - x.float()).abs().mean().item()

    errors = [error(s) for s in (1, 2, 3, 4, 5)]
    assert errors[0] > 0 and all(b >= a for a, b in itertools.pairwise(errors))
    assert errors[4] > 1.5 * errors[0]


def test_corrupted_copies_equal_the_corrupt_shift(compose_cfg, clean):
    cells = list(corrupted_copies(clean.test_x, ["noise", "jpeg"], [2, 5], seed=3))
    assert [(k, s) for k, s, _ in cells] == [("noise", 2), ("noise", 5), ("jpeg", 2), ("jpeg", 5)]
    for kind, severity, images in cells:
        alone = load(
            compose_cfg,
            "dataset.test_shift=corrupt",
            f"shift.kind={kind}",
            f"shift.severity={severity}",
            seed=3,
        )
        assert torch.equal(images, alone.test_x)


# -- subpop ---------------------------------------------------------------------------------
def _digests(x: torch.Tensor, y: torch.Tensor) -> Counter:
    return Counter((hashlib.sha256(bytes(img.numpy())).hexdigest(), int(c)) for img, c in zip(x, y))


def _brightness_z(train_x: torch.Tensor, x: torch.Tensor) -> np.ndarray:
    """z of the brightness score, computed here from its definition."""
    s_train = train_x.double().mean(dim=(1, 2, 3)).numpy() / 255
    s = x.double().mean(dim=(1, 2, 3)).numpy() / 255
    return (s - s_train.mean()) / s_train.std()


@pytest.mark.parametrize("score", ["brightness", "class_subgroup"])
def test_subpop_keeps_only_unmodified_test_images(compose_cfg, clean, score):
    data = load(compose_cfg, "dataset.test_shift=subpop", f"shift.score={score}", "shift.tilt=2")
    kept, originals = _digests(data.test_x, data.test_y), _digests(clean.test_x, clean.test_y)
    assert not kept - originals  # every (image, label) is an original, none twice too often
    assert sum(kept.values()) == len(data.test_y) == round(0.5 * len(clean.test_y))
    assert torch.equal(data.train_x, clean.train_x) and torch.equal(data.train_y, clean.train_y)
    assert data.mean == clean.mean and data.std == clean.std


def test_subpop_records_the_realized_shift(compose_cfg, clean):
    data = load(compose_cfg, "dataset.test_shift=subpop", "shift.score=brightness", "shift.tilt=2")
    info = data.info["test_shift"]
    assert {k: info[k] for k in ("mode", "score", "tilt", "keep")} == {
        "mode": "subpop",
        "score": "brightness",
        "tilt": 2.0,
        "keep": 0.5,
    }
    assert (info["test_size_before"], info["test_size_after"]) == (359, 180)
    bright = lambda x: (x.double().mean(dim=(1, 2, 3)) / 255).mean().item()  # noqa: E731
    assert info["train_mean"] == pytest.approx(bright(clean.train_x))
    assert info["test_mean_before"] == pytest.approx(bright(clean.test_x))
    assert info["test_mean_after"] == pytest.approx(bright(data.test_x))
    z_after = _brightness_z(clean.train_x, data.test_x).mean()
    assert info["z_test_after"] == pytest.approx(z_after)
    assert info["z_test_after"] > info["z_test_before"] + 0.5


def test_subpop_raises_the_mean_score_by_the_documented_amount(compose_cfg):
    from regx.data.subpop import expected_kept_mean

    sizes = ["dataset=synthetic", "dataset.num_train=2000", "dataset.num_test=2000"]
    base = load(compose_cfg, *sizes)
    z = _brightness_z(base.train_x, base.test_x)
    for tilt in (1.0, 2.0):
        shifted = []
        for seed in (0, 1, 2):
            data = load(
                compose_cfg, *sizes, "dataset.test_shift=subpop", f"shift.tilt={tilt}", seed=seed
            )
            shifted.append(_brightness_z(base.train_x, data.test_x).mean())
        # Three draws of 1,000 of 2,000: the mean's sd is about 0.02 / sqrt(3).
        assert np.mean(shifted) == pytest.approx(expected_kept_mean(z, tilt, 0.5), abs=0.04)
        assert np.mean(shifted) > z.mean() + 0.3 * tilt


def test_the_documented_amount_is_the_draws_expectation():
    from regx.data.subpop import expected_kept_mean, tilted_draw

    z = np.random.default_rng(0).standard_normal(400)
    rng = np.random.default_rng(1)
    draws = [z[tilted_draw(z, 2.0, 0.5, rng)].mean() for _ in range(400)]
    assert np.mean(draws) == pytest.approx(expected_kept_mean(z, 2.0, 0.5), abs=0.01)
    # The figures of the module docstring, for Gaussian scores.
    gauss = np.random.default_rng(2).standard_normal(200_000)
    assert expected_kept_mean(gauss, 2.0, 0.5) == pytest.approx(0.68, abs=0.01)
    assert expected_kept_mean(gauss, 1.0, 0.5) == pytest.approx(0.52, abs=0.01)
    assert expected_kept_mean(gauss, 0.0, 0.5) == pytest.approx(0.0, abs=0.01)


def test_tilt_zero_is_the_natural_test_distribution(compose_cfg, clean):
    from scipy.stats import ks_2samp

    z_train = _brightness_z(clean.train_x, clean.train_x)
    natural = load(compose_cfg, "dataset.test_shift=subpop", "shift.tilt=0")
    tilted = load(compose_cfg, "dataset.test_shift=subpop", "shift.tilt=2")
    p_natural = ks_2samp(_brightness_z(clean.train_x, natural.test_x), z_train).pvalue
    p_tilted = ks_2samp(_brightness_z(clean.train_x, tilted.test_x), z_train).pvalue
    assert p_natural > 0.05  # the same distribution as the training images'
    assert p_tilted < 1e-6  # the test rejects a tilted set of the same size


def test_class_subgroup_over_represents_one_cluster_per_class(compose_cfg, clean):
    from regx.data.subpop import subgroup_scores

    (z_train, _), (z_test, _) = subgroup_scores(
        clean.train_x, clean.train_y, clean.test_x, clean.test_y
    )
    assert set(np.unique(z_train)) == {-1.0, 1.0}
    data = load(compose_cfg, "dataset.test_shift=subpop", "shift.score=class_subgroup")
    (_, _), (z_kept, _) = subgroup_scores(clean.train_x, clean.train_y, data.test_x, data.test_y)
    y_train, y_test, y_kept = clean.train_y.numpy(), clean.test_y.numpy(), data.test_y.numpy()
    raised = 0
    for c in range(10):
        assert (z_train[y_train == c] == 1).mean() <= 0.5  # +1: the smaller training cluster
        raised += (z_kept[y_kept == c] == 1).mean() > (z_test[y_test == c] == 1).mean()
    assert raised >= 9


def test_score_formulas():
    from regx.data.subpop import raw_scores

    x = torch.tensor([[[[0, 255], [255, 51]]]], dtype=torch.uint8)  # 0, 1, 1, 0.2
    values = np.array([0.0, 1.0, 1.0, 0.2])
    assert raw_scores(x, "brightness")[0] == pytest.approx(0.55)
    assert raw_scores(x, "ink")[0] == pytest.approx(0.5)  # two of four above the mean 0.55
    assert raw_scores(x, "contrast")[0] == pytest.approx(values.std())
    colours = torch.tensor([[255, 0, 0], [0, 255, 0], [0, 0, 255]], dtype=torch.uint8)
    hue = raw_scores(colours.view(3, 3, 1, 1).expand(3, 3, 2, 2), "hue")
    np.testing.assert_allclose(hue, [0.0, 2 * np.pi / 3, -2 * np.pi / 3], atol=1e-12)


def test_hue_needs_rgb_and_shifts_rgb_images(compose_cfg):
    with pytest.raises(ConfigError) as err:
        load(compose_cfg, "dataset.test_shift=subpop", "shift.score=hue")
    assert str(err.value) == "shift.score=hue: needs RGB images; this dataset has 1 channel"
    rgb = [
        "dataset=synthetic",
        "dataset.channels=3",
        "dataset.test_shift=subpop",
        "shift.score=hue",
    ]
    info = load(compose_cfg, *rgb).info["test_shift"]
    assert info["test_size_after"] == 128
    assert info["z_test_after"] > info["z_test_before"] + 0.5


def test_subpop_is_deterministic_given_the_seed(compose_cfg):
    a = load(compose_cfg, "dataset.test_shift=subpop", seed=3)
    b = load(compose_cfg, "dataset.test_shift=subpop", seed=3)
    c = load(compose_cfg, "dataset.test_shift=subpop", seed=4)
    assert torch.equal(a.test_x, b.test_x) and not torch.equal(a.test_x, c.test_x)
