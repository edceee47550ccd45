"""Hostile data and settings: each ends in one DataError/ConfigError naming cause and fix,
never a traceback or silently wrong numbers (corrupt torchvision files, one class, a cache
dir under a file, 16-bit images, non-finite stats, empty open sets, tiny shifted test sets,
constant scores, numeric class names, a file as root, AppleDouble files)."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fault_helpers import error_line, hydra_in_process
from regx.config.build import build_spec
from regx.data.base import DatasetSource
from regx.data.class_refs import resolve_class
from regx.data.decode import DecodeSpec, decode_image
from regx.data.decoded_cache import SplitCache
from regx.data.holdout import apply_holdout
from regx.data.imagefolder import ImageFolder, list_class_folders
from regx.data.shift import Shift, min_shifted_test_size
from regx.data.subpop import standardized_scores
from regx.data.torchvision_sets import CIFAR10, MNIST
from regx.data.types import ImageData
from regx.errors import ConfigError, DataError

CIFAR_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
MNIST_FILES = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
]


def folder_tree(root: Path, counts: dict[str, tuple[int, int]], size: int = 6) -> Path:
    """root/{train,test}/<class>/<i>.png with (train, test) images per class, distinct pixels."""
    for c, (name, per_split) in enumerate(counts.items()):
        for split, n in zip(("train", "test"), per_split):
            folder = root / split / name
            if n:
                folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = np.full((size, size, 3), (40 * c + 7 * i) % 256, dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    return root


def image_data(train_y: list[int], test_y: list[int], classes: list[str]) -> ImageData:
    """ImageData of 4×4 gray images whose pixel value is the image's position (distinct)."""

    def images(n: int, offset: int) -> torch.Tensor:
        values = (torch.arange(n) + offset) % 256
        return values.to(torch.uint8).view(n, 1, 1, 1).expand(n, 1, 4, 4).contiguous()

    return ImageData(
        name="toy",
        train_x=images(len(train_y), 0),
        train_y=torch.tensor(train_y, dtype=torch.int64),
        test_x=images(len(test_y), 100),
        test_y=torch.tensor(test_y, dtype=torch.int64),
        classes=classes,
    )


class InMemory(DatasetSource):
    """A source handing over a fixed ImageData, to test `load()` for any source."""

    name = "in_memory"

    def __init__(self, data: ImageData, **common) -> None:
        super().__init__(**common)
        self.data = data

    def _load_raw(self) -> ImageData:
        return self.data


# -- 1. corrupt torchvision files ---------------------------------------------------------
@pytest.mark.parametrize("content", [b"", b"garbage not pickle\n"], ids=["empty", "garbage"])
def test_corrupt_cifar_files_are_one_data_error_naming_the_folder(tmp_path, content):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in CIFAR_FILES:
        (folder / name).write_bytes(content)
    with pytest.raises(DataError) as err:
        CIFAR10(root=str(tmp_path), download=False).load()
    message = str(err.value)
    assert message.startswith(f"cannot read the cifar10 files in {folder} (")
    assert message.endswith(f"delete {folder} and run again with dataset.download=true")
    assert "\n" not in message


def test_cifar_with_a_batch_missing_is_named_incomplete_not_absent(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in CIFAR_FILES[1:]:
        with open(folder / name, "wb") as f:
            pickle.dump({"data": np.zeros((1, 3072), np.uint8), "labels": [0]}, f)
    with pytest.raises(DataError, match=r"^cannot read the cifar10 files in .*incomplete"):
        CIFAR10(root=str(tmp_path), download=False).load()


def test_garbage_mnist_files_are_one_data_error(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in MNIST_FILES:
        (raw / name).write_bytes(b"\x00\x00\x08\x09 not an idx file at all")
    with pytest.raises(DataError) as err:
        MNIST(root=str(tmp_path), download=False).load()
    assert str(err.value).startswith(f"cannot read the mnist files in {raw} (")


def test_corrupt_cifar_end_to_end_is_one_line_exit_3(tmp_path):
    folder = tmp_path / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in CIFAR_FILES:
        (folder / name).write_bytes(b"")
    code, out, err = hydra_in_process(
        [
            "dataset=cifar10",
            f"dataset.root={tmp_path / 'data'}",
            "dataset.download=false",
            f"hydra.run.dir={tmp_path / 'run'}",
        ]
    )
    assert code == 3
    assert error_line(err).startswith(f"error: cannot read the cifar10 files in {folder} (")
    assert "Traceback" not in out + err


# -- 2. fewer than 2 classes --------------------------------------------------------------
def test_one_class_source_is_refused_before_label_noise(tmp_path):
    data = image_data([0] * 10, [0] * 4, ["only"])
    for noise in (None, {"rate": 0.3}):
        with pytest.raises(DataError, match=r"^toy has 1 class \(only\): classification needs"):
            InMemory(data, label_noise=noise).load()


def test_labels_of_one_class_among_two_are_refused():
    data = image_data([1] * 10, [0, 1], ["a", "b"])
    with pytest.raises(DataError, match=r"the training images are all of 1 class \(b\) of 2"):
        InMemory(data).load()


def test_subset_keeping_one_class_is_a_subset_error():
    data = image_data([0] * 6 + [1] * 4, [0, 1], ["a", "b"])
    with pytest.raises(ConfigError) as err:
        InMemory(data, subset=1).load()
    assert err.value.key == "dataset.subset" and "of 1 class only (a)" in str(err.value)
    assert InMemory(data, subset=2).load().train_y.tolist() == [0, 1]


def test_imagefolder_with_one_class_folder_is_refused(tmp_path):
    root = folder_tree(tmp_path / "one", {"only": (3, 2)})
    with pytest.raises(DataError, match=r"train has 1 class folder \(only\): at least 2"):
        ImageFolder(root=str(root)).load()


def test_one_class_gallery_listing_is_refused_and_two_are_listed(tmp_path):
    root = folder_tree(tmp_path / "g", {"a": (3, 0)})
    with pytest.raises(DataError, match=r"train has 1 class folder \(a\): at least 2"):
        list_class_folders(root / "train")
    folder_tree(root, {"a": (0, 0), "b": (2, 0)})
    listed = list_class_folders(root / "train")
    assert {name: len(files) for name, files in listed.items()} == {"a": 3, "b": 2}


def test_test_split_with_one_class_is_accepted_with_a_warning(tmp_path, caplog):
    root = folder_tree(tmp_path / "r", {"a": (3, 2), "b": (3, 0)})
    with caplog.at_level(logging.WARNING, logger="regx"):
        data = ImageFolder(root=str(root)).load()
    assert data.test_y.tolist() == [0, 0] and data.classes == ["a", "b"]
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned == [
        f"{root}: test/ has no folder for 1 of the 2 classes of train/ (b): the test metrics "
        "cover the other classes only"
    ]
    caplog.clear()
    full = folder_tree(tmp_path / "full", {"a": (3, 2), "b": (3, 1)})
    with caplog.at_level(logging.WARNING, logger="regx"):
        ImageFolder(root=str(full)).load()
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


# -- 3. cache dir under a regular file ----------------------------------------------------
def test_cache_under_a_file_warns_and_the_load_goes_on(tmp_path, caplog):
    blocker = tmp_path / "plain_file"
    blocker.write_text("x")
    cache = SplitCache(blocker / "imagefolder-k", "train", "k")
    with caplog.at_level(logging.WARNING, logger="regx"):
        cache.write(np.zeros((2, 1, 3, 3), np.uint8))
    assert cache.read() is None
    assert [r.getMessage() for r in caplog.records if "cannot write" in r.getMessage()]
    root = folder_tree(tmp_path / "imgs", {"a": (2, 1), "b": (2, 1)})
    data = ImageFolder(root=str(root), cache_dir=str(blocker)).load()
    assert data.train_x.shape == (4, 3, 6, 6)


# -- 4. 16-bit images ---------------------------------------------------------------------
def test_16_bit_png_is_scaled_not_saturated(tmp_path):
    rng = np.random.default_rng(3)
    values = rng.integers(0, 65536, (5, 7), dtype=np.uint16)
    values[0, :4] = [0, 255, 256, 65535]
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I")
    expected = (values >> 8).astype(np.uint8)
    gray = decode_image(str(path), DecodeSpec(channels=1))
    assert np.array_equal(gray[0], expected) and gray[0, 0, :4].tolist() == [0, 0, 1, 255]
    rgb = decode_image(str(path), DecodeSpec(channels=3))
    assert rgb.shape == (3, 5, 7) and all(np.array_equal(c, expected) for c in rgb)


def test_32_bit_integer_image_is_read_on_the_16_bit_scale_and_clipped(tmp_path):
    values = np.array([[-5, 0, 255, 256, 32768, 65535, 70000]], dtype=np.int32)
    path = tmp_path / "wide.tif"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode == "I"
    pixels = decode_image(str(path), DecodeSpec(channels=1))
    assert pixels[0, 0].tolist() == [0, 0, 0, 1, 128, 255, 255]


def test_imagefolder_of_16_bit_pngs_detects_gray_and_scales(tmp_path):
    root = folder_tree(tmp_path / "r", {"a": (1, 1), "b": (1, 1)})
    rng = np.random.default_rng(0)
    for path in sorted(root.rglob("*.png")):
        Image.fromarray(rng.integers(0, 65536, (6, 6), dtype=np.uint16)).save(path)
    data = ImageFolder(root=str(root)).load()
    first = np.asarray(Image.open(root / "train" / "a" / "000.png"))
    assert data.channels == 1
    assert torch.equal(data.train_x[0, 0], torch.from_numpy((first >> 8).astype(np.uint8)))
    assert data.train_x.float().mean() < 200  # clipping had made ~all pixels 255


# -- 5. non-finite mean/std ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("dataset.mean=[nan]", "dataset.mean"),
        ("dataset.mean=[inf]", "dataset.mean"),
        ("dataset.std=[inf]", "dataset.std"),
        ("dataset.std=[nan]", "dataset.std"),
    ],
)
def test_non_finite_mean_or_std_is_a_config_error(compose_cfg, override, key):
    stats = {"dataset.mean": "dataset.mean=[0.5]", "dataset.std": "dataset.std=[0.25]"}
    other = stats["dataset.std" if key == "dataset.mean" else "dataset.mean"]
    with pytest.raises(ConfigError) as err:
        build_spec(compose_cfg(["dataset=digits", other, override]))
    assert err.value.key == key and "finite" in err.value.allowed


# -- 6. held-out classes without test images ----------------------------------------------
def test_held_out_classes_need_two_with_test_images():
    classes = ["a", "b", "c", "d", "e"]
    data = image_data([0, 1, 2, 3, 4] * 2, [0, 1, 2, 2], classes)
    with pytest.raises(ConfigError) as err:
        apply_holdout(data, ["d", "e"])
    assert err.value.key == "dataset.holdout_classes"
    assert "only 0 of the 2 held-out classes have test images (none for d, e)" in str(err.value)
    with pytest.raises(ConfigError, match=r"only 1 of the 2 .* \(none for d\)"):
        apply_holdout(data, ["c", "d"])
    kept = apply_holdout(data, ["b", "c"])
    assert kept.open_y.tolist() == [0, 1, 1] and kept.open_classes == ["b", "c"]


# -- 7. shifts that leave too few test images ---------------------------------------------
def test_subpop_refuses_a_test_set_below_the_minimum_and_names_the_keep_needed():
    data = image_data([0, 1] * 20, [0, 1] * 20, ["a", "b"])  # 40 test images, minimum 20
    assert min_shifted_test_size(2) == 20 and min_shifted_test_size(30) == 60
    kept = Shift(tilt=0.0, keep=0.5).apply(data, "subpop", seed=0)
    assert len(kept.test_y) == 20
    with pytest.raises(ConfigError) as err:
        Shift(tilt=0.0, keep=0.45).apply(data, "subpop", seed=0)
    assert err.value.key == "shift.keep"
    assert str(err.value).startswith("shift.keep=0.45: leaves 18 of the 40 test images")
    assert str(err.value).endswith("raise shift.keep to at least 0.5")


def test_prior_shift_that_leaves_too_few_is_refused():
    # strength 0.8: class 0 five times as frequent as class 1, whose 3 images allow 15 + 3
    data = image_data([0, 1] * 10, [0] * 30 + [1] * 3, ["a", "b"])
    with pytest.raises(ConfigError) as err:
        Shift(strength=0.8).apply(data, "prior", seed=0)
    assert err.value.key == "shift.strength"
    assert "leaves 18 of the 33 test images, fewer than the 20" in str(err.value)
    more = image_data([0, 1] * 10, [0] * 30 + [1] * 10, ["a", "b"])
    assert Shift(strength=0.8).apply(more, "prior", seed=0).test_y.bincount().tolist() == [30, 6]


def test_test_set_already_below_the_minimum_says_so():
    data = image_data([0, 1] * 10, [0, 1] * 5, ["a", "b"])
    with pytest.raises(ConfigError, match=r"the test set has only 10: use more test images"):
        Shift(keep=1.0).apply(data, "subpop", seed=0)


# -- 8. constant scores -------------------------------------------------------------------
def test_constant_brightness_with_rounding_noise_is_refused():
    x = torch.full((60, 3, 16, 16), 128, dtype=torch.uint8)
    s = (x.double() / 255).reshape(60, -1).mean(dim=1).numpy()
    assert 0 < s.std() < 1e-15  # the rounding noise that passed `sigma > 0`
    with pytest.raises(ConfigError, match=r"^shift.score=brightness: is constant"):
        standardized_scores(x, x, "brightness")
    y = x.clone()
    y[0, 0, 0, 0] = 129  # one level in one pixel is a real, if tiny, spread
    _, (_, z) = standardized_scores(y, y, "brightness")
    assert z[0] == pytest.approx(np.sqrt(59)) and z[1] == pytest.approx(-1 / np.sqrt(59))


# -- 9. integer references on numeric class names -----------------------------------------
def test_integer_reference_means_the_class_of_that_name_when_there_is_one(tmp_path):
    classes = sorted(str(i) for i in range(12))  # 0, 1, 10, 11, 2, ..., 9
    assert resolve_class(10, classes, "k") == classes.index("10") == 2
    assert resolve_class("11", classes, "k") == 3
    assert resolve_class(5, classes, "k") == classes.index("5")
    assert resolve_class(1, ["cat", "dog"], "k") == 1  # no such name: an index
    with pytest.raises(ConfigError, match="names no class"):
        resolve_class(12, classes, "k")
    data = image_data(list(range(12)) * 2, list(range(12)), classes)
    held = apply_holdout(data, [10, 11])
    assert held.open_classes == ["10", "11"] and "8" in held.classes


# -- 10. a file as root; AppleDouble files ------------------------------------------------
def test_root_that_is_a_file_is_named_a_file(tmp_path):
    root = tmp_path / "notes.txt"
    root.write_text("x")
    with pytest.raises(
        DataError, match=rf"^{root} is a file, not a folder: an ImageFolder root needs"
    ):
        ImageFolder(root=str(root)).load()
    with pytest.raises(DataError, match=rf"^{root} is a file, not a folder"):
        list_class_folders(root)


def test_hidden_files_like_appledouble_are_skipped(tmp_path):
    root = folder_tree(tmp_path / "r", {"a": (2, 1), "b": (2, 1)})
    (root / "train" / "a" / "._000.png").write_bytes(b"\x00\x05\x16\x07\x00\x02Mac OS X")
    data = ImageFolder(root=str(root)).load()
    assert data.train_y.tolist() == [0, 0, 1, 1]
