"""Losses: γ-CE, AM-Softmax, label smoothing and focal against hand/closed-form values; their
schedules and margins across epochs and checkpoints; bad values; end-to-end runs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from regx.config.build import build_spec
from regx.engine.outputs import read_metrics_csv
from regx.errors import ConfigError
from regx.losses.am_softmax import AMSoftmax, CosineHead, mean_class_diameter
from regx.losses.base import EpochContext
from regx.losses.focal import FocalLoss
from regx.losses.gamma_ce import GammaCrossEntropy, scheduled_gamma
from regx.losses.label_smoothing import LabelSmoothing

GAMMAS = [0.0, 1e-7, 0.1, 0.5, 0.8, 1 - 1e-6, 1.0]
PROBS = [1e-30, 1e-8, 0.01, 0.3, 0.9, 0.999, 0.999999]


def logits_with_target_prob(p: float, num_classes: int = 4) -> torch.Tensor:
    """One row of float32 logits whose softmax gives class 0 probability ≈ p."""
    rest = (1 - p) / (num_classes - 1)
    return torch.tensor([[math.log(p)] + [math.log(rest)] * (num_classes - 1)])


def closed_form(p: float, gamma: float) -> float:
    """L(p, γ) in float64; γ = 1 is the limit 1 − p."""
    if gamma == 1.0:
        return 1 - p
    return -math.log(gamma + (1 - gamma) * p) / (1 - gamma)


def grid() -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """Logits for every p in PROBS (targets 0) and the exact float64 p_y of those logits."""
    logits = torch.cat([logits_with_target_prob(p) for p in PROBS])
    p_exact = torch.softmax(logits.double(), dim=1)[:, 0].tolist()
    return logits, torch.zeros(len(PROBS), dtype=torch.long), p_exact


def no_ctx(epoch: int, num_epochs: int) -> EpochContext:
    def embed() -> tuple[torch.Tensor, torch.Tensor]:
        raise AssertionError("this loss should not embed the training set")

    return EpochContext(epoch, num_epochs, embed)


# -- γ-CE: values -------------------------------------------------------------------------


@pytest.mark.parametrize("gamma", GAMMAS)
def test_gamma_ce_equals_the_closed_form(gamma: float) -> None:
    logits, targets, p_exact = grid()
    got = GammaCrossEntropy(gamma=gamma)(logits, targets).double()
    want = torch.tensor([closed_form(p, gamma) for p in p_exact], dtype=torch.float64)
    assert torch.isfinite(got).all()
    # atol: float32 logits pin log p_y near p = 1 only to ~1e-7, for cross-entropy too.
    torch.testing.assert_close(got, want, rtol=1e-5, atol=2e-7)


def test_gamma_ce_at_tiny_probability_has_the_expected_size() -> None:
    """p_y = 1e-30: CE = 69.08; γ=0.1 caps it near −log(0.1)/0.9 = 2.558; γ=1 gives 1."""
    logits = logits_with_target_prob(1e-30)
    y = torch.zeros(1, dtype=torch.long)
    values = [GammaCrossEntropy(gamma=g)(logits, y).item() for g in (0.0, 0.1, 1.0)]
    assert values[0] == pytest.approx(69.0776, abs=1e-3)
    assert values[1] == pytest.approx(-math.log(0.1) / 0.9, rel=1e-6)
    assert values[2] == pytest.approx(1.0, abs=1e-7)


def test_gamma_zero_is_cross_entropy_bit_for_bit() -> None:
    torch.manual_seed(0)
    logits = (torch.randn(64, 10) * 5).requires_grad_()
    y = torch.randint(0, 10, (64,))
    got = GammaCrossEntropy(gamma=0.0)(logits, y)
    want = F.cross_entropy(logits, y, reduction="none")
    assert torch.equal(got, want)
    (g_got,) = torch.autograd.grad(got.sum(), logits)
    (g_want,) = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), logits)
    torch.testing.assert_close(g_got, g_want, rtol=0, atol=1e-7)


def test_gamma_ce_is_continuous_towards_both_ends() -> None:
    """L(γ) − L(0) ≈ γ(1−p)/p (so only for p not tiny); L(1−ε) − (1−p) ≈ ε(1−p)²/2."""
    logits, targets, _ = grid()
    at = {g: GammaCrossEntropy(gamma=g)(logits, targets) for g in (0.0, 1e-7, 1 - 1e-6, 1.0)}
    not_tiny = torch.tensor(PROBS) >= 0.01
    torch.testing.assert_close(at[1e-7][not_tiny], at[0.0][not_tiny], rtol=0, atol=2e-5)
    torch.testing.assert_close(at[1 - 1e-6], at[1.0], rtol=0, atol=1e-6)


# -- γ-CE: gradients ----------------------------------------------------------------------


@pytest.mark.parametrize("gamma", GAMMAS)
def test_gamma_ce_gradient_is_minus_grad_p_over_mixture(gamma: float) -> None:
    """∂L/∂z = −∇p_y / (γ + (1−γ)p_y) with ∇p_y = p_y·(e_y − p)."""
    logits, targets, _ = grid()
    logits.requires_grad_()
    (grad,) = torch.autograd.grad(GammaCrossEntropy(gamma=gamma)(logits, targets).sum(), logits)
    p = torch.softmax(logits.detach().double(), dim=1)
    p_y = p[:, :1]
    grad_p = p_y * (F.one_hot(targets, p.shape[1]).double() - p)
    want = -grad_p / (gamma + (1 - gamma) * p_y)
    assert torch.isfinite(grad).all()
    torch.testing.assert_close(grad.double(), want, rtol=0, atol=1e-5)


def test_gamma_ce_stays_finite_under_bf16_autocast() -> None:
    head = torch.nn.Linear(4, 3)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[-40.0, 0, 0, 0], [40.0, 0, 0, 0], [0, 0, 0, 0]]))
        head.bias.zero_()
    x = torch.tensor([[2.0, 0.5, -1.0, 0.0]] * 8)  # p_y ≈ e^-160: far below float32's tiny
    y = torch.zeros(8, dtype=torch.long)
    for gamma in (0.0, 0.1, 0.8, 1.0):
        head.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = head(x)
            assert out.dtype == torch.bfloat16
            loss = GammaCrossEntropy(gamma=gamma)(out, y)
        assert loss.dtype == torch.float32 and torch.isfinite(loss).all()
        loss.mean().backward()
        assert torch.isfinite(head.weight.grad).all()
        # logits (−80, 80, 0) exactly in bf16, p_y ≈ e^-160: CE = 160, the limit γ → 1 is
        # 1 − p_y = 1, and in between −log(γ + (1 − γ)·p_y)/(1 − γ) = −log γ/(1 − γ)
        expected = 160.0 if gamma == 0 else closed_form(0.0, gamma)
        torch.testing.assert_close(loss, torch.full((8,), expected), rtol=1e-5, atol=1e-5)


def test_threshold_zero_has_the_plain_gradient_and_value() -> None:
    torch.manual_seed(1)
    logits = (torch.randn(32, 5) * 6).requires_grad_()
    y = torch.randint(0, 5, (32,))
    for gamma in (1e-7, 0.3, 1.0):
        plain = GammaCrossEntropy(gamma=gamma)(logits, y)
        thresholded = GammaCrossEntropy(gamma=gamma, threshold=0.0)(logits, y)
        torch.testing.assert_close(thresholded, plain, rtol=0, atol=0)
        (g_plain,) = torch.autograd.grad(plain.sum(), logits)
        (g_thr,) = torch.autograd.grad(thresholded.sum(), logits)
        torch.testing.assert_close(g_thr, g_plain, rtol=1e-5, atol=1e-7)


def test_threshold_floors_the_weight_of_hard_samples() -> None:
    """Gradient −max(b, w)·∇log p_y, w = p_y/(γ+(1−γ)p_y): a hard sample keeps weight b."""
    gamma, b = 0.5, 0.3
    logits = torch.cat([logits_with_target_prob(1e-4), logits_with_target_prob(0.9)])
    logits.requires_grad_()
    y = torch.zeros(2, dtype=torch.long)
    (grad,) = torch.autograd.grad(
        GammaCrossEntropy(gamma=gamma, threshold=b)(logits, y).sum(), logits
    )
    p = torch.softmax(logits.detach().double(), dim=1)
    grad_log_p = F.one_hot(y, 4).double() - p  # ∇ log p_y
    w = p[:, 0] / (gamma + (1 - gamma) * p[:, 0])
    assert w[0] < b < w[1]  # the first sample is floored, the second is not
    want = -torch.maximum(w, torch.full_like(w, b))[:, None] * grad_log_p
    torch.testing.assert_close(grad.double(), want, rtol=0, atol=1e-6)


# -- γ-CE: schedule and state -------------------------------------------------------------


def test_schedules_move_gamma_from_start_to_end() -> None:
    linear = [scheduled_gamma("linear", 0.0, 0.5, e, 5) for e in range(5)]
    assert linear == pytest.approx([0.0, 0.125, 0.25, 0.375, 0.5], abs=1e-12)
    cosine = [scheduled_gamma("cosine", 0.2, 0.6, e, 5) for e in range(5)]
    assert cosine[0] == 0.2 and cosine[-1] == 0.6
    assert cosine[2] == pytest.approx(0.4)  # the half-way point of a half cosine
    assert cosine[1] == pytest.approx(0.2 + 0.4 * (1 - math.cos(math.pi / 4)) / 2)
    assert [scheduled_gamma("constant", 0.0, 0.3, e, 5) for e in range(5)] == [0.3] * 5
    assert scheduled_gamma("linear", 0.0, 0.5, 0, 1) == 0.5  # a one-epoch run: the end value


def test_gamma_schedule_survives_a_checkpoint_and_reaches_the_loss() -> None:
    loss = GammaCrossEntropy(schedule="linear", gamma_start=0.0, gamma_end=0.8)
    assert loss.gamma == 0.0
    loss.start_epoch(no_ctx(3, 5))
    loss.start_epoch(no_ctx(3, 5))  # idempotent for a given epoch
    assert loss.gamma == pytest.approx(0.6) and loss.epoch_stats() == {"gamma": loss.gamma}

    restored = GammaCrossEntropy(schedule="linear", gamma_start=0.0, gamma_end=0.8)
    restored.load_state_dict(loss.state_dict())
    assert restored.gamma == loss.gamma  # exact: the buffer is float64
    logits, targets, _ = grid()
    torch.testing.assert_close(
        restored(logits, targets), GammaCrossEntropy(gamma=loss.gamma)(logits, targets)
    )


def test_constant_gamma_with_null_end_uses_gamma() -> None:
    loss = GammaCrossEntropy(gamma=0.25, gamma_end=None)
    loss.start_epoch(no_ctx(0, 10))
    assert loss.gamma == 0.25


# -- AM-Softmax -----------------------------------------------------------------------------


def toy_cosine_head(scale: float) -> tuple[CosineHead, torch.Tensor, torch.Tensor]:
    """3 classes in 2-D: features (3, 4) and (−1, 0); weights (1, 0), (0, 2), (−1, −1).

    cos θ of sample 0: (0.6, 0.8, −0.7·√2); of sample 1: (−1, 0, 1/√2).
    """
    head = CosineHead(2, 3, scale)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0], [-1.0, -1.0]]))
    features = torch.tensor([[3.0, 4.0], [-1.0, 0.0]])
    cos = torch.tensor([[0.6, 0.8, -0.7 * math.sqrt(2)], [-1.0, 0.0, 1 / math.sqrt(2)]])
    return head, features, cos


def test_cosine_head_outputs_scaled_cosines() -> None:
    head, features, cos = toy_cosine_head(30.0)
    torch.testing.assert_close(head(features), 30.0 * cos)


def test_am_softmax_matches_a_hand_computation() -> None:
    s, m = 30.0, 0.35
    head, features, _ = toy_cosine_head(s)
    y = torch.tensor([0, 2])
    got = AMSoftmax(s=s, m=m)(head(features), y)
    # Sample 0, target 0: logits 30·(0.6 − 0.35, 0.8, −0.9899) = (7.5, 24, −29.698).
    z0 = [s * (0.6 - m), s * 0.8, s * -0.7 * math.sqrt(2)]
    z1 = [s * -1.0, s * 0.0, s * (1 / math.sqrt(2) - m)]
    want = [
        -z0[0] + math.log(sum(math.exp(v) for v in z0)),
        -z1[2] + math.log(sum(math.exp(v) for v in z1)),
    ]
    assert want[0] == pytest.approx(16.5, abs=1e-6)  # 24 − 7.5 plus a negligible e^-16.5 term
    torch.testing.assert_close(got, torch.tensor(want), rtol=1e-6, atol=1e-5)


def test_am_softmax_without_margin_is_normalized_softmax_ce() -> None:
    torch.manual_seed(2)
    head = CosineHead(16, 7, scale=12.0)
    features, y = torch.randn(40, 16), torch.randint(0, 7, (40,))
    got = AMSoftmax(s=12.0, m=0.0)(head(features), y)
    cos = F.normalize(features, dim=1) @ F.normalize(head.weight.detach(), dim=1).T
    torch.testing.assert_close(got, F.cross_entropy(12.0 * cos, y, reduction="none"))


def test_am_softmax_margin_raises_the_loss_of_the_target() -> None:
    head, features, _ = toy_cosine_head(30.0)
    y = torch.tensor([1, 2])
    out = head(features)
    plain, with_margin = AMSoftmax(m=0.0)(out, y), AMSoftmax(m=0.35)(out, y)
    assert (with_margin > plain).all()
    # Sample 0 wins class 1 by a cosine gap of 0.2 < m: with the margin it no longer wins.
    assert plain[0] < math.log(2) < with_margin[0]


def test_cosine_head_computes_in_float32_under_bf16_autocast() -> None:
    head, features, cos = toy_cosine_head(30.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = head(features.bfloat16())
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, 30.0 * cos, rtol=0, atol=1e-4)


def test_am_softmax_owns_the_head() -> None:
    head = AMSoftmax(s=16.0).make_head(32, 10)
    assert isinstance(head, CosineHead) and head.scale == 16.0
    assert head(torch.randn(5, 32)).abs().max() <= 16.0 + 1e-4


def test_mean_class_diameter_of_a_known_configuration() -> None:
    """Class 0 at angles ±θ: centre (cos θ, 0), radius sin θ. Class 1 one point: radius 0.

    Mean diameter over the single pair = r_0 + r_1 = sin θ. Scaling features changes nothing.
    """
    theta = 0.3
    features = torch.tensor(
        [
            [math.cos(theta), math.sin(theta)],
            [5 * math.cos(theta), -5 * math.sin(theta)],
            [0.0, -2.0],
        ]
    )
    labels = torch.tensor([4, 4, 9])
    assert mean_class_diameter(features, labels).item() == pytest.approx(math.sin(theta), rel=1e-6)


class EmbedCounter:
    """An `embed_train` whose features give mean class diameter `value` (sin θ, as above)."""

    def __init__(self) -> None:
        self.calls = 0
        self.theta = 0.3

    def __call__(self) -> tuple[torch.Tensor, torch.Tensor]:
        self.calls += 1
        t = self.theta
        feats = torch.tensor([[math.cos(t), math.sin(t)], [math.cos(t), -math.sin(t)], [0, 1.0]])
        return feats, torch.tensor([0, 0, 1])


def test_auto_margin_warms_up_then_follows_the_features() -> None:
    embed = EmbedCounter()
    loss = AMSoftmax(margin="auto", margin_warmup=2, margin_every=3)
    margins = []
    for epoch in range(8):
        embed.theta = 0.1 * (epoch + 1)  # the "features" change every epoch
        loss.start_epoch(EpochContext(epoch, 8, embed))
        margins.append(loss.epoch_stats()["margin"])
    # Warm-up (epochs 0, 1): 0. Estimates at epochs 2 and 5, kept in between.
    assert margins[:2] == [0.0, 0.0]
    assert margins[2:5] == pytest.approx([math.sin(0.3)] * 3, rel=1e-6)
    assert margins[5:] == pytest.approx([math.sin(0.6)] * 3, rel=1e-6)
    assert embed.calls == 2


def test_auto_margin_is_restored_from_a_checkpoint_between_estimates() -> None:
    embed = EmbedCounter()
    loss = AMSoftmax(margin="auto", margin_warmup=1, margin_every=4)
    for epoch in range(3):
        loss.start_epoch(EpochContext(epoch, 10, embed))
    resumed = AMSoftmax(margin="auto", margin_warmup=1, margin_every=4)
    resumed.load_state_dict(loss.state_dict())
    resumed.start_epoch(EpochContext(3, 10, embed))  # not an estimation epoch
    assert embed.calls == 1
    assert resumed.epoch_stats() == loss.epoch_stats()
    assert resumed.epoch_stats()["margin"] == pytest.approx(math.sin(0.3), rel=1e-6)


def test_fixed_margin_never_embeds() -> None:
    loss = AMSoftmax(m=0.2)
    for epoch in range(3):
        loss.start_epoch(no_ctx(epoch, 3))
    assert loss.epoch_stats()["margin"] == pytest.approx(0.2)


# -- baselines ------------------------------------------------------------------------------


def test_label_smoothing_matches_its_formula() -> None:
    torch.manual_seed(3)
    logits, y, eps = torch.randn(20, 6) * 3, torch.randint(0, 6, (20,)), 0.2
    log_p = torch.log_softmax(logits.double(), dim=1)
    want = (1 - eps) * -log_p.gather(1, y[:, None]).squeeze(1) + eps * -log_p.mean(dim=1)
    got = LabelSmoothing(epsilon=eps)(logits, y)
    torch.testing.assert_close(got.double(), want, rtol=1e-6, atol=1e-6)
    assert torch.equal(
        LabelSmoothing(epsilon=0.0)(logits, y), F.cross_entropy(logits, y, reduction="none")
    )


def test_focal_matches_its_formula_and_reduces_to_ce() -> None:
    torch.manual_seed(4)
    logits, y = torch.randn(20, 6) * 3, torch.randint(0, 6, (20,))
    p = torch.softmax(logits.double(), dim=1).gather(1, y[:, None]).squeeze(1)
    got = FocalLoss(gamma=2.0)(logits, y)
    torch.testing.assert_close(got.double(), -((1 - p) ** 2) * torch.log(p), rtol=1e-5, atol=1e-7)
    assert torch.equal(
        FocalLoss(gamma=0.0)(logits, y), F.cross_entropy(logits, y, reduction="none")
    )


def test_focal_gradient_is_finite_when_the_model_is_certain() -> None:
    logits = torch.tensor([[60.0, 0.0, 0.0], [1e-30, 0.0, 0.0]], requires_grad=True)
    y = torch.zeros(2, dtype=torch.long)
    (grad,) = torch.autograd.grad(FocalLoss(gamma=0.5)(logits, y).sum(), logits)
    assert torch.isfinite(grad).all()
    assert grad[0].abs().max() < 1e-30  # p_y = 1 in float32: (next to) nothing to learn


# -- config --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["loss=gamma_ce", "loss.gamma=1.5"], "loss.gamma=1.5: must be in [0, 1]"),
        (["loss=gamma_ce", "loss.gamma=-0.1"], "loss.gamma=-0.1: must be in [0, 1]"),
        (["loss=gamma_ce", "loss.schedule=step"], "loss.schedule=step: must be one of constant"),
        (["loss=gamma_ce", "loss.threshold=2"], "loss.threshold=2: must be in [0, 1]"),
        (["loss=am_softmax", "loss.s=0"], "loss.s=0: must be in (0, inf)"),
        (["loss=am_softmax", "loss.m=-1"], "loss.m=-1: must be in [0, 2]"),
        (["loss=am_softmax", "loss.margin=0.5"], "loss.margin=0.5: must be one of fixed, auto"),
        (["loss=am_softmax", "loss.margin_every=0"], "loss.margin_every=0: must be an integer"),
        (["loss=label_smoothing", "loss.epsilon=1"], "loss.epsilon=1: must be in [0, 1)"),
        (["loss=focal", "loss.gamma=-2"], "loss.gamma=-2: must be in [0, inf)"),
    ],
)
def test_bad_loss_values_fail_with_one_line(overrides, message, compose_cfg) -> None:
    with pytest.raises(ConfigError) as err:
        build_spec(compose_cfg(overrides))
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_cli_reports_a_bad_gamma_in_one_line(cli) -> None:
    result = cli("train", "loss=gamma_ce", "loss.gamma=1.5")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "loss.gamma=1.5: must be in [0, 1]" in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


# -- end to end -----------------------------------------------------------------------------

TINY = ["dataset=synthetic", "model=mlp", "model.hidden=[32]", "trainer=smoke"]


def test_gamma_zero_run_equals_a_ce_run(train_run, tmp_path: Path) -> None:
    ce = train_run([*TINY, "loss=ce", "seed=3"], tmp_path / "ce")
    g0 = train_run([*TINY, "loss=gamma_ce", "loss.gamma=0", "seed=3"], tmp_path / "g0")
    assert g0["test"] == ce["test"] and g0["retrieval"] == ce["retrieval"]
    assert g0["temperature"] == ce["temperature"]


def test_gamma_schedule_is_logged_per_epoch(train_run, tmp_path: Path) -> None:
    overrides = ["loss=gamma_ce", "loss.schedule=linear", "loss.gamma_end=0.6", "trainer.epochs=4"]
    summary = train_run([*TINY, *overrides], tmp_path / "run")
    rows = read_metrics_csv(tmp_path / "run" / "metrics.csv")
    assert [r["gamma"] for r in rows] == pytest.approx([0.0, 0.2, 0.4, 0.6])
    assert {"recall_at_1", "map_at_r"} <= set(summary["retrieval"])


def test_auto_margin_run_resumes_identically(train_run, tmp_path: Path, monkeypatch) -> None:
    """Interrupted after epoch 2 and resumed, an auto-margin run matches the uninterrupted one."""
    from regx.engine.trainer import Trainer

    overrides = [
        *TINY,
        "loss=am_softmax",
        "loss.margin=auto",
        "loss.margin_warmup=1",
        "loss.margin_every=2",
        "trainer.epochs=4",
    ]
    whole = train_run(overrides, tmp_path / "whole")
    whole_rows = read_metrics_csv(tmp_path / "whole" / "metrics.csv")
    margins = [r["margin"] for r in whole_rows]
    assert margins[0] == 0.0 and 0.0 < margins[1] <= 2.0
    assert margins[1] == margins[2] and margins[3] != margins[2]  # re-estimated at epoch 4

    original = Trainer.train_epoch

    def stop_at_third_epoch(self, epoch, progress):
        if epoch == 2:
            raise KeyboardInterrupt
        return original(self, epoch, progress)

    monkeypatch.setattr(Trainer, "train_epoch", stop_at_third_epoch)
    with pytest.raises(KeyboardInterrupt):
        train_run(overrides, tmp_path / "resumed")
    monkeypatch.setattr(Trainer, "train_epoch", original)
    resumed = train_run(overrides, tmp_path / "resumed")
    resumed_rows = read_metrics_csv(tmp_path / "resumed" / "metrics.csv")
    assert [r["margin"] for r in resumed_rows] == margins
    assert [r["train_loss"] for r in resumed_rows] == [r["train_loss"] for r in whole_rows]
    assert resumed["test"] == whole["test"] and resumed["retrieval"] == whole["retrieval"]


@pytest.mark.parametrize("per_sample", [False, True])
def test_mixed_cross_entropy_is_the_two_term_mix(per_sample: bool) -> None:
    """CrossEntropy.mixed = λ·CE(z, y) + (1 − λ)·CE(z, y') from one log-softmax, in value and
    gradient; a subclass that changes forward keeps its own loss in both terms."""
    from regx.aug.base import MixedBatch
    from regx.losses.ce import CrossEntropy

    g = torch.Generator().manual_seed(3)
    z = torch.randn(32, 7, generator=g, dtype=torch.float64).float().requires_grad_()
    y, y2 = torch.randint(0, 7, (32,), generator=g), torch.randint(0, 7, (32,), generator=g)
    lam = torch.rand(32, generator=g) if per_sample else 0.3
    two_terms = lam * F.cross_entropy(z, y, reduction="none") + (1 - lam) * F.cross_entropy(
        z, y2, reduction="none"
    )
    batch = MixedBatch(inputs=z, lam=lam, partner_targets=y2)
    one_pass = batch.loss(CrossEntropy(), z, y)
    torch.testing.assert_close(one_pass, two_terms, atol=1e-6, rtol=0)
    (grad_one,) = torch.autograd.grad(one_pass.sum(), z)
    (grad_two,) = torch.autograd.grad(two_terms.sum(), z)
    torch.testing.assert_close(grad_one, grad_two, atol=1e-6, rtol=0)
    assert (y == y2).any() and (y != y2).any()  # both cases of the one-hot weights occur
    self_mixed = MixedBatch(inputs=z, lam=lam, partner_targets=y).loss(CrossEntropy(), z, y)
    torch.testing.assert_close(self_mixed, F.cross_entropy(z, y, reduction="none"))

    class Doubled(CrossEntropy):
        def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            return 2 * super().forward(outputs, targets)

    torch.testing.assert_close(batch.loss(Doubled(), z, y), 2 * two_terms, atol=1e-6, rtol=0)
