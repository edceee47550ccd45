"""Missing or corrupt data, end to end through `regx train`: one line naming the file or
folder and the fix, exit code 3 (2 for a config value), no traceback, no run dir left."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fault_helpers import error_line, hydra_in_process


@pytest.fixture
def image_root(tmp_path: Path) -> Path:
    """train/ and test/ with classes cat and dog, three 6×6 PNGs each."""
    root = tmp_path / "images"
    for split in ("train", "test"):
        for label, name in enumerate(("cat", "dog")):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(3):
                pixels = np.full((6, 6, 3), 60 * label + 10 * i, dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def train_on(root: Path, run_dir: Path, *extra: str) -> tuple[int, str]:
    code, out, err = hydra_in_process(
        [
            "dataset=imagefolder",
            f"dataset.root={root}",
            "dataset.cache_dir=null",
            "trainer.epochs=1",
            f"hydra.run.dir={run_dir}",
            *extra,
        ]
    )
    assert "Traceback" not in out
    return code, error_line(err)


def test_unreadable_image_is_named(image_root: Path, tmp_path: Path) -> None:
    bad = image_root / "test" / "dog" / "1.png"
    bad.write_bytes(b"this is no png")
    code, line = train_on(image_root, tmp_path / "run")
    assert code == 3
    assert line == (
        f"error: cannot read image {bad} (cannot identify image file '{bad}'): "
        "replace or delete the file"
    )
    assert not (tmp_path / "run").exists()  # failed before training: no run dir left


def test_empty_class_folder_is_named(image_root: Path, tmp_path: Path) -> None:
    (image_root / "train" / "bird").mkdir()
    code, line = train_on(image_root, tmp_path / "run")
    assert code == 3
    assert line.startswith(f"error: class folder {image_root / 'train' / 'bird'} has no images (")
    assert line.endswith("): add images or remove the folder")


def test_test_class_unknown_to_train_is_named(image_root: Path, tmp_path: Path) -> None:
    # train-only classes are fine (cat has no test images now); a test-only class is not,
    # unless dataset.holdout_classes holds it out
    (image_root / "test" / "cat").rename(image_root / "test" / "cow")
    code, line = train_on(image_root, tmp_path / "run")
    assert code == 3
    assert line == (
        f"error: {image_root}: test/ has class folders that train/ lacks (cow): add them to "
        "train/, remove them, or hold them out for open-set retrieval "
        "(dataset.holdout_classes=[cow])"
    )


def test_missing_test_folder_is_named(image_root: Path, tmp_path: Path) -> None:
    for path in sorted((image_root / "test").rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    (image_root / "test").rmdir()
    code, line = train_on(image_root, tmp_path / "run")
    assert code == 3
    assert line.startswith(f"error: {image_root / 'test'} does not exist: ")
    assert "dataset.root=DIR" in line


def test_images_of_different_sizes_ask_for_image_size(image_root: Path, tmp_path: Path) -> None:
    Image.fromarray(np.zeros((9, 9, 3), np.uint8)).save(image_root / "train" / "cat" / "big.png")
    code, line = train_on(image_root, tmp_path / "run")
    assert code == 2
    assert line.startswith("error: dataset.image_size=null: the images have different sizes")
    assert line.endswith("set dataset.image_size=N to resize them")


def test_missing_torchvision_dataset_offline_names_folder_and_flag(tmp_path: Path) -> None:
    root = tmp_path / "no-mnist"
    code, out, err = hydra_in_process(
        [
            "dataset=mnist",
            f"dataset.root={root}",
            "dataset.download=false",
            f"hydra.run.dir={tmp_path / 'run'}",
        ]
    )
    line = error_line(err)
    assert code == 3
    assert line.startswith("error: mnist is missing and dataset.download=false (")
    assert line.endswith(
        f"put the files in {root / 'MNIST' / 'raw'} or run once with network access "
        "and dataset.download=true"
    )
    assert "Traceback" not in out
