"""dataset.test_shift: prior (skewed class frequencies) and corrupt (test images only)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from regx.config.build import build_spec
from regx.data.shift import SEVERITY_PARAMS, Shift, corrupt, prior_class_frequencies
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
    target = prior_class_frequencies(10, 0.8)
    total = np.min(available / target)
    np.testing.assert_array_equal(counts, np.floor(total * target + 1e-9).astype(int))
    # Class 0 most frequent, class 9 rarest, ratio ≈ 1/(1 − 0.8) = 5.
    assert counts[0] == available[0]
    assert 4.0 < counts[0] / counts[9] < 6.5
    assert np.all(np.diff(counts) <= 1)  # non-increasing up to rounding
    # The kept images are test images, unchanged; training images are untouched.
    originals = {bytes(x.numpy()) for x in clean.test_x}
    assert all(bytes(x.numpy()) in originals for x in data.test_x)
    assert torch.equal(data.train_x, clean.train_x)


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


@pytest.mark.parametrize("kind", ["brightness", "contrast", "blur", "noise"])
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
            "dataset.test_shift=rotate: must be one of none, prior, corrupt",
        ),
        ("shift.severity=6", "shift.severity=6: must be an integer in [1, 5]"),
        ("shift.kind=fog", "shift.kind=fog: must be one of brightness, contrast, blur, noise"),
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

    with pytest.raises(ConfigError, match="test_shift=blur: must be one of none, prior, corrupt"):
        Digits(test_shift="blur")
    assert Shift(kind="blur", severity=1).describe("none") == {"mode": "none"}
