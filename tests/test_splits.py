"""Validation splits: stratified random, and adversarial validation against the test inputs."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from regx.config.build import build_spec
from regx.engine.setup import prepare_data
from regx.errors import ConfigError
from regx.report.split_plot import plot_split
from regx.splits.adversarial import AdversarialSplit, effective_sample_size, out_of_fold_logits
from regx.splits.discriminators import ConvDiscriminator
from regx.splits.embeddings import FeatureEmbedding
from regx.splits.random import RandomSplit

CPU = torch.device("cpu")


def digits(compose_cfg, *overrides: str):
    spec = build_spec(compose_cfg(list(overrides)))
    return spec, spec.dataset.load(seed=spec.seed)


@pytest.fixture(scope="module")
def digits_clean():
    from conftest import compose_config

    return digits(compose_config)[1]


@pytest.fixture(scope="module")
def digits_noisy():
    from conftest import compose_config

    return digits(compose_config, "dataset.test_shift=corrupt", "shift.severity=3")[1]


@pytest.fixture(scope="module")
def noisy_split(digits_noisy):
    data = digits_noisy
    return AdversarialSplit(mode="resample")(data.train_x, data.train_y, data.test_x, seed=0)


# -- random -------------------------------------------------------------------------------
def test_random_split_is_stratified_and_disjoint(digits_clean):
    y = digits_clean.train_y
    split = RandomSplit(val_fraction=0.2)(digits_clean.train_x, y, digits_clean.test_x, seed=0)
    train, val = split.train_idx.numpy(), split.val_idx.numpy()
    # every training-pool image in exactly one part (disjoint, no repeats, none left out)
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(len(y)))
    per_class = np.bincount(y[val].numpy(), minlength=10) / np.bincount(y.numpy(), minlength=10)
    assert np.all(np.abs(per_class - 0.2) < 0.02)
    assert split.val_weight is None and split.info["val_unique"] == len(val)


# -- the discriminator --------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1])
def test_no_shift_gives_chance_auc_on_digits(digits_clean, seed):
    data = digits_clean
    split = AdversarialSplit()(data.train_x, data.train_y, data.test_x, seed=seed)
    assert 0.45 <= split.info["auc"] <= 0.60
    # Without a shift the weights stay near 1: the validation set is worth most of its size.
    assert split.info["ess"] > 0.7 * split.info["val_size"]


def test_corrupt_shift_is_detected_on_digits(noisy_split):
    assert noisy_split.info["auc"] > 0.8
    d_train, d_test = noisy_split.arrays["d_train"], noisy_split.arrays["d_test"]
    assert np.median(d_test) > np.median(d_train) + 0.3


def test_cnn_discriminator_detects_the_shift_and_leaves_the_global_rng(digits_noisy, one_thread):
    data = digits_noisy
    split_fn = AdversarialSplit(discriminator="cnn", folds=2, cnn_epochs=8, cnn_width=8)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    # 600 of the training images keep the test quick; the shift is just as visible.
    split = split_fn(data.train_x[:600], data.train_y[:600], data.test_x, seed=0)
    assert split.info["auc"] > 0.8
    assert torch.equal(torch.rand(3), expected)  # the split used a private RNG


class MemorizingDiscriminator:
    """Remembers every image it was fitted on; scores seen test images +5, seen train −5,
    unseen 0. Out-of-fold it can only ever answer 0; in-sample it would separate perfectly."""

    def __init__(self) -> None:
        self.calls: list[tuple[set[bytes], set[bytes]]] = []

    def fit_logits(self, x_fit, d_fit, x_eval, seed):
        seen = {bytes(x.numpy()): int(d) for x, d in zip(x_fit, d_fit)}
        self.calls.append((set(seen), {bytes(x.numpy()) for x in x_eval}))
        return np.array(
            [
                5.0
                if seen.get(bytes(x.numpy())) == 1
                else -5.0
                if bytes(x.numpy()) in seen
                else 0.0
                for x in x_eval
            ]
        )


def test_kfold_scores_come_from_models_that_never_saw_the_image():
    g = torch.Generator().manual_seed(0)
    train_x = torch.randint(0, 256, (90, 1, 4, 4), generator=g, dtype=torch.uint8)
    test_x = torch.randint(0, 256, (40, 1, 4, 4), generator=g, dtype=torch.uint8)
    spy = MemorizingDiscriminator()
    logit_train, logit_test, fold_of = out_of_fold_logits(train_x, test_x, 5, 0, spy)
    assert len(spy.calls) == 5
    # Every image was scored exactly once, by the one model whose fit set did not hold it.
    for fit_set, eval_set in spy.calls:
        assert not fit_set & eval_set
    assert sum(len(e) for _, e in spy.calls) == 130
    np.testing.assert_array_equal(logit_train, 0.0)
    np.testing.assert_array_equal(logit_test, 0.0)
    # Folds are stratified: each holds 18 train and 8 test images.
    assert np.bincount(fold_of[:90]).tolist() == [18] * 5
    assert np.bincount(fold_of[90:]).tolist() == [8] * 5


def test_out_of_fold_auc_stays_at_chance_where_in_sample_would_overfit():
    # 256 pixels of pure noise, 150 vs 150 images: a weakly regularized logistic regression
    # separates its own fitting data, but cannot score unseen images better than chance.
    g = torch.Generator().manual_seed(1)
    train_x = torch.randint(0, 256, (150, 1, 16, 16), generator=g, dtype=torch.uint8)
    test_x = torch.randint(0, 256, (150, 1, 16, 16), generator=g, dtype=torch.uint8)
    split = AdversarialSplit(logreg_c=100.0, folds=5)
    labels = torch.zeros(150, dtype=torch.long)
    oof_auc = split(train_x, labels, test_x, seed=0).info["auc"]
    x = torch.cat([train_x, test_x])
    d = np.r_[np.zeros(150, int), np.ones(150, int)]
    in_sample = split.discriminator.fit_logits(x, d, x, seed=0)
    assert roc_auc_score(d, in_sample) > 0.99
    assert 0.35 < oof_auc < 0.65


# -- the features discriminator (embeddings of a random or a briefly trained net) ---------
@pytest.fixture(scope="module")
def digits_subpop():
    from conftest import compose_config

    return {
        seed: digits(compose_config, "dataset.test_shift=subpop", "shift.tilt=2", f"seed={seed}")[1]
        for seed in (0, 1)
    }


def features_split(data, seed: int, features: str = "random"):
    split_fn = AdversarialSplit(discriminator="features", features=features, device="cpu")
    return split_fn(data.train_x, data.train_y, data.test_x, seed=seed)


@pytest.mark.parametrize("seed", [0, 1])
def test_features_discriminator_is_at_chance_without_shift(compose_cfg, seed, one_thread):
    data = digits(compose_cfg, "dataset.test_shift=subpop", "shift.tilt=0", f"seed={seed}")[1]
    split = features_split(data, seed)
    assert 0.45 <= split.info["auc"] <= 0.60
    assert split.info["features"] == "random" and "feature_train_acc" not in split.info


@pytest.mark.parametrize(("features", "seed"), [("random", 0), ("random", 1), ("trained", 0)])
def test_features_discriminator_detects_a_within_support_shift(
    digits_subpop, features, seed, one_thread
):
    # Brightness tilt 2, half of the test set kept: even the true score as discriminator
    # reaches only about 0.72 (the kept half overlaps the training distribution).
    split = features_split(digits_subpop[seed], seed, features)
    assert split.info["auc"] >= 0.65
    d_train, d_test = split.arrays["d_train"], split.arrays["d_test"]
    assert np.median(d_test) > np.median(d_train)


def test_trained_features_record_the_net_and_leave_the_global_rng(digits_subpop, one_thread):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    split = features_split(digits_subpop[0], 0, "trained")
    assert torch.equal(torch.rand(3), expected)  # the embedding net used a private RNG
    assert split.info["features"] == "trained" and split.info["feature_epochs"] == 3
    assert split.info["feature_train_acc"] > 0.9  # it did learn the classes
    again = features_split(digits_subpop[0], 0, "trained")
    assert torch.equal(again.val_idx, split.val_idx)
    np.testing.assert_array_equal(again.arrays["d_train"], split.arrays["d_train"])


def test_the_features_split_runs_from_the_config(compose_cfg, one_thread):
    overrides = ["split=adversarial", "split.discriminator=features", "dataset.test_shift=subpop"]
    prep = prepare_data(build_spec(compose_cfg(overrides)), CPU)
    info = prep.split.info
    assert info["discriminator"] == "features" and info["features"] == "random"
    assert 0.6 < info["auc"] < 0.8 and info["val_size"] == round(0.1 * len(prep.data.train_y))
    assert prep.data.info["test_shift"]["mode"] == "subpop"


# -- weights and modes ----------------------------------------------------------------------
def test_weights_are_the_odds_capped_at_clip_times_the_median(noisy_split):
    d = noisy_split.arrays["d_train"]
    w = noisy_split.arrays["w_train"]
    odds = d / (1 - d)
    expected = np.minimum(odds, 10.0 * np.median(odds))
    np.testing.assert_allclose(w, expected, rtol=1e-6)
    assert (w == w.max()).sum() > 1  # the cap binds under this shift
    assert noisy_split.info["weight_max"] == pytest.approx(w.max())
    assert noisy_split.info["weight_min"] == pytest.approx(w.min())


def test_resample_keeps_duplicates_and_trains_on_the_never_drawn(noisy_split, digits_noisy):
    split = noisy_split
    n = len(digits_noisy.train_y)
    val, train = split.val_idx.numpy(), split.train_idx.numpy()
    assert len(val) == round(0.1 * n)
    assert split.info["val_unique"] == len(np.unique(val)) < len(val)  # duplicates kept
    np.testing.assert_array_equal(train, np.setdiff1d(np.arange(n), val))
    assert split.val_weight is None and split.train_weight is None
    counts = np.bincount(val)[np.unique(val)]
    assert split.info["ess"] == pytest.approx(counts.sum() ** 2 / np.square(counts).sum())
    # The draw favours test-like images: validation D is higher than the training pool's.
    assert split.arrays["d_val"].mean() > 2 * split.arrays["d_train"].mean()


def test_resample_never_puts_a_test_image_in_training_or_validation(compose_cfg):
    spec = build_spec(compose_cfg(["split=adversarial", "dataset.test_shift=corrupt"]))
    prep = prepare_data(spec, CPU)
    n = len(prep.data.train_y)
    for idx in (prep.split.train_idx, prep.split.val_idx):
        assert int(idx.min()) >= 0 and int(idx.max()) < n
    assert torch.equal(prep.val_x, prep.data.train_x[prep.split.val_idx])
    assert torch.equal(prep.train_x, prep.data.train_x[prep.split.train_idx])
    test_rows = {bytes(x.numpy()) for x in prep.data.test_x}
    assert not any(bytes(x.numpy()) in test_rows for x in torch.cat([prep.train_x, prep.val_x]))


def test_topk_takes_the_most_test_like_fraction(digits_noisy):
    data = digits_noisy
    split = AdversarialSplit(mode="topk", val_fraction=0.2)(
        data.train_x, data.train_y, data.test_x, seed=0
    )
    d = split.arrays["d_train"]
    val = split.val_idx.numpy()
    assert len(val) == len(np.unique(val)) == round(0.2 * len(d))
    rest = np.setdiff1d(np.arange(len(d)), val)
    assert d[val].min() >= d[rest].max()
    assert split.info["ess"] == len(val)


def test_weight_mode_weights_validation_and_optionally_training(digits_noisy):
    data = digits_noisy
    args = (data.train_x, data.train_y, data.test_x)
    plain = AdversarialSplit(mode="weight")(*args, seed=0)
    both = AdversarialSplit(mode="weight", weight_train=True)(*args, seed=0)
    w = plain.arrays["w_train"]
    val = plain.val_idx.numpy()
    # A stratified random split, identical to split=random at the same seed and fraction.
    random = RandomSplit(0.1)(*args, seed=0)
    assert torch.equal(plain.val_idx, random.val_idx)
    np.testing.assert_allclose(plain.val_weight.numpy(), w[val], rtol=1e-6)
    assert plain.train_weight is None
    np.testing.assert_allclose(both.train_weight.numpy(), w[both.train_idx.numpy()], rtol=1e-6)
    assert plain.info["ess"] == pytest.approx(effective_sample_size(w[val]))
    assert plain.info["ess"] < 0.8 * len(val)  # under shift the weights are uneven


def test_shuffling_test_labels_leaves_the_split_unchanged(compose_cfg, monkeypatch):
    from regx.data.digits import Digits

    overrides = ["split=adversarial", "dataset.test_shift=corrupt"]
    spec = build_spec(compose_cfg(overrides))
    before = prepare_data(spec, CPU)
    raw = Digits._load_raw

    def shuffled_test_labels(self):
        data = raw(self)
        perm = torch.randperm(len(data.test_y), generator=torch.Generator().manual_seed(7))
        return replace(data, test_y=data.test_y[perm])

    monkeypatch.setattr(Digits, "_load_raw", shuffled_test_labels)
    after = prepare_data(build_spec(compose_cfg(overrides)), CPU)
    assert not torch.equal(before.data.test_y, after.data.test_y)
    assert torch.equal(before.split.train_idx, after.split.train_idx)
    assert torch.equal(before.split.val_idx, after.split.val_idx)
    assert before.split.info["auc"] == after.split.info["auc"]


def test_split_is_deterministic_given_the_seed(digits_noisy, noisy_split):
    data = digits_noisy
    again = AdversarialSplit(mode="resample")(data.train_x, data.train_y, data.test_x, seed=0)
    other = AdversarialSplit(mode="resample")(data.train_x, data.train_y, data.test_x, seed=1)
    assert torch.equal(again.val_idx, noisy_split.val_idx)
    assert not torch.equal(other.val_idx, noisy_split.val_idx)


# -- config and outputs ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("split.mode=median", "split.mode=median: must be one of resample, topk, weight"),
        (
            "split.discriminator=svm",
            "split.discriminator=svm: must be one of logreg, cnn, features",
        ),
        ("split.features=pixels", "split.features=pixels: must be one of random, trained"),
        ("split.feature_epochs=0", "split.feature_epochs=0: must be an integer ≥ 1"),
        (
            "split.feature_pca=0",
            "split.feature_pca=0: must be a positive number of components (or null for all of them)",
        ),
        ("split.folds=1", "split.folds=1: must be an integer ≥ 2"),
        ("split.clip=0.5", "split.clip=0.5: must be in (1, inf)"),
        ("split.logreg_c=0", "split.logreg_c=0: must be in (0, inf)"),
        ("split.cnn_epochs=0", "split.cnn_epochs=0: must be an integer ≥ 1"),
        ("split.cnn_width=0", "split.cnn_width=0: must be an integer ≥ 1"),
        ("split.device=tpu", "split.device=tpu: must be one of auto, cpu, cuda"),
        ("split.weight_train=true", "split.weight_train=True: only applies to split.mode=weight"),
        (
            "split.pca=0",
            "split.pca=0: must be a positive number of components (or null for raw pixels)",
        ),
    ],
)
def test_bad_split_values_name_the_key(compose_cfg, override, message):
    with pytest.raises(ConfigError) as err:
        build_spec(compose_cfg(["split=adversarial", override]))
    assert str(err.value) == message


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_a_cuda_discriminator_without_cuda_fails_before_any_data_loads(compose_cfg):
    overrides = ["split=adversarial", "split.discriminator=cnn", "split.device=cuda"]
    with pytest.raises(ConfigError) as err:
        build_spec(compose_cfg(overrides))
    assert str(err.value) == "split.device=cuda: no CUDA device here; use auto or cpu"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epochs": 0}, "epochs=0: must be an integer ≥ 1"),
        ({"patience": 2.5}, "patience=2.5: must be an integer ≥ 1"),
        ({"width": 0}, "width=0: must be an integer ≥ 1"),
        ({"batch_size": 1}, "batch_size=1: must be an integer ≥ 2"),
        ({"lr": 0.0}, "lr=0.0: must be in (0, inf)"),
        ({"holdout": 1}, "holdout=1: must be an integer ≥ 2"),
    ],
)
def test_the_cnn_discriminator_built_directly_refuses_bad_settings(kwargs, message):
    with pytest.raises(ConfigError) as err:
        ConvDiscriminator(**kwargs)
    assert str(err.value) == message


def test_the_split_keys_set_the_cnn_discriminator_and_feature_net():
    split = AdversarialSplit(discriminator="cnn", cnn_epochs=7, cnn_patience=2, cnn_width=4)
    assert (split.discriminator.epochs, split.discriminator.patience) == (7, 2)
    assert split.discriminator.width == 4
    features = AdversarialSplit(discriminator="features", features="trained", feature_epochs=2)
    assert (features.embedding.kind, features.embedding.epochs) == ("trained", 2)
    with pytest.raises(ConfigError) as err:
        FeatureEmbedding(width=0)
    assert str(err.value) == "width=0: must be an integer ≥ 1"


def test_plot_split_writes_a_png(tmp_path: Path, noisy_split):
    path = tmp_path / "split.png"
    plot_split(path, noisy_split.arrays, noisy_split.info)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 10_000


def test_adversarial_run_records_the_split_and_per_epoch_test_accuracy(train_run, tmp_path):
    summary = train_run(
        [
            "split=adversarial",
            "dataset.test_shift=corrupt",
            "dataset.subset=400",
            "trainer=smoke",
            "trainer.epochs=2",
            "track_test=true",
        ]
    )
    split = summary["split"]
    assert split["auc"] > 0.8
    assert split["val_size"] == 40 and split["val_unique"] <= 40
    assert 0 < split["ess"] <= 40 and 0 < split["weight_min"] <= split["weight_max"]
    assert summary["dataset"]["val_size"] == 40
    assert summary["dataset"]["train_size"] == 400 - split["val_unique"]
    with open(tmp_path / "run" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2
    # The last epoch's weights are the best or not; either way test_acc is logged per epoch
    # and the final test accuracy is that of one of the logged epochs.
    logged = [float(r["test_acc"]) for r in rows]
    assert all(0.0 < a <= 1.0 for a in logged)
    best = logged[summary["best_epoch"] - 1]
    assert summary["test"]["acc"] == pytest.approx(best, abs=1e-6)


def test_a_validation_set_of_too_few_distinct_images_warns(caplog):
    """1 image (or a resample drawing one image 5 times) for 10 classes: one warning; two
    images per class on average: none."""
    import logging

    from regx.engine.setup import warn_small_validation
    from regx.splits.base import Split

    def warned(val_idx: list[int]) -> list[str]:
        caplog.clear()
        split = Split(train_idx=torch.arange(100, 200), val_idx=torch.tensor(val_idx))
        with caplog.at_level(logging.WARNING, logger="regx"):
            warn_small_validation(split, num_classes=10)
        return [r.getMessage() for r in caplog.records]

    assert warned([3]) == [
        "the validation set holds 1 distinct image(s) for 10 classes: the best epoch "
        "(trainer.monitor) and the temperature are picked on too few to mean much; raise "
        "split.val_fraction or use more data"
    ]
    assert len(warned([50] * 5 + list(range(18)))) == 1  # 19 distinct
    assert warned(list(range(20))) == []
