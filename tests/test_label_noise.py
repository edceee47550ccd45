"""Label noise (`dataset.label_noise`), `split.clean_val`, the memorization metrics and
the report's noise section: exact counts against an independent computation."""

from __future__ import annotations

import re
from collections import Counter
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
import torch

from fault_helpers import error_line, regx_process
from regx.config import compose_config
from regx.config.build import build_spec
from regx.data.digits import Digits
from regx.data.label_noise import apply_label_noise, parse_label_noise
from regx.data.synthetic import Synthetic
from regx.data.types import ImageData
from regx.errors import ConfigError
from regx.metrics.memorization import noise_metrics
from regx.report.noise import noise_section, plot_noise
from regx.splits.random import RandomSplit


def expected_quota(counts: list[int], rate: float) -> list[int]:
    """Largest-remainder split of round(rate·N) over classes ∝ counts, in exact fractions."""
    n = sum(counts)
    total = round(rate * n)
    quota = [Fraction(c * total, n) for c in counts]
    take = [q.numerator // q.denominator for q in quota]
    order = sorted(range(len(counts)), key=lambda c: (-(quota[c] - take[c]), c))
    for c in order[: total - sum(take)]:
        take[c] += 1
    return take


def noisy_mask(data) -> torch.Tensor:
    """Which training labels were flipped."""
    return data.train_y != data.train_clean_y


def flips(data) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    clean, given = data.train_clean_y.numpy(), data.train_y.numpy()
    return clean, given, np.flatnonzero(clean != given)


@pytest.mark.parametrize("kind", ["symmetric", "pairflip"])
@pytest.mark.parametrize("rate", [0.2, 0.45])
def test_exactly_round_rate_n_labels_flip_stratified_per_class(kind: str, rate: float) -> None:
    plain = Digits().load(seed=0)
    data = Digits(label_noise={"rate": rate, "kind": kind}).load(seed=0)
    clean, given, flipped = flips(data)
    assert np.array_equal(clean, plain.train_y.numpy())  # the true labels are the loaded ones
    n = len(clean)
    assert len(flipped) == round(rate * n)  # 1438 images: 288 at 20 %, 647 at 45 %
    counts = np.bincount(clean, minlength=10).tolist()
    per_class = np.bincount(clean[flipped], minlength=10).tolist()
    assert per_class == expected_quota(counts, rate)
    assert data.info["label_noise"]["flipped_per_class"] == per_class
    assert data.info["label_noise"]["realized_rate"] == len(flipped) / n
    if kind == "pairflip":
        assert np.array_equal(given[flipped], (clean[flipped] + 1) % 10)
    else:
        # a uniformly drawn *other* class: never the same, and every other class occurs
        assert (given[flipped] != clean[flipped]).all()
        pairs = {(int(a), int(b)) for a, b in zip(clean[flipped], given[flipped])}
        assert len(pairs) > 60  # of the 90 ordered pairs, at 288+ draws
        # the step to the new class, (given − clean) mod 10, is uniform on 1..9: chi-square
        steps = np.bincount((given[flipped] - clean[flipped]) % 10, minlength=10)
        assert steps[0] == 0 and scipy.stats.chisquare(steps[1:]).pvalue > 1e-3


def test_images_test_set_and_other_draws_are_unchanged_by_noise() -> None:
    plain = Digits(subset=700).load(seed=3)
    noisy = Digits(subset=700, label_noise={"rate": 0.3}).load(seed=3)
    assert torch.equal(noisy.train_x, plain.train_x)  # same subset drawn
    assert torch.equal(noisy.train_clean_y, plain.train_y)
    assert torch.equal(noisy.test_x, plain.test_x)
    assert torch.equal(noisy.test_y, plain.test_y)  # the test labels are never changed
    assert noisy.mean == plain.mean and noisy.std == plain.std
    assert int(noisy_mask(noisy).sum()) == 210


def test_rate_zero_is_bit_identical_to_no_noise() -> None:
    plain = Digits().load(seed=0)
    off = Digits(label_noise={"rate": 0.0, "kind": "pairflip"}).load(seed=0)
    assert off.train_clean_y is None
    for name in ("train_x", "train_y", "test_x", "test_y"):
        assert torch.equal(getattr(off, name), getattr(plain, name))
    assert off.info == plain.info and off.mean == plain.mean
    assert torch.equal(off.train_true_y, plain.train_y)  # the true labels are the given ones


def test_same_seed_same_flips_other_seed_or_offset_other_flips() -> None:
    def flipped_set(seed: int, offset: int = 0) -> tuple[frozenset, np.ndarray]:
        data = Digits(label_noise={"rate": 0.2, "seed_offset": offset}).load(seed=seed)
        _, given, idx = flips(data)
        return frozenset(idx.tolist()), given

    a, given_a = flipped_set(0)
    b, given_b = flipped_set(0)
    assert a == b and np.array_equal(given_a, given_b)
    c, _ = flipped_set(1)
    d, _ = flipped_set(0, offset=5)
    assert len(a) == len(c) == len(d) == 288
    assert a != c and a != d
    assert len(a & c) < 150  # independent draws of 288 of 1438 share ~58 on average


def test_asymmetric_preset_flips_round_rate_ns_spread_over_the_mapped_classes() -> None:
    rate = 0.4
    data = Digits(label_noise={"rate": rate, "kind": "asymmetric", "preset": "mnist"}).load()
    clean, given, flipped = flips(data)
    mapping = {2: 7, 3: 8, 5: 6, 6: 5, 7: 1}
    counts = np.bincount(clean, minlength=10)
    per_class = np.bincount(clean[flipped], minlength=10)
    sources = sorted(mapping)
    # 0.4·N_S = 288.8 → 289 flips, where rounding each class alone gives 288
    assert len(flipped) == round(rate * counts[sources].sum()) == 289
    for c in range(10):
        if c in mapping:
            assert abs(per_class[c] - rate * counts[c]) < 1, c  # floor or ceil of r·n_c
            assert (given[flipped][clean[flipped] == c] == mapping[c]).all()
        else:
            assert per_class[c] == 0, c
    assert data.info["label_noise"]["class_map"] == {
        "2": "7",
        "3": "8",
        "5": "6",
        "6": "5",
        "7": "1",
    }


def test_asymmetric_map_of_every_class_flips_exactly_round_rate_n() -> None:
    rate = 0.3
    cycle = {c: (c + 3) % 10 for c in range(10)}
    data = Digits(label_noise={"rate": rate, "kind": "asymmetric", "class_map": cycle}).load()
    clean, given, flipped = flips(data)
    # 0.3·1438 = 431.4 → 431; rounding each class's 0.3·n_c alone would give 434
    assert len(flipped) == round(rate * len(clean)) == 431
    assert (given[flipped] == (clean[flipped] + 3) % 10).all()
    assert data.info["label_noise"]["flipped"] == 431


def test_asymmetric_map_by_names_swaps_two_disjoint_sets() -> None:
    source = Synthetic(
        label_noise={
            "rate": 0.5,
            "kind": "asymmetric",
            "class_map": {"class1": "class2", "class2": 1},
        }
    )
    data = source.load(seed=0)
    clean, given, flipped = flips(data)
    assert len(flipped) == 2 * round(0.5 * 128)  # 512 images, 128 per class
    assert set(zip(clean[flipped].tolist(), given[flipped].tolist())) == {(1, 2), (2, 1)}


def test_cifar10_preset_on_cifar_class_names() -> None:
    names = [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ]
    y = torch.arange(200) % 10  # 20 images per class
    data = ImageData(
        "cifar", torch.zeros(200, 3, 2, 2, dtype=torch.uint8), y, y[:10], y[:10], names
    )
    noise = parse_label_noise({"rate": 0.25, "kind": "asymmetric", "preset": "cifar10"})
    noisy = apply_label_noise(data, noise, seed=0)
    clean, given, flipped = flips(noisy)
    moves = Counter((names[a], names[b]) for a, b in zip(clean[flipped], given[flipped]))
    pairs = [("truck", "automobile"), ("bird", "airplane"), ("deer", "horse")]
    assert moves == {p: 5 for p in [*pairs, ("cat", "dog"), ("dog", "cat")]}  # round(0.25·20)
    assert torch.equal(noisy.test_y, data.test_y)


def test_a_preset_for_other_classes_is_named_with_the_classes_the_data_lacks() -> None:
    y = torch.arange(40) % 4
    names = ["class0", "class1", "class2", "class3"]
    data = ImageData("s", torch.zeros(40, 1, 2, 2, dtype=torch.uint8), y, y[:4], y[:4], names)
    noise = parse_label_noise({"rate": 0.2, "kind": "asymmetric", "preset": "cifar10"})
    with pytest.raises(ConfigError) as err:
        apply_label_noise(data, noise, seed=0)
    assert str(err.value) == (
        "dataset.label_noise.preset=cifar10: maps classes this data lacks (truck, bird, deer, "
        "cat, dog, automobile, airplane, horse); the preset is for cifar10's classes: for "
        "this data give a class_map {source: target}"
    )
    # mnist's preset names classes by index: any data with classes 0..7 has them
    mnist = parse_label_noise({"rate": 0.2, "kind": "asymmetric", "preset": "mnist"})
    with pytest.raises(ConfigError, match=re.escape("lacks (5, 6, 7, 8)")):
        apply_label_noise(data, mnist, seed=0)


def test_compose_build_load_gives_the_counts() -> None:
    cfg = compose_config(["dataset=digits", "dataset.label_noise.rate=0.2"])
    spec = build_spec(cfg)
    data = spec.dataset.load(seed=0)
    assert len(data.train_y) == 1438 and len(data.test_y) == 359
    assert int(noisy_mask(data).sum()) == 288 == round(0.2 * 1438)
    assert data.info["label_noise"]["kind"] == "symmetric"


def test_clean_val_restores_true_labels_for_validation_only() -> None:
    data = Digits(label_noise={"rate": 0.4}).load(seed=0)
    noisy_split, clean_split = RandomSplit(), RandomSplit(clean_val=True)
    split = noisy_split(data.train_x, data.train_y, data.test_x, seed=0)
    again = clean_split(data.train_x, data.train_y, data.test_x, seed=0)
    assert torch.equal(split.val_idx, again.val_idx)  # the same images validate
    val_noisy = noisy_split.validation_labels(data.train_y, data.train_true_y, split.val_idx)
    val_clean = clean_split.validation_labels(data.train_y, data.train_true_y, split.val_idx)
    assert torch.equal(val_clean, data.train_clean_y[split.val_idx])
    assert torch.equal(val_noisy, data.train_y[split.val_idx])
    flipped_in_val = int(noisy_mask(data)[split.val_idx].sum())
    assert flipped_in_val > 30 and int((val_noisy != val_clean).sum()) == flipped_in_val
    # training keeps the noisy labels
    assert int(noisy_mask(data)[split.train_idx].sum()) == 575 - flipped_in_val


@pytest.mark.parametrize("split", ["random", "adversarial"])
def test_clean_val_is_read_from_the_split_yaml(split: str) -> None:
    spec = build_spec(
        compose_config(["dataset=synthetic", f"split={split}", "split.clean_val=true"])
    )
    assert spec.split.clean_val is True
    default = build_spec(compose_config(["dataset=synthetic", f"split={split}"]))
    assert default.split.clean_val is False
    with pytest.raises(ConfigError, match=r"^split.clean_val=maybe: must be true or false$"):
        build_spec(compose_config(["dataset=synthetic", f"split={split}", "split.clean_val=maybe"]))


def test_noise_metrics_of_memorizing_and_truthful_stubs() -> None:
    data = Digits(label_noise={"rate": 0.2}).load(seed=0)
    given, true = data.train_y, data.train_clean_y
    memorizer = noise_metrics(given, given, true)  # predicts every given label
    assert memorizer == {
        "rate": 288 / 1438,
        "fit_clean": 1.0,
        "memorized": 1.0,
        "recovered": 0.0,
        "n_flipped": 288,
    }
    truthful = noise_metrics(torch.nn.functional.one_hot(true, 10).float(), given, true)
    assert (truthful["memorized"], truthful["recovered"], truthful["fit_clean"]) == (0.0, 1.0, 1.0)


def test_noise_metrics_match_numpy_counts_for_random_predictions() -> None:
    rng = np.random.default_rng(0)
    true = rng.integers(0, 5, 400)
    given = np.where(rng.random(400) < 0.3, rng.integers(0, 5, 400), true)
    pred = np.where(rng.random(400) < 0.5, given, rng.integers(0, 5, 400))
    got = noise_metrics(*(torch.from_numpy(a) for a in (pred, given, true)))
    f = given != true
    assert got["rate"] == f.mean()
    assert got["fit_clean"] == (pred == given)[~f].mean()
    assert got["memorized"] == (pred == given)[f].mean()
    assert got["recovered"] == (pred == true)[f].mean()
    assert 0.3 < got["memorized"] < 0.8 and 0.0 < got["recovered"] < 0.3


def test_noise_metrics_without_flips_are_nan_for_the_flipped_shares() -> None:
    y = torch.tensor([0, 1, 1, 2])
    got = noise_metrics(torch.tensor([0, 1, 0, 2]), y, y)
    assert got["rate"] == 0.0 and got["fit_clean"] == 0.75 and got["n_flipped"] == 0
    assert np.isnan(got["memorized"]) and np.isnan(got["recovered"])


def _noisy_history() -> list[dict]:
    # test accuracy peaks at epoch 3 and falls as memorized rises (the regime to show)
    test = [0.50, 0.70, 0.80, 0.75, 0.66]
    memorized = [0.05, 0.10, 0.20, 0.55, 0.90]
    return [
        {
            "epoch": e + 1,
            "val_acc": 0.5,
            "test_acc": test[e],
            "noise_fit_clean": 0.6 + 0.08 * e,
            "noise_memorized": memorized[e],
            "noise_recovered": 0.7 - memorized[e] * 0.7,
        }
        for e in range(5)
    ]


def test_noise_section_and_figure(tmp_path: Path) -> None:
    summary = {
        "best_epoch": 2,
        "monitor": "val_acc",
        "test": {"acc": 0.7},
        "noise": {
            "kind": "asymmetric",
            "configured_rate": 0.4,
            "realized_rate": 0.1001,
            "flipped": 144,
            "train_pool": 1438,
            "class_map": {"2": "7", "5": "6"},
            "clean_val": True,
            "rate": 0.1,
            "fit_clean": 0.68,
            "memorized": 0.1,
            "recovered": 0.63,
        },
    }
    history = _noisy_history()
    lines = noise_section(summary, history)
    text = "\n".join(lines)
    assert lines[0] == "## Label noise"
    assert "40.0% configured; 144 of the 1438 training-pool labels flipped (10.01%)" in text
    assert "2 → 7, 5 → 6" in text and "split.clean_val=true" in text
    assert "| evaluated (summary.json) | 2 | 70.00 | 68.00 | 10.00 | 63.00 |" in lines
    assert "| picked (best val_acc) | 2 | 70.00 | 68.00 | 10.00 | 63.00 |" in lines
    assert "| peak test accuracy | 3 | 80.00 | 76.00 | 20.00 | 56.00 |" in lines
    assert "| last tracked | 5 | 66.00 | 92.00 | 90.00 | 7.00 |" in lines
    assert "![label noise per epoch](noise.png)" in lines
    assert plot_noise(tmp_path / "noise.png", history, best_epoch=2)
    assert (tmp_path / "noise.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # rows read back from metrics.csv hold strings; untracked epochs have empty cells
    as_csv = [{k: str(v) for k, v in row.items()} for row in history]
    as_csv[1]["noise_memorized"] = ""
    assert plot_noise(tmp_path / "csv.png", as_csv)
    assert not plot_noise(tmp_path / "none.png", [{"epoch": 1, "val_acc": 0.5}])
    assert not (tmp_path / "none.png").exists()
    assert noise_section({"best_epoch": 1}, history) == []


# (override, the whole error line after "error: ")
BAD = [
    ("dataset.label_noise.rate=1", "dataset.label_noise.rate=1: must be in [0, 1)"),
    ("dataset.label_noise.rate=-0.1", "dataset.label_noise.rate=-0.1: must be in [0, 1)"),
    (
        "dataset.label_noise.kind=foo",
        "dataset.label_noise.kind=foo: must be one of symmetric, pairflip, asymmetric",
    ),
    (
        "dataset.label_noise.kind=asymmetric",
        "dataset.label_noise.class_map=null: kind=asymmetric needs a class_map "
        "{source: target} or a preset (cifar10, mnist)",
    ),
    (
        "dataset.label_noise.class_map={class0:zebra}",
        "dataset.label_noise.class_map=zebra: names no class of the data: use an index "
        "0..3 or a name (class0, class1, class2, class3)",
    ),
    (
        "dataset.label_noise.class_map={class1:class1}",
        "dataset.label_noise.class_map={class1: class1}: maps class class1 to itself; "
        "a flip must change the label",
    ),
]


@pytest.mark.parametrize(("override", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_label_noise_fails_in_one_line_from_the_cli(
    override: str, message: str, tmp_path: Path
) -> None:
    args = ["train", "dataset=synthetic", "trainer.epochs=1", "trainer.progress=false", override]
    if "class_map" in override:
        args += ["dataset.label_noise.rate=0.2", "dataset.label_noise.kind=asymmetric"]
    proc = regx_process(args, cwd=tmp_path)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, err
    assert error_line(err) == f"error: {message}"
    assert "Traceback" not in out + err
    assert not list(tmp_path.rglob("metrics.csv"))


def test_a_rate_that_rounds_to_no_flip_warns(caplog) -> None:
    import logging

    y = torch.arange(40) % 4
    names = ["a", "b", "c", "d"]
    data = ImageData("s", torch.zeros(40, 1, 2, 2, dtype=torch.uint8), y, y[:4], y[:4], names)
    with caplog.at_level(logging.WARNING, logger="regx"):
        noisy = apply_label_noise(data, parse_label_noise({"rate": 0.01}), seed=0)
    assert noisy.info["label_noise"]["flipped"] == 0
    assert [r.getMessage() for r in caplog.records] == [
        "dataset.label_noise.rate=0.01 changes no label of the 40 training images (the rate "
        "rounds to 0 flips): the run trains on clean labels"
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="regx"):
        apply_label_noise(data, parse_label_noise({"rate": 0.1}), seed=0)
    assert caplog.records == []
