"""Dataset sources: the bundled digits, torchvision formats written by the test, ImageFolder."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from regx.data.augment import Normalize, crop_flip, pad
from regx.data.base import stratified_subset
from regx.data.batches import DeviceBatches, epoch_permutation
from regx.data.digits import Digits
from regx.data.imagefolder import ImageFolder
from regx.data.torchvision_sets import CIFAR10, MNIST
from regx.data.types import Augment
from regx.errors import ConfigError, DataError


def test_digits_is_fixed_uint8_and_disjoint():
    a = Digits().load(seed=0)
    b = Digits().load(seed=7)
    assert a.train_x.dtype == torch.uint8 and a.train_x.shape[1:] == (1, 8, 8)
    assert len(a.train_y) + len(a.test_y) == 1797
    assert int(a.train_x.max()) == 255  # 0..16 scaled to 0..255
    # the test set does not depend on the run's seed
    assert torch.equal(a.test_x, b.test_x) and torch.equal(a.test_y, b.test_y)
    # every class is present in both parts in about the 80/20 proportion
    for c in range(10):
        n_test, n_train = int((a.test_y == c).sum()), int((a.train_y == c).sum())
        assert abs(n_test / (n_test + n_train) - 0.2) < 0.01


def test_stratified_subset_keeps_class_proportions():
    labels = torch.tensor([0] * 60 + [1] * 30 + [2] * 10)
    idx = stratified_subset(labels, 20, seed=3)
    counts = torch.bincount(labels[idx], minlength=3).tolist()
    assert counts == [12, 6, 2]
    assert len(set(idx.tolist())) == 20


def test_subset_larger_than_data_is_a_config_error():
    with pytest.raises(ConfigError, match=r"dataset.subset=5000: must be at most the 1438"):
        Digits(subset=5000).load()


def _write_idx(path: Path, array: np.ndarray) -> None:
    """MNIST's IDX format: magic (0, 0, dtype 0x08, ndim), big-endian sizes, raw bytes."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_mnist_format_files_load_with_torchvision(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    train_x = rng.integers(0, 256, (12, 28, 28), dtype=np.uint8)
    train_y = np.arange(12) % 10
    test_x = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    test_y = np.arange(5)
    _write_idx(raw / "train-images-idx3-ubyte", train_x)
    _write_idx(raw / "train-labels-idx1-ubyte", train_y)
    _write_idx(raw / "t10k-images-idx3-ubyte", test_x)
    _write_idx(raw / "t10k-labels-idx1-ubyte", test_y)
    data = MNIST(root=str(tmp_path), download=False).load()
    assert data.train_x.shape == (12, 1, 28, 28)
    assert torch.equal(data.train_x[:, 0], torch.from_numpy(train_x))
    assert data.train_y.tolist() == train_y.tolist()
    assert torch.equal(data.test_x[:, 0], torch.from_numpy(test_x))
    assert data.classes[0].startswith("0")


def test_cifar_format_files_load_with_torchvision(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(1)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        pixels = rng.integers(0, 256, (4, 3 * 32 * 32), dtype=np.uint8)
        labels = rng.integers(0, 10, 4).tolist()
        batches[name] = (pixels, labels)
        with open(folder / name, "wb") as f:
            pickle.dump({"data": pixels, "labels": labels}, f)
    classes = [
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
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": classes}, f)
    data = CIFAR10(root=str(tmp_path), download=False).load()
    assert data.train_x.shape == (20, 3, 32, 32) and data.test_x.shape == (4, 3, 32, 32)
    first = batches["data_batch_1"][0][0].reshape(3, 32, 32)
    assert torch.equal(data.train_x[0], torch.from_numpy(first))
    assert data.test_y.tolist() == batches["test_batch"][1]
    assert data.classes == classes


def test_missing_torchvision_data_offline_names_the_folder(tmp_path):
    with pytest.raises(DataError) as err:
        CIFAR10(root=str(tmp_path / "nothing"), download=False).load()
    message = str(err.value)
    assert "cifar-10-batches-py" in message and "dataset.download=true" in message
    assert "\n" not in message


def _image_folder(root: Path, sizes=(6, 6), per_class=3) -> None:
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c, name in enumerate(["cat", "dog"]):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                arr = np.full((*sizes, 3), 40 * c + i, dtype=np.uint8)
                arr[0, 0] = rng.integers(0, 256, 3)
                Image.fromarray(arr).save(folder / f"{i}.png")


def test_imagefolder_decodes_and_caches(tmp_path):
    root, cache = tmp_path / "imgs", tmp_path / "cache"
    _image_folder(root)
    data = ImageFolder(root=str(root), cache_dir=str(cache)).load()
    assert data.classes == ["cat", "dog"]
    assert data.train_x.shape == (6, 3, 6, 6) and data.train_x.dtype == torch.uint8
    expected = np.array(Image.open(root / "train" / "dog" / "1.png")).transpose(2, 0, 1).copy()
    assert torch.equal(data.train_x[4], torch.from_numpy(expected))
    assert data.train_y.tolist() == [0, 0, 0, 1, 1, 1]
    assert len(list(cache.glob("imagefolder-*/train_x.npy"))) == 1
    again = ImageFolder(root=str(root), cache_dir=str(cache)).load()
    assert torch.equal(again.train_x, data.train_x)
    resized = ImageFolder(root=str(root), cache_dir=str(cache), image_size=4).load()
    assert resized.train_x.shape == (6, 3, 4, 4)
    assert len(list(cache.glob("imagefolder-*"))) == 2  # a different size is a different cache


def test_imagefolder_errors_name_the_problem(tmp_path):
    root = tmp_path / "imgs"
    _image_folder(root)
    (root / "test" / "dog" / "1.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"cannot read image .*test/dog/1.png"):
        ImageFolder(root=str(root)).load()
    (root / "test" / "dog" / "1.png").unlink()
    (root / "test" / "bird").mkdir()
    with pytest.raises(DataError, match=r"class folder .*bird has no images"):
        ImageFolder(root=str(root)).load()
    (root / "test" / "bird").rmdir()
    (root / "test" / "cow").mkdir()
    Image.fromarray(np.zeros((6, 6, 3), np.uint8)).save(root / "test" / "cow" / "0.png")
    with pytest.raises(DataError, match=r"test/ has class folders that train/ lacks \(cow\)"):
        ImageFolder(root=str(root)).load()


def test_random_crop_is_a_shifted_window_of_the_padded_image():
    torch.manual_seed(0)
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.uint8).view(2, 1, 4, 4)
    padded = pad(x, 2)
    torch.manual_seed(5)
    out = crop_flip(padded, (4, 4), flip=False)
    torch.manual_seed(5)
    dy = torch.randint(0, 5, (2, 1))
    dx = torch.randint(0, 5, (2, 1))
    for i in range(2):
        y0, x0 = int(dy[i]), int(dx[i])
        assert torch.equal(out[i], padded[i, :, y0 : y0 + 4, x0 : x0 + 4])
    assert crop_flip(x, (4, 4), flip=False) is x


def test_random_flip_flips_about_half_and_exactly():
    torch.manual_seed(0)
    x = torch.arange(1000 * 3, dtype=torch.float32).view(1000, 1, 1, 3)
    out = crop_flip(x, (1, 3), flip=True)  # no padding: each image kept or mirrored
    flipped = out[:, 0, 0, 0] == x[:, 0, 0, 2]
    assert torch.equal(out[flipped], x[flipped].flip(-1))
    assert torch.equal(out[~flipped], x[~flipped])
    assert 450 < int(flipped.sum()) < 550


def test_normalize_matches_the_formula():
    x = torch.tensor([[[[0, 255]], [[51, 102]]]], dtype=torch.uint8)
    out = Normalize((0.5, 0.2), (0.25, 0.1), torch.device("cpu"))(x)
    expected = (x.float() / 255 - torch.tensor([0.5, 0.2]).view(1, 2, 1, 1)) / torch.tensor(
        [0.25, 0.1]
    ).view(1, 2, 1, 1)
    assert torch.allclose(out, expected, atol=1e-6)


def test_device_batches_cover_the_epoch_in_its_permutation():
    x = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 1, 2, 2).contiguous()
    y = torch.arange(10)
    batches = DeviceBatches(
        x, y, batch_size=4, device=torch.device("cpu"), augment=Augment(), seed=3
    )
    assert len(batches) == 2  # drop_last: 2 full batches of 4
    seen = torch.cat([yb for _, yb, _ in batches.epoch(1)])
    assert seen.tolist() == epoch_permutation(10, 3, 1)[:8].tolist()
    for xb, yb, idx in batches.epoch(1):
        assert torch.equal(xb[:, 0, 0, 0].long(), yb) and torch.equal(idx, yb)
    assert epoch_permutation(10, 3, 1).tolist() != epoch_permutation(10, 3, 2).tolist()


def test_stratified_split_rounds_per_class_and_keeps_small_classes_splittable():
    """Per class where that holds something out (the split every earlier run had); with
    classes too small for that (10 % of 5 images rounds to 0), round(fraction·N) images
    shared by largest remainder, one per class here, never a whole class."""
    import numpy as np

    from regx.data.base import stratified_split

    labels = np.repeat(np.arange(4), [40, 30, 20, 10])
    rest, held = stratified_split(labels, 0.1, seed=3)
    assert np.bincount(labels[held]).tolist() == [4, 3, 2, 1]
    assert sorted([*rest, *held]) == list(range(100)) and not set(rest) & set(held)
    # the same draw as rounding per class with one generator, class by class
    rng = np.random.default_rng(3)
    expected = np.sort(np.concatenate([
        rng.choice(np.flatnonzero(labels == c), size=k, replace=False)
        for c, k in enumerate([4, 3, 2, 1])
    ]))  # fmt: skip
    assert np.array_equal(held, expected)
    small = np.repeat(np.arange(10), 5)  # digits with dataset.subset=50
    rest, held = stratified_split(small, 0.1, seed=0)
    assert len(held) == 5 and np.bincount(small[held], minlength=10).max() == 1
    assert len(rest) == 45
    one_each = np.arange(3)  # three images of three classes: one validates
    assert len(stratified_split(one_each, 0.1, seed=0)[1]) == 1
