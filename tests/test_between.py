"""Between-sample diagnostics: pairs, each metric against an independent computation,
settings validation, and the report's figure and section."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from regx.data.augment import Normalize
from regx.errors import ConfigError
from regx.losses.ce import CrossEntropy
from regx.losses.gamma_ce import GammaCrossEntropy
from regx.metrics.between import BetweenSettings, between_sample_metrics, draw_pairs
from regx.models.base import Classifier
from regx.report.between import between_section, plot_between

LAMS = (0.25, 0.5, 0.75)


def _images(n: int, channels: int = 1, size: int = 4, classes: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, channels, size, size), generator=g, dtype=torch.uint8)
    return images, torch.arange(n) % classes


def _double_normalize(mean: float, std: float):
    """(x/255 − mean)/std in float64: the same formula as Normalize, for float64 models."""
    return lambda x: (x / 255.0 - mean) / std


# -- pairs ------------------------------------------------------------------------------


def test_pairs_have_different_classes_and_uniform_partners() -> None:
    labels = np.array([0, 0] + [1] * 8)
    a, b = draw_pairs(labels, 40000, seed=3)
    assert (labels[a] != labels[b]).all()
    again = draw_pairs(labels, 40000, seed=3)
    assert np.array_equal(a, again[0]) and np.array_equal(b, again[1])
    assert not np.array_equal(b, draw_pairs(labels, 40000, seed=4)[1])
    # a uniform (each image 1/10); b uniform among the other class's images:
    # P(b = a class-0 image) = 0.8 / 2 = 0.4, P(b = a class-1 image) = 0.2 / 8 = 0.025
    np.testing.assert_allclose(np.bincount(a, minlength=10) / 40000, 0.1, atol=0.01)
    expected_b = np.array([0.4, 0.4] + [0.025] * 8)
    np.testing.assert_allclose(np.bincount(b, minlength=10) / 40000, expected_b, atol=0.01)


# -- the metrics against independent computations ---------------------------------------


def test_linear_model_has_zero_logit_gap() -> None:
    torch.manual_seed(0)
    images, labels = _images(30, channels=2)
    model = Classifier(nn.Flatten(), 32, 3).double()
    normalize = _double_normalize(0.4, 0.3)
    kwargs = dict(pairs=200, lams=LAMS, batch_size=64)
    logits = between_sample_metrics(
        model, images, labels, normalize, CrossEntropy(), **kwargs, space="logits"
    )
    for lam in ("0.25", "0.5", "0.75"):
        assert abs(logits["linearity_gap"][lam]) < 1e-6
        assert abs(logits["feature_gap"][lam]) < 1e-6  # φ = flatten: linear too
    # the softmax of a linear model is not linear: the probability gap is not 0
    probs = between_sample_metrics(model, images, labels, normalize, CrossEntropy(), **kwargs)
    assert probs["linearity_gap"]["0.5"] > 1e-3


def _numpy_metrics(model, images, labels, pairs, seed, mean, std) -> dict[str, list[float]]:
    """The four metrics of a Flatten → Linear → tanh → Linear model with CE, in numpy."""
    w1, b1 = (t.detach().numpy() for t in (model.backbone[1].weight, model.backbone[1].bias))
    w2, b2 = (t.detach().numpy() for t in (model.head.weight, model.head.bias))
    x = images.numpy().reshape(len(images), -1).astype(np.float64) / 255.0
    y = labels.numpy()
    a, b = draw_pairs(y, pairs, seed)

    def forward(pixels):
        phi = np.tanh(((pixels - mean) / std) @ w1.T + b1)
        logits = phi @ w2.T + b2
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        return phi, logits, p / p.sum(axis=1, keepdims=True)

    phi_a, _, p_a = forward(x[a])
    phi_b, _, p_b = forward(x[b])
    mean_norm = np.concatenate(
        [np.linalg.norm(phi_a, axis=1), np.linalg.norm(phi_b, axis=1)]
    ).mean()
    out = {"linearity_gap": [], "miss_rate": [], "grad_norm": [], "feature_gap": []}
    for lam in LAMS:
        phi, logits, p = forward(lam * x[a] + (1 - lam) * x[b])
        out["linearity_gap"].append(np.abs(p - (lam * p_a + (1 - lam) * p_b)).sum(axis=1).mean())
        predicted = logits.argmax(axis=1)
        out["miss_rate"].append(((predicted != y[a]) & (predicted != y[b])).mean())
        # ∂/∂logits of λ·CE(y_a) + (1−λ)·CE(y_b) = p − (λ·e_a + (1−λ)·e_b), then back-propagate
        target = lam * np.eye(3)[y[a]] + (1 - lam) * np.eye(3)[y[b]]
        d_pre = ((p - target) @ w2) * (1 - phi**2)
        grad = (d_pre @ w1) / std
        out["grad_norm"].append(np.linalg.norm(grad, axis=1).mean())
        line = lam * phi_a + (1 - lam) * phi_b
        out["feature_gap"].append(np.linalg.norm(phi - line, axis=1).mean() / mean_norm)
    return out


def test_nonlinear_model_matches_numpy() -> None:
    torch.manual_seed(1)
    images, labels = _images(40)
    backbone = nn.Sequential(nn.Flatten(), nn.Linear(16, 6), nn.Tanh())
    model = Classifier(backbone, 6, 3).double()
    with torch.no_grad():
        model.head.weight.mul_(4)  # confident enough that some mixes are missed
    result = between_sample_metrics(
        model,
        images,
        labels,
        _double_normalize(0.5, 0.25),
        CrossEntropy(),
        pairs=300,
        lams=LAMS,
        seed=5,
        batch_size=100,
    )
    expected = _numpy_metrics(model, images, labels, 300, 5, 0.5, 0.25)
    assert result["pairs"] == 300 and result["lams"] == list(LAMS)
    for key, values in expected.items():
        got = [result[key][k] for k in ("0.25", "0.5", "0.75")]
        # regx's CE works in float32 (log-softmax of outputs.float()): so does its gradient
        rtol = 1e-6 if key == "grad_norm" else 1e-9
        np.testing.assert_allclose(got, values, rtol=rtol, atol=1e-12, err_msg=key)
    assert 0 < result["miss_rate"]["0.5"] < 1 and result["linearity_gap"]["0.5"] > 0.01


def test_miss_rate_zero_when_predicting_the_pair() -> None:
    # class c's image is bright at pixel c only; the model's logits are the pixels 0..3,
    # so a mix is predicted as y_a (λ > 1/2) or y_b (λ < 1/2; a tie goes to one of them)
    labels = torch.arange(40) % 4
    images = torch.zeros(40, 1, 2, 2, dtype=torch.uint8)
    images.view(40, 4)[torch.arange(40), labels] = 255
    model = Classifier(nn.Flatten(), 4, 4)
    with torch.no_grad():
        model.head.weight.copy_(torch.eye(4))
        model.head.bias.zero_()
    normalize = Normalize((0.0,), (1.0,), torch.device("cpu"))
    result = between_sample_metrics(model, images, labels, normalize, CrossEntropy(), pairs=500)
    assert result["miss_rate"] == {"0.25": 0.0, "0.5": 0.0, "0.75": 0.0}
    # a model that always says class 0 misses exactly the pairs without a class-0 image
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.copy_(torch.tensor([1.0, 0, 0, 0]))
    a, b = draw_pairs(labels.numpy(), 500, seed=0)
    share = float(((labels.numpy()[a] != 0) & (labels.numpy()[b] != 0)).mean())
    constant = between_sample_metrics(model, images, labels, normalize, CrossEntropy(), pairs=500)
    assert 0.3 < share < 0.7 and constant["miss_rate"] == {
        k: share for k in ("0.25", "0.5", "0.75")
    }


def test_grad_norm_matches_autograd_per_pair_with_the_runs_loss() -> None:
    torch.manual_seed(2)
    images, labels = _images(25, channels=3, size=5, classes=4)
    backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten())
    model = Classifier(backbone, 36, 4)
    normalize = Normalize((0.5, 0.4, 0.3), (0.2, 0.25, 0.3), torch.device("cpu"))
    loss_fn = GammaCrossEntropy(gamma=0.5)  # mixing its losses ≠ mixing labels
    result = between_sample_metrics(model, images, labels, normalize, loss_fn, pairs=60, seed=1)
    a, b = draw_pairs(labels.numpy(), 60, seed=1)
    for lam in LAMS:
        norms = []
        for i, j in zip(a, b):  # one pair at a time, straight from the definition
            x = (lam * images[i].float() / 255 + (1 - lam) * images[j].float() / 255)[None]
            x.requires_grad_(True)
            out = model(normalize(x * 255))
            loss = lam * loss_fn(out, labels[i : i + 1]) + (1 - lam) * loss_fn(
                out, labels[j : j + 1]
            )
            (g,) = torch.autograd.grad(loss.sum(), x)
            norms.append(float(g.norm()))
        assert result["grad_norm"][f"{lam:g}"] == pytest.approx(np.mean(norms), rel=1e-5)


def test_leaves_rng_mode_and_grads_alone_and_is_deterministic() -> None:
    images, labels = _images(20)
    model = Classifier(nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.Dropout(0.5)), 8, 3)
    normalize = Normalize((0.5,), (0.25,), torch.device("cpu"))
    torch.manual_seed(9)
    state = torch.get_rng_state()
    model.train()
    first = between_sample_metrics(model, images, labels, normalize, CrossEntropy(), pairs=50)
    assert model.training and all(p.grad is None for p in model.parameters())
    assert torch.equal(torch.get_rng_state(), state)
    model.eval()
    assert (
        between_sample_metrics(model, images, labels, normalize, CrossEntropy(), pairs=50) == first
    )
    assert not model.training  # eval (dropout off) both times, so the same numbers


def test_off_or_single_class_gives_empty() -> None:
    images, labels = _images(10)
    model = Classifier(nn.Flatten(), 16, 3)
    normalize = Normalize((0.5,), (0.25,), torch.device("cpu"))
    assert between_sample_metrics(model, images, labels, normalize, CrossEntropy(), pairs=0) == {}
    same = torch.zeros(10, dtype=torch.long)
    assert between_sample_metrics(model, images, same, normalize, CrossEntropy()) == {}


# -- settings ---------------------------------------------------------------------------


def test_settings_defaults_and_validation() -> None:
    assert BetweenSettings.from_config(None) == BetweenSettings(1000, (0.25, 0.5, 0.75))
    assert BetweenSettings.from_config({"pairs": 10**6}).pairs == 10**6
    settings = BetweenSettings.from_config({"pairs": 0, "lams": [0, 1]})
    assert settings.pairs == 0 and settings.lams == (0.0, 1.0)
    bad = [
        ({"pairs": -1}, "between.pairs=-1: must be an integer ≥ 0 (0 turns it off)"),
        ({"pairs": True}, "between.pairs=True: must be an integer ≥ 0"),
        ({"pairs": 2.5}, "between.pairs=2.5: must be an integer ≥ 0"),
        ({"pairs": 10**12}, "between.pairs=1000000000000: must be at most 1000000"),
        (
            {"lams": [0.5, 1.5]},
            "between.lams=[0.5, 1.5]: must be a non-empty list of distinct numbers in [0, 1]",
        ),
        ({"lams": []}, "between.lams=[]: must be a non-empty list"),
        ({"lams": [0.5, 0.5]}, "between.lams=[0.5, 0.5]: must be a non-empty list of distinct"),
        ({"lams": "half"}, "between.lams=half: must be a non-empty list"),
        ({"pair": 10}, "between.pair=10: unknown key; allowed: pairs, lams"),
    ]
    for node, message in bad:
        with pytest.raises(ConfigError) as err:
            BetweenSettings.from_config(node)
        assert str(err.value).startswith(message), node
    with pytest.raises(ConfigError, match=r"^between\.lams"):
        between_sample_metrics(
            Classifier(nn.Flatten(), 16, 3), *_images(6), lambda x: x, CrossEntropy(), lams=(2.0,)
        )


# -- report -----------------------------------------------------------------------------

SUMMARY = {
    "between": {
        "pairs": 1000,
        "lams": [0.25, 0.5, 0.75],
        "space": "probs",
        "linearity_gap": {"0.25": 0.1234, "0.5": 0.2345, "0.75": 0.1111},
        "miss_rate": {"0.25": 0.05, "0.5": 0.125, "0.75": 0.04},
        "grad_norm": {"0.25": 1.5, "0.5": 2.25, "0.75": 1.0},
        "feature_gap": {"0.25": 0.3, "0.5": 0.4, "0.75": 0.2},
    }
}


def test_between_section_and_figure(tmp_path: Path) -> None:
    lines = between_section(SUMMARY)
    assert lines[0] == "## Between samples"
    assert "| metric | λ = 0.25 | λ = 0.5 | λ = 0.75 |" in lines
    rows = {line.split(" | ")[0]: line for line in lines if line.startswith("| ")}
    assert rows["| linearity gap ‖p(x̃) − (λp(a) + (1−λ)p(b))‖₁"].endswith(
        "| 0.1234 | 0.2345 | 0.1111 |"
    )
    assert rows["| miss rate (%): x̃ predicted as neither y_a nor y_b"].endswith(
        "| 5.00 | 12.50 | 4.00 |"
    )
    assert "![between-sample diagnostics](between.png)" in lines
    assert between_section({}) == [] and between_section({"between": {}}) == []
    plot_between(tmp_path / "between.png", SUMMARY["between"])
    from PIL import Image

    with Image.open(tmp_path / "between.png") as image:
        assert image.size == (800, 320)


def test_large_images_take_smaller_passes_with_the_same_result(monkeypatch) -> None:
    """Mixes per pass are bounded by pixels too (a 300 px run must not take all memory);
    the chunking changes nothing in the result."""
    from regx.metrics import between

    assert between.mixes_per_pass(512, 3 * 32 * 32) == 256
    assert between.mixes_per_pass(512, 1 * 8 * 8) == 512
    assert between.mixes_per_pass(512, 3 * 300 * 300) == 2
    assert between.mixes_per_pass(512, 10**9) == 1
    torch.manual_seed(0)
    images, labels = _images(24, channels=2, size=6)
    backbone = nn.Sequential(nn.Flatten(), nn.Linear(72, 5), nn.Tanh())
    model = Classifier(backbone, 5, 3).double()
    kwargs = dict(pairs=40, lams=LAMS, seed=2, batch_size=64)
    normalize = _double_normalize(0.5, 0.25)
    passes: list[int] = []
    original = between._add_chunk

    def counted(sums, model, ends, *args):
        passes.append(len(ends[0]))
        return original(sums, model, ends, *args)

    monkeypatch.setattr(between, "_add_chunk", counted)
    whole = between_sample_metrics(model, images, labels, normalize, CrossEntropy(), **kwargs)
    assert passes == [21, 19]  # 64 mixes per pass // 3 λ = 21 pairs
    passes.clear()
    monkeypatch.setattr(between, "PIXELS_PER_PASS", 2 * 72 * 3)  # 6 mixes: 2 pairs a pass
    small = between_sample_metrics(model, images, labels, normalize, CrossEntropy(), **kwargs)
    assert passes == [2] * 20
    for key in ("linearity_gap", "miss_rate", "grad_norm", "feature_gap"):
        np.testing.assert_allclose(list(small[key].values()), list(whole[key].values()), rtol=1e-9)
