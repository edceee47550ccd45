"""Held-out classes (`dataset.holdout_classes`): they never reach training, validation or
the classification test; their test images are exactly the open set."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fault_helpers import error_line, hydra_in_process, regx_process
from regx.config import compose_config
from regx.config.build import build_spec
from regx.data.digits import Digits
from regx.data.imagefolder import ImageFolder
from regx.data.synthetic import Synthetic
from regx.errors import ConfigError
from regx.report.retrieval_section import retrieval_section
from regx.splits.random import RandomSplit


def hashes(x: torch.Tensor) -> list[str]:
    return [hashlib.sha1(img.numpy().tobytes()).hexdigest() for img in x]


def by_class(x: torch.Tensor, y: torch.Tensor, classes: list[int]) -> Counter:
    """The multiset of image hashes of the given classes."""
    keep = torch.isin(y, torch.tensor(classes))
    return Counter(hashes(x[keep]))


def test_holdout_removes_classes_everywhere_and_the_open_set_is_their_test_images() -> None:
    full = Digits().load(seed=0)
    data = Digits(holdout_classes=[3, "7", 9]).load(seed=0)
    held, kept = [3, 7, 9], [0, 1, 2, 4, 5, 6, 8]
    assert data.classes == ["0", "1", "2", "4", "5", "6", "8"]
    assert data.open_classes == ["3", "7", "9"]
    # labels: kept classes re-indexed 0..6 in order, the open set 0..2
    assert sorted(set(data.train_y.tolist())) == list(range(7))
    assert sorted(set(data.test_y.tolist())) == list(range(7))
    assert torch.bincount(data.open_y).tolist() == [int((full.test_y == c).sum()) for c in held]
    # images: exactly the kept classes' images in train and test, the held-out test images open
    assert Counter(hashes(data.train_x)) == by_class(full.train_x, full.train_y, kept)
    assert Counter(hashes(data.test_x)) == by_class(full.test_x, full.test_y, kept)
    assert Counter(hashes(data.open_x)) == by_class(full.test_x, full.test_y, held)
    held_images = set(by_class(full.train_x, full.train_y, held)) | set(
        by_class(full.test_x, full.test_y, held)
    )
    assert not held_images & set(hashes(data.train_x) + hashes(data.test_x))
    # each image keeps its class: its new label is its original class's new index
    original = dict(zip(hashes(full.train_x), full.train_y.tolist()))
    for h, label in zip(hashes(data.train_x), data.train_y.tolist()):
        assert kept[label] == original[h]
    original_test = dict(zip(hashes(full.test_x), full.test_y.tolist()))
    for h, label in zip(hashes(data.open_x), data.open_y.tolist()):
        assert held[label] == original_test[h]
    assert data.info["holdout"]["classes"] == ["3", "7", "9"]
    assert (
        data.info["holdout"]["open_size"] == len(data.open_y) == 37 + 36 + 36
    )  # round(0.2·n) of 183, 179, 180


def test_validation_split_never_sees_held_out_classes() -> None:
    data = Digits(holdout_classes=4).load(seed=1)
    assert data.classes == ["0", "1", "2", "3", "4", "5"]
    split = RandomSplit()(data.train_x, data.train_y, data.test_x, seed=1)
    val_y = data.train_y[split.val_idx]
    assert set(val_y.tolist()) == set(range(6))
    open_hashes = set(hashes(data.open_x))
    assert not open_hashes & set(hashes(data.train_x[split.val_idx]))


def test_integer_k_holds_out_the_last_k_and_the_model_gets_k_prime_outputs() -> None:
    spec = build_spec(compose_config(["dataset=digits", "dataset.holdout_classes=5"]))
    data = spec.dataset.load(seed=0)
    assert data.num_classes == 5 and data.open_classes == ["5", "6", "7", "8", "9"]
    assert len(data.train_y) == 1438 - data.info["holdout"]["dropped_train_images"] == 721
    model = spec.model_factory(num_classes=data.num_classes, in_channels=1, image_size=8)
    assert model(data.train_x[:2].float()).shape == (2, 5)


def test_holdout_then_noise_among_kept_classes_with_original_indices() -> None:
    """A map index names the dataset's class, not its re-indexed position."""
    data = Digits(
        holdout_classes=[0, 1],
        label_noise={"rate": 0.5, "kind": "asymmetric", "class_map": {2: 7}},
    ).load(seed=0)
    clean, given = data.train_clean_y.numpy(), data.train_y.numpy()
    flipped = np.flatnonzero(clean != given)
    assert data.classes[0] == "2" and data.classes[5] == "7"
    assert set(clean[flipped]) == {0} and set(given[flipped]) == {5}
    assert len(flipped) == round(0.5 * int((clean == 0).sum()))
    symmetric = Digits(holdout_classes=5, label_noise={"rate": 0.4}).load(seed=0)
    assert int(symmetric.train_y.max()) == 4  # noise stays among the 5 kept classes
    assert int((symmetric.train_y != symmetric.train_clean_y).sum()) == round(0.4 * 721)


def test_holdout_by_name_on_synthetic_and_imagefolder(tmp_path: Path) -> None:
    data = Synthetic(num_classes=5, holdout_classes=["class4", "class0"]).load(seed=0)
    assert data.classes == ["class1", "class2", "class3"]
    assert data.open_classes == ["class0", "class4"]
    root = tmp_path / "imgs"
    names = ["ant", "bee", "cat", "dog"]
    for split in ("train", "test"):
        for c, name in enumerate(names):
            (root / split / name).mkdir(parents=True)
            for i in range(2):
                arr = np.full((4, 4, 3), 50 * c + 10 * i + (split == "test"), dtype=np.uint8)
                Image.fromarray(arr).save(root / split / name / f"{i}.png")
    folder = ImageFolder(
        root=str(root), cache_dir=str(tmp_path / "cache"), holdout_classes=["bee", "dog"]
    ).load()
    assert folder.classes == ["ant", "cat"] and folder.open_classes == ["bee", "dog"]
    assert folder.train_y.tolist() == [0, 0, 1, 1] and folder.open_y.tolist() == [0, 0, 1, 1]
    # pixel values encode the class: bee (c=1) and dog (c=3) test images, none in training
    assert sorted(folder.open_x[:, 0, 0, 0].tolist()) == [51, 61, 151, 161]
    assert sorted(folder.train_x[:, 0, 0, 0].tolist()) == [0, 10, 100, 110]


def test_synthetic_open_set_counts() -> None:
    full = Synthetic(num_classes=5).load()
    data = Synthetic(num_classes=5, holdout_classes=["class4", "class0"]).load()
    want = int((full.test_y == 0).sum() + (full.test_y == 4).sum())
    assert len(data.open_y) == want and len(data.test_y) == 256 - want


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (1, "holdout_classes=1: must be null, an integer k ≥ 2 (the last k classes), or a list"),
        (["class1"], "holdout_classes=['class1']: must be null, an integer k ≥ 2"),
        ([1, 1], "holdout_classes=[1, 1]: names a class twice"),
        ("abc", "holdout_classes=abc: must be null, an integer k ≥ 2"),
    ],
)
def test_bad_holdout_forms_fail_at_construction(value, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        Synthetic(holdout_classes=value)
    assert str(err.value).startswith(message)


# (override, the whole error line after "error: "); synthetic has 4 classes
BAD = [
    (
        "dataset.holdout_classes=[class1,zebra]",
        "dataset.holdout_classes=zebra: names no class of the data: use an index 0..3 or a "
        "name (class0, class1, class2, class3)",
    ),
    (
        "dataset.holdout_classes=[class1]",
        "dataset.holdout_classes=['class1']: must be null, an integer k ≥ 2 (the last k "
        "classes), or a list of ≥ 2 classes",
    ),
    (
        "dataset.holdout_classes=4",
        "dataset.holdout_classes=4: must leave at least 2 of the 4 classes to train on",
    ),
    (
        "dataset.holdout_classes=[0,1,2]",
        "dataset.holdout_classes=[0, 1, 2]: must leave at least 2 of the 4 classes to train on",
    ),
    (
        "dataset.holdout_classes=[class1,1]",
        "dataset.holdout_classes=['class1', 1]: names a class twice",
    ),
]


@pytest.mark.parametrize(("override", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_holdout_fails_in_one_line(
    override: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = hydra_in_process(["dataset=synthetic", "trainer.epochs=1", override])
    assert code == 2, err
    assert error_line(err) == f"error: {message}"
    assert "Traceback" not in out
    assert not list(tmp_path.rglob("metrics.csv"))


def test_every_class_held_out_fails_in_one_line_from_the_cli(tmp_path: Path) -> None:
    proc = regx_process(
        [
            "train",
            "dataset=synthetic",
            "trainer.progress=false",
            "dataset.holdout_classes=[0,1,2,3]",
        ],
        cwd=tmp_path,
    )
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, err
    assert "Traceback" not in out + err
    assert error_line(err) == (
        "error: dataset.holdout_classes=[0, 1, 2, 3]: must leave at least 2 of the 4 classes "
        "to train on"
    )


def test_retrieval_section_closed_and_open() -> None:
    summary = {
        "retrieval": {"recall_at_1": 0.9, "map_at_r": 0.75},
        "retrieval_open": {
            "recall_at_1": 0.6,
            "map_at_r": 0.3125,
            "recall_at_k": {"1": 0.6, "2": 0.7, "4": 0.8, "8": 0.95},
            "n_queries": 179,
            "classes": ["5", "6", "7", "8", "9"],
        },
    }
    lines = retrieval_section(summary)
    assert lines[2] == "| metric | test classes | held-out classes |"
    assert "| recall@1 (%) | 90.00 | 60.00 |" in lines
    assert "| recall@2 (%) | — | 70.00 |" in lines
    assert "| recall@8 (%) | — | 95.00 |" in lines
    assert "| MAP@R (%) | 75.00 | 31.25 |" in lines
    assert "| queries | — | 179 |" in lines
    assert any("`5`, `6`, `7`, `8`, `9`" in line for line in lines)
    closed_only = retrieval_section({"retrieval": summary["retrieval"]})
    assert closed_only[2] == "| metric | test classes |" and len(closed_only) == 7
    assert retrieval_section({}) == []
