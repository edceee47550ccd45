"""A folder of images in torchvision's ImageFolder layout: `root/{train,test}/<class>/<image>`.

Images are decoded once (Pillow), resized to `image_size` if set, and kept in a decoded
cache of uint8 `.npy` files under `cache_dir`; later runs memory-map the cache instead
of decoding again. The cache key covers the folder, every file's name, size and mtime,
the image size and the channel count, so an edited folder is decoded afresh.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from regx.data.base import DatasetSource
from regx.data.types import ImageData
from regx.errors import ConfigError, DataError

EXTENSIONS = {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"}


def _list_split(folder: Path) -> tuple[list[str], list[tuple[Path, int]]]:
    if not folder.is_dir():
        raise DataError(
            f"{folder} does not exist: an ImageFolder root needs train/<class>/ and "
            f"test/<class>/ subfolders (set dataset.root=DIR)"
        )
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DataError(f"{folder} has no class subfolders: expected {folder}/<class>/<image>")
    items: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        files = sorted(
            p for p in (folder / name).iterdir() if p.suffix.lower() in EXTENSIONS and p.is_file()
        )
        if not files:
            raise DataError(
                f"class folder {folder / name} has no images ({', '.join(sorted(EXTENSIONS))}): "
                f"add images or remove the folder"
            )
        items.extend((p, label) for p in files)
    return classes, items


def _decode(args: tuple[str, int | None, int]) -> np.ndarray:
    path, size, channels = args
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = img.convert("L" if channels == 1 else "RGB")
            if size is not None and img.size != (size, size):
                img = img.resize((size, size), Image.Resampling.BILINEAR)
            arr = np.asarray(img, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise DataError(f"cannot read image {path} ({e}): replace or delete the file") from None
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def _decode_all(paths: list[Path], size: int | None, channels: int) -> np.ndarray:
    jobs = [(str(p), size, channels) for p in paths]
    workers = min(os.cpu_count() or 1, 8)
    if len(jobs) >= 2000 and workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            arrays = list(pool.map(_decode, jobs, chunksize=256))
    else:
        arrays = [_decode(j) for j in jobs]
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise ConfigError(
            "dataset.image_size",
            size,
            f"the images have different sizes ({len(shapes)} distinct, e.g. "
            f"{sorted(shapes)[:2]}): set dataset.image_size=N to resize them",
        )
    return np.stack(arrays)


class ImageFolder(DatasetSource):
    name = "imagefolder"

    def __init__(self, cache_dir: str | None = None, **common) -> None:
        common.setdefault("channels", 3)
        super().__init__(**common)
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else None

    def _load_raw(self) -> ImageData:
        if self.root is None:
            raise DataError(
                "dataset.root is not set: pass dataset.root=DIR (with train/ and test/)"
            )
        train_classes, train_items = _list_split(self.root / "train")
        test_classes, test_items = _list_split(self.root / "test")
        if test_classes != train_classes:
            only_train = sorted(set(train_classes) - set(test_classes))
            only_test = sorted(set(test_classes) - set(train_classes))
            raise DataError(
                f"{self.root}: train/ and test/ have different class folders "
                f"(only in train: {only_train or '-'}; only in test: {only_test or '-'}); "
                f"give both the same classes"
            )
        key = self._cache_key(train_items + test_items)
        cached = self._read_cache(key)
        if cached is None:
            train_x = _decode_all([p for p, _ in train_items], self.image_size, self.channels)
            test_x = _decode_all([p for p, _ in test_items], self.image_size, self.channels)
            if train_x.shape[1:] != test_x.shape[1:]:
                raise ConfigError(
                    "dataset.image_size",
                    self.image_size,
                    f"train images are {train_x.shape[2:]} but test images are "
                    f"{test_x.shape[2:]}: set dataset.image_size=N to resize them",
                )
            train_y = np.array([label for _, label in train_items], dtype=np.int64)
            test_y = np.array([label for _, label in test_items], dtype=np.int64)
            self._write_cache(key, train_x, train_y, test_x, test_y)
            cached = train_x, train_y, test_x, test_y
        train_x, train_y, test_x, test_y = cached
        return ImageData(
            name=self.root.name or self.name,
            train_x=torch.from_numpy(train_x),
            train_y=torch.from_numpy(np.asarray(train_y)),
            test_x=torch.from_numpy(test_x),
            test_y=torch.from_numpy(np.asarray(test_y)),
            classes=train_classes,
            info={"root": str(self.root.resolve())},
        )

    # -- decoded cache ----------------------------------------------------------
    def _cache_key(self, items: list[tuple[Path, int]]) -> str:
        h = hashlib.sha1()
        h.update(f"{self.root.resolve()}|{self.image_size}|{self.channels}|v1".encode())
        for path, label in items:
            st = path.stat()
            h.update(
                f"{path.relative_to(self.root)}|{label}|{st.st_size}|{st.st_mtime_ns}\n".encode()
            )
        return h.hexdigest()[:20]

    def _cache_folder(self, key: str) -> Path | None:
        return self.cache_dir / f"imagefolder-{key}" if self.cache_dir else None

    def _read_cache(self, key: str) -> tuple[np.ndarray, ...] | None:
        folder = self._cache_folder(key)
        if folder is None or not (folder / "done.json").is_file():
            return None
        # copy-on-write memory map: pages load on demand, the file is never modified
        return tuple(
            np.load(folder / f"{name}.npy", mmap_mode="c")
            for name in ("train_x", "train_y", "test_x", "test_y")
        )

    def _write_cache(self, key: str, *arrays: np.ndarray) -> None:
        folder = self._cache_folder(key)
        if folder is None:
            return
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for name, arr in zip(("train_x", "train_y", "test_x", "test_y"), arrays):
                tmp = folder / f".{name}.{os.getpid()}.npy"
                np.save(tmp, arr)
                os.replace(tmp, folder / f"{name}.npy")
            (folder / "done.json").write_text(json.dumps({"root": str(self.root.resolve())}))
        except OSError:
            # The cache only saves time; a read-only or full disk must not stop the run.
            pass
