"""Fashion-MNIST, CIFAR-100 and SVHN from small files in their real on-disk formats.

Each test writes the files torchvision reads (IDX, pickled batches, MATLAB .mat), loads them
through regx's source and checks pixels, labels and class names against what was written;
one trains end to end on them, holding a class out by a name that contains a slash.
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
import scipy.io
import torch

from regx.data.torchvision_sets import CIFAR100, SVHN, FashionMNIST

FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]


def _write_idx(path: Path, array: np.ndarray) -> None:
    """The IDX format: magic (0, 0, dtype 0x08, ndim), big-endian sizes, raw bytes."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    path.write_bytes(header + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes())


def _class_images(labels: np.ndarray, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """uint8 images whose brightness grows with the label, so a model can learn them."""
    rng = np.random.default_rng(seed)
    base = labels.reshape(-1, *[1] * len(shape)) * 20.0
    return np.clip(rng.normal(30, 20, (len(labels), *shape)) + base, 0, 255).astype(np.uint8)


def _fashion_files(root: Path, n_train: int = 200, n_test: int = 100) -> dict[str, np.ndarray]:
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    arrays = {"train_y": np.arange(n_train, dtype=np.uint8) % 10}
    arrays["test_y"] = np.arange(n_test, dtype=np.uint8) % 10
    arrays["train_x"] = _class_images(arrays["train_y"], (28, 28), 0)
    arrays["test_x"] = _class_images(arrays["test_y"], (28, 28), 1)
    for prefix, split in (("train", "train"), ("t10k", "test")):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", arrays[f"{split}_x"])
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", arrays[f"{split}_y"])
    return arrays


def test_fashion_mnist_files_load_with_their_class_names(tmp_path):
    written = _fashion_files(tmp_path)
    data = FashionMNIST(root=str(tmp_path), download=False).load()
    assert data.classes == FASHION_CLASSES
    assert data.train_x.shape == (200, 1, 28, 28) and data.test_x.shape == (100, 1, 28, 28)
    assert torch.equal(data.train_x[:, 0], torch.from_numpy(written["train_x"]))
    assert data.test_y.tolist() == written["test_y"].tolist()


def test_cifar100_files_load_fine_labels_and_names(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    names = [f"fine_{i:02d}" for i in range(100)]
    written = {}
    for split, n in (("train", 300), ("test", 100)):
        labels = (np.arange(n) * 7) % 100
        pixels = _class_images(labels % 10, (3 * 32 * 32,), n)
        written[split] = (pixels, labels)
        entry = {"data": pixels, "fine_labels": labels.tolist(), "coarse_labels": [0] * n}
        (folder / split).write_bytes(pickle.dumps(entry))
    meta = {"fine_label_names": names, "coarse_label_names": [f"c{i}" for i in range(20)]}
    (folder / "meta").write_bytes(pickle.dumps(meta))
    data = CIFAR100(root=str(tmp_path), download=False).load()
    assert data.classes == names and data.num_classes == 100
    assert data.train_x.shape == (300, 3, 32, 32)
    assert torch.equal(data.train_x[5], torch.from_numpy(written["train"][0][5].reshape(3, 32, 32)))
    assert data.train_y.tolist() == written["train"][1].tolist()  # fine, not coarse labels
    assert data.test_y.tolist() == written["test"][1].tolist()


def test_svhn_files_load_with_label_10_as_digit_0(tmp_path):
    written = {}
    for split, n in (("train", 60), ("test", 30)):
        digits = np.arange(n) % 10
        images = _class_images(digits, (3, 32, 32), n)  # N, C, H, W
        # SVHN's .mat: X is (H, W, C, N), y is (N, 1) with the digit 0 stored as 10
        mat = {"X": images.transpose(2, 3, 1, 0), "y": np.where(digits == 0, 10, digits)[:, None]}
        scipy.io.savemat(tmp_path / f"{split}_32x32.mat", mat)
        written[split] = (images, digits)
    data = SVHN(root=str(tmp_path), download=False).load()
    assert data.classes == [str(d) for d in range(10)]
    assert torch.equal(data.train_x, torch.from_numpy(written["train"][0]))
    assert data.train_y.tolist() == written["train"][1].tolist()
    assert data.test_y.tolist() == written["test"][1].tolist()


def test_a_run_holds_out_a_fashion_class_named_with_a_slash(tmp_path, train_run):
    root = tmp_path / "fashion"
    _fashion_files(root, n_train=400, n_test=200)
    summary = train_run(
        [
            "dataset=fashion_mnist",
            f"dataset.root={root}",
            "dataset.download=false",
            "dataset.holdout_classes=[T-shirt/top,Bag]",
            "trainer=smoke",
        ]
    )
    assert summary["status"] == "finished"
    assert summary["dataset"]["classes"] == [
        c for c in FASHION_CLASSES if c not in ("T-shirt/top", "Bag")
    ]
    # the held-out classes' test images (20 each of 200) are the open-set retrieval set
    retrieval = summary["retrieval_open"]
    assert retrieval["classes"] == ["T-shirt/top", "Bag"] and retrieval["n_queries"] == 40
    assert 0.0 <= retrieval["recall_at_1"] <= 1.0
    assert summary["test"]["n"] == 160 and summary["dataset"]["test_size"] == 160
