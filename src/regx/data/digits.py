"""scikit-learn's bundled 8×8 handwritten digits (1,797 images, 10 classes): the offline default.

The test set is a fixed stratified 20 % of the images (seed 0, independent of the run's
seed), so every run of every seed is scored on the same 359 images. Pixel values 0–16
are scaled to 0–255.
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch

from regx.data.base import DatasetSource, stratified_split
from regx.data.types import ImageData

TEST_FRACTION = 0.2


def _read_digits() -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 8, 8) in 0–16, labels): read the CSV scikit-learn ships.

    Reading the file directly avoids importing `sklearn.datasets` (about 2 s), which
    matters for a command whose whole run should take seconds; if the file moved in
    some scikit-learn release, fall back to the public loader.
    """
    spec = importlib.util.find_spec("sklearn")
    csv = None
    if spec is not None and spec.submodule_search_locations:
        csv = (
            Path(next(iter(spec.submodule_search_locations)))
            / "datasets"
            / "data"
            / "digits.csv.gz"
        )
    if csv is not None and csv.is_file():
        with gzip.open(csv, "rt") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.float32)
        return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images.astype(np.float32), bunch.target.astype(np.int64)


class Digits(DatasetSource):
    name = "digits"

    def _load_raw(self) -> ImageData:
        images, labels = _read_digits()
        pixels = np.clip(np.rint(images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
        x = torch.from_numpy(pixels).unsqueeze(1)  # (N, 1, 8, 8)
        y = torch.from_numpy(labels)
        train_idx, test_idx = stratified_split(labels, TEST_FRACTION, seed=0)
        if self.image_size not in (None, 8):
            x = (
                torch.nn.functional.interpolate(
                    x.float(), size=self.image_size, mode="bilinear", align_corners=False
                )
                .round()
                .clamp(0, 255)
                .to(torch.uint8)
            )
        return ImageData(
            name=self.name,
            train_x=x[train_idx],
            train_y=y[train_idx],
            test_x=x[test_idx],
            test_y=y[test_idx],
            classes=[str(i) for i in range(10)],
        )
