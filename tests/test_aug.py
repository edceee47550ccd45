"""Mixing augmentations: the formulas, the λ distributions, loss mixing, schedules, config."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from scipy import stats

from regx.aug.base import BetaSampler, MixedBatch
from regx.aug.mixup import Mixup, mix_inputs
from regx.aug.samplepairing import SamplePairing, Schedule, default_schedule
from regx.config.build import build_spec
from regx.errors import ConfigError, RunInterrupted
from regx.losses.ce import CrossEntropy


def _batch(n: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 4, 4, generator=g), torch.randint(0, 10, (n,), generator=g)


def _is_permutation(p: torch.Tensor, n: int) -> bool:
    return torch.equal(p.sort().values, torch.arange(n))


# -- mixup: the input formula ---------------------------------------------------------


def test_mix_inputs_by_hand() -> None:
    x = torch.tensor([1.0, 3.0, -2.0]).view(3, 1, 1, 1)
    partners = torch.tensor([1, 2, 0])
    mixed = mix_inputs(x, 0.25, partners).flatten()
    # 0.25·1 + 0.75·3, 0.25·3 + 0.75·(−2), 0.25·(−2) + 0.75·1
    torch.testing.assert_close(mixed, torch.tensor([2.5, -0.75, 0.25]), rtol=0, atol=1e-7)
    per_sample = mix_inputs(x, torch.tensor([1.0, 0.0, 0.5]), partners).flatten()
    torch.testing.assert_close(per_sample, torch.tensor([1.0, -2.0, -0.5]), rtol=0, atol=1e-7)


def test_mixup_batch_mode_equals_formula() -> None:
    x, y = _batch()
    torch.manual_seed(3)
    mixed = Mixup(lam="beta", alpha=0.4, mode="batch")(x, y)
    assert mixed is not None and isinstance(mixed.lam, float) and 0.0 < mixed.lam < 1.0
    lam, pi = mixed.lam, mixed.partner_index
    assert _is_permutation(pi, len(y)) and not torch.equal(pi, torch.arange(len(y)))
    expected = lam * x.double() + (1 - lam) * x.double()[pi]
    torch.testing.assert_close(mixed.inputs.double(), expected, rtol=0, atol=1e-6)
    assert torch.equal(mixed.inputs, mix_inputs(x, lam, pi))
    assert torch.equal(mixed.partner_targets, y[pi])

    # λ and π come from torch's global RNG: the same seed mixes the same way again.
    torch.manual_seed(3)
    again = Mixup(lam="beta", alpha=0.4, mode="batch")(x, y)
    assert again.lam == lam and torch.equal(again.partner_index, pi)
    torch.manual_seed(4)
    other = Mixup(lam="beta", alpha=0.4, mode="batch")(x, y)
    assert other.lam != lam


def test_mixup_elem_mode_broadcasts_per_sample() -> None:
    x, y = _batch(n=32)
    torch.manual_seed(0)
    mixed = Mixup(lam="uniform", mode="elem")(x, y)
    lam, pi = mixed.lam, mixed.partner_index
    assert isinstance(lam, torch.Tensor) and lam.shape == (32,)
    assert lam.std() > 0.1  # really one λ per sample
    for i in range(32):
        li = float(lam[i])
        expected = li * x[i].double() + (1 - li) * x[pi[i]].double()
        torch.testing.assert_close(mixed.inputs[i].double(), expected, rtol=0, atol=1e-6)

    outputs = torch.randn(32, 10)
    loss = mixed.loss(CrossEntropy(), outputs, y)
    ce_own = F.cross_entropy(outputs, y, reduction="none")
    ce_partner = F.cross_entropy(outputs, y[pi], reduction="none")
    assert loss.shape == (32,)
    torch.testing.assert_close(loss, lam * ce_own + (1 - lam) * ce_partner, rtol=0, atol=1e-6)


# -- mixup: the λ distributions ---------------------------------------------------------


def _batch_lams(mixer: Mixup, draws: int) -> list[float]:
    x, y = _batch(n=4)
    return [mixer(x, y).lam for _ in range(draws)]


def test_lam_uniform_matches_uniform_distribution() -> None:
    torch.manual_seed(0)
    per_batch = _batch_lams(Mixup(lam="uniform", mode="batch"), 2000)
    x, y = _batch(n=4000)
    per_sample = Mixup(lam="uniform", mode="elem")(x, y).lam.numpy()
    for sample in (per_batch, per_sample):
        assert stats.kstest(sample, "uniform").pvalue > 0.01
        # the test has power: the same sample is far from Beta(0.2, 0.2)
        assert stats.kstest(sample, stats.beta(0.2, 0.2).cdf).pvalue < 1e-6


def test_lam_beta_matches_beta_distribution() -> None:
    torch.manual_seed(0)
    per_batch = _batch_lams(Mixup(lam="beta", alpha=0.2, mode="batch"), 2000)
    x, y = _batch(n=4000)
    per_sample = Mixup(lam="beta", alpha=0.2, mode="elem")(x, y).lam.numpy()
    for sample in (per_batch, per_sample):
        assert stats.kstest(sample, stats.beta(0.2, 0.2).cdf).pvalue > 0.01
        assert stats.kstest(sample, "uniform").pvalue < 1e-6


@pytest.mark.parametrize("alpha", [0.2, 1.0, 4.0])
def test_beta_sampler_draws_what_torch_distributions_beta_draws(alpha: float) -> None:
    """The same numbers from the same generator state (runs stay reproducible across the
    switch to the cheaper draw), per batch and per sample."""
    sampler = BetaSampler(alpha)
    reference = torch.distributions.Beta(torch.tensor(alpha), torch.tensor(alpha))
    cpu = torch.device("cpu")
    torch.manual_seed(3)
    ours = [sampler.sample(None, cpu) for _ in range(20)] + sampler.sample(50, cpu).tolist()
    torch.manual_seed(3)
    theirs = [float(reference.sample()) for _ in range(20)] + reference.sample((50,)).tolist()
    assert ours == theirs
    assert all(isinstance(v, float) for v in ours[:20])


def test_prob_mixes_that_fraction_of_batches() -> None:
    torch.manual_seed(0)
    x, y = _batch(n=4)
    mixer = Mixup(prob=0.3)
    mixed = sum(mixer(x, y) is not None for _ in range(2000))
    assert abs(mixed / 2000 - 0.3) < 0.04
    assert all(Mixup(prob=0.0)(x, y) is None for _ in range(50))


def test_off_epoch_stops_mixing_for_the_last_epochs() -> None:
    assert [Mixup(off_epoch=3).active(e, 5) for e in range(5)] == [1, 1, 1, 0, 0]
    assert all(Mixup().active(e, 5) for e in range(5))


# -- loss mixing ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["batch", "elem"])
def test_mixed_ce_equals_soft_label_ce(mode: str) -> None:
    x, y = _batch(n=64)
    torch.manual_seed(1)
    mixed = Mixup(lam="beta", alpha=0.5, mode=mode)(x, y)
    outputs = torch.randn(64, 10) * 3
    lam = torch.as_tensor(mixed.lam).reshape(-1, 1)
    soft = lam * F.one_hot(y, 10) + (1 - lam) * F.one_hot(mixed.partner_targets, 10)
    soft_ce = -(soft * outputs.log_softmax(dim=1)).sum(dim=1)
    torch.testing.assert_close(mixed.loss(CrossEntropy(), outputs, y), soft_ce, rtol=0, atol=1e-6)


def test_loss_without_partner_keeps_own_label() -> None:
    outputs, y = torch.randn(8, 10), torch.randint(0, 10, (8,))
    batch = MixedBatch(inputs=torch.zeros(8, 1), lam=0.5)
    expected = F.cross_entropy(outputs, y, reduction="none")
    assert torch.equal(batch.loss(CrossEntropy(), outputs, y), expected)


# -- SamplePairing ----------------------------------------------------------------------


def test_samplepairing_averages_and_keeps_label() -> None:
    x, y = _batch(n=32)
    torch.manual_seed(0)
    mixed = SamplePairing()(x, y)
    pi = mixed.partner_index
    assert _is_permutation(pi, 32) and not torch.equal(pi, torch.arange(32))
    assert torch.equal(mixed.inputs, (x + x[pi]) / 2)
    assert mixed.lam == 0.5 and mixed.partner_targets is None
    outputs = torch.randn(32, 10)
    assert torch.equal(
        mixed.loss(CrossEntropy(), outputs, y), F.cross_entropy(outputs, y, reduction="none")
    )


def _on_epochs(mixer: SamplePairing, num_epochs: int) -> set[int]:
    return {e for e in range(num_epochs) if mixer.active(e, num_epochs)}


def test_samplepairing_default_schedule_for_several_run_lengths() -> None:
    sp = SamplePairing()
    # 10 epochs: 1 clean, 4 on, 1 off, 3 on, 1 clean (final).
    assert _on_epochs(sp, 10) == {1, 2, 3, 4, 6, 7, 8}
    # 30 epochs: 3 clean, cycles of 4 on / 1 off, 3 clean.
    assert _on_epochs(sp, 30) == {3, 4, 5, 6, 8, 9, 10, 11, 13, 14, 15, 16, 18, 19, 20, 21}.union(
        range(23, 27)
    )
    # 100 epochs: the paper's 8 on / 2 off after 10 clean epochs, 10 clean at the end.
    assert _on_epochs(sp, 100) == {e for c in range(10, 90, 10) for e in range(c, c + 8)}
    # 2 epochs (smoke): too short for clean phases, both epochs mix.
    assert _on_epochs(sp, 2) == {0, 1}
    assert default_schedule(1400) == Schedule(140, 8, 2, 140)
    for num_epochs in (10, 17, 30, 50, 99, 100, 250):  # every run of ≥ 10 epochs has both phases
        on = _on_epochs(sp, num_epochs)
        assert 0 < len(on) < num_epochs and 0 not in on and num_epochs - 1 not in on


def test_samplepairing_explicit_schedule() -> None:
    sp = SamplePairing(start_epoch=2, on_epochs=3, off_epochs=2, final_off_epochs=1)
    assert _on_epochs(sp, 12) == {2, 3, 4, 7, 8, 9}
    always = SamplePairing(start_epoch=0, off_epochs=0, final_off_epochs=0)
    assert _on_epochs(always, 7) == set(range(7))
    # keys left null still scale with the run: here start = final_off = 20 // 10
    partial = SamplePairing(on_epochs=1, off_epochs=1)
    assert _on_epochs(partial, 20) == {2, 4, 6, 8, 10, 12, 14, 16}


# -- config: YAML, validation, one-line errors -----------------------------------------


def test_aug_none_equals_no_aug(compose_cfg) -> None:
    plain, none = compose_cfg([]), compose_cfg(["+aug=none"])
    assert plain.aug is None and none.aug is None
    assert plain == none
    assert build_spec(none).mixer is None


def test_yaml_builds_the_mixers(compose_cfg) -> None:
    mixup = build_spec(
        compose_cfg(["+aug=mixup", "aug.lam=beta", "aug.alpha=0.2", "aug.mode=elem"])
    ).mixer
    assert isinstance(mixup, Mixup)
    assert mixup.describe() == {
        "name": "mixup",
        "lam": "beta",
        "alpha": 0.2,
        "mode": "elem",
        "prob": 1.0,
        "off_epoch": None,
    }
    sp = build_spec(compose_cfg(["+aug=samplepairing"])).mixer
    assert isinstance(sp, SamplePairing) and sp.active(1, 10) and not sp.active(0, 10)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("aug.lam=gaussian", "aug.lam=gaussian: must be one of uniform, beta"),
        ("aug.mode=pixel", "aug.mode=pixel: must be one of batch, elem"),
        ("aug.prob=1.5", "aug.prob=1.5: must be in [0, 1]"),
        ("aug.alpha=-1", "aug.alpha=-1: must be in (0, inf)"),
        ("aug.off_epoch=0", "aug.off_epoch=0: must be an integer ≥ 1 or null"),
        ("+aug.beta=1", "aug.beta=1: unknown key for Mixup"),
    ],
)
def test_bad_mixup_values(compose_cfg, override: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_spec(compose_cfg(["+aug=mixup", override]))
    assert str(err.value).startswith(message)


def test_bad_samplepairing_values(compose_cfg) -> None:
    with pytest.raises(ConfigError, match=r"^aug\.on_epochs=0: must be an integer ≥ 1"):
        build_spec(compose_cfg(["+aug=samplepairing", "aug.on_epochs=0"]))
    with pytest.raises(ConfigError, match=r"^aug\.start_epoch=-1: must be an integer ≥ 0"):
        build_spec(compose_cfg(["+aug=samplepairing", "aug.start_epoch=-1"]))


def test_cli_bad_value_is_one_line(cli) -> None:
    # (one subprocess: every ConfigError above reaches the user through this same path)
    result = cli("train", "+aug=mixup", "aug.alpha=0")
    assert result.returncode == 2
    assert result.stdout.strip() == ""
    assert result.stderr.strip().splitlines() == ["error: aug.alpha=0: must be in (0, inf)"]


# -- through the engine -----------------------------------------------------------------


def _metrics(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv") as f:
        return list(csv.DictReader(f))


SMALL = ["dataset.subset=400", "trainer.batch_size=50", "trainer.checkpoint=false"]


def test_engine_records_samplepairing_schedule(train_run, tmp_path: Path) -> None:
    run_dir = tmp_path / "sp"
    summary = train_run(
        [
            *SMALL,
            "trainer.epochs=5",
            "+aug=samplepairing",
            "aug.start_epoch=1",
            "aug.on_epochs=2",
            "aug.off_epochs=1",
            "aug.final_off_epochs=1",
        ],
        run_dir,
    )
    rows = _metrics(run_dir)
    assert [float(r["mix_fraction"]) for r in rows] == [0, 1, 1, 0, 0]
    lam_means = [float(r["lam_mean"]) for r in rows]
    assert [math.isnan(v) for v in lam_means] == [True, False, False, True, True]
    assert lam_means[1:3] == [0.5, 0.5]
    assert summary["aug"]["name"] == "samplepairing"
    assert summary["aug"]["schedule"] == {
        "num_epochs": 5,
        "start_epoch": 1,
        "on_epochs": 2,
        "off_epochs": 1,
        "final_off_epochs": 1,
    }


def test_engine_records_mixup_fraction_and_lam(train_run, tmp_path: Path) -> None:
    run_dir = tmp_path / "mixup"
    summary = train_run(
        [*SMALL, "trainer.epochs=3", "+aug=mixup", "aug.prob=0.5", "aug.off_epoch=2"], run_dir
    )
    rows = _metrics(run_dir)
    fractions = [float(r["mix_fraction"]) for r in rows]
    assert 0.2 < fractions[0] < 0.8 and 0.2 < fractions[1] < 0.8 and fractions[2] == 0.0
    assert all(0.1 < float(r["lam_mean"]) < 0.9 for r in rows[:2])
    assert summary["aug"] == {
        "name": "mixup",
        "lam": "beta",
        "alpha": 1.0,
        "mode": "batch",
        "prob": 0.5,
        "off_epoch": 2,
    }


def test_resumed_mixup_run_mixes_as_uninterrupted(train_run, tmp_path: Path) -> None:
    """λ and π come from the run's global RNG, which checkpoints save and restore."""
    common = [
        "dataset.subset=400",
        "trainer.batch_size=50",
        "trainer.scheduler.name=none",
        "+aug=mixup",
        "aug.mode=elem",
        "aug.alpha=0.4",
    ]
    # A resume must use the run's own config (a changed trainer.epochs is refused), so
    # the run to resume is the same 3-epoch run, stopped by SIGTERM at the end of epoch 2
    # (its 14th step: 360 training images, 7 batches of 50).
    stop_after_epoch_2 = [
        "loss._target_=fault_plugins.SignalAtStep",
        "+loss.step=14",
        f"+loss.marker={tmp_path / 'stopped'}",
    ]
    train_run([*common, "trainer.epochs=3"], tmp_path / "whole")
    with pytest.raises(RunInterrupted, match="at the end of epoch 2"):
        train_run([*common, "trainer.epochs=3", *stop_after_epoch_2], tmp_path / "resumed")
    train_run([*common, "trainer.epochs=3", *stop_after_epoch_2], tmp_path / "resumed")
    whole, resumed = _metrics(tmp_path / "whole"), _metrics(tmp_path / "resumed")
    keys = ("train_loss", "lam_mean", "val_loss")
    assert [[r[k] for k in keys] for r in resumed] == [[r[k] for k in keys] for r in whole]


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_mixed_batches_keep_the_memory_format_of_the_batch(layout: torch.memory_format) -> None:
    """x[π] and the mixers' outputs are in x's layout (a channels_last model is fed
    channels_last batches, not NCHW ones it would convert back), with x[π]'s values."""
    from regx.aug.base import partner_images
    from regx.aug.cutmix import CutMix
    from regx.aug.samplepairing import SamplePairing

    x, y = _batch(n=16)
    x = x.contiguous(memory_format=layout)
    pi = torch.randperm(16)
    gathered = partner_images(x, pi)
    assert torch.equal(gathered, x[pi]) and gathered.is_contiguous(memory_format=layout)
    for mixer in (Mixup(), CutMix(mode="elem"), SamplePairing()):
        torch.manual_seed(0)
        mixed = mixer(x, y).inputs
        assert mixed.is_contiguous(memory_format=layout), type(mixer).__name__
        if layout == torch.channels_last:
            torch.manual_seed(0)
            reference = mixer(x.contiguous(), y).inputs  # the same draws on an NCHW batch
            torch.testing.assert_close(mixed, reference, atol=1e-6, rtol=0)
    # and the values are the mix's, in either layout: λ·x + (1 − λ)·x[π]
    batch = Mixup()(x, y)
    expected = batch.lam * x + (1 - batch.lam) * x[batch.partner_index]
    torch.testing.assert_close(batch.inputs, expected, atol=1e-6, rtol=0)
