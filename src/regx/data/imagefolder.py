"""A folder of images in torchvision's ImageFolder layout: `root/{train,test}/<class>/<image>`.

Classes are the sorted union of the class folder names of train/ and test/, and labels
index that list. A training class without test images is fine; a test class without a
training folder is refused unless `holdout_classes` holds it out (its test images then
form the open-set retrieval set, see data/holdout.py).

Channels: `channels=1|3` converts every image (Pillow's "L" / "RGB"); `channels=null`
reads the headers of the first image of every class folder: all grayscale → 1, else 3
(a colour image further on is then refused, naming the file). Horizontal flips on
grayscale data get one warning: right for most photos, wrong for digits and letters.

Decoding (regx.data.decode) is parallel and gives exactly Pillow's pixels; the decoded
cache (regx.data.decoded_cache) holds whole splits only. With `subset=N` the N training
images are chosen by `stratified_subset` on the listing's labels, the same images the base
class takes out of the fully decoded set; a cached full training split is used when there
is one, else only those N files are decoded, and not cached (the choice depends on N and
the seed). The test split is decoded in full and cached either way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from regx.data.base import DatasetSource, check_subset_size, stratified_subset
from regx.data.decode import PIL_MAX_PIXELS, DecodeSpec, decode_images, detect_channels, pool_size
from regx.data.decoded_cache import SplitCache, cache_key
from regx.data.holdout import held_out_indices
from regx.data.types import ImageData
from regx.errors import ConfigError, DataError, check
from regx.progress import WorkProgress

log = logging.getLogger("regx")

EXTENSIONS = {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"}
CHANNEL_SAMPLE = 64  # at most this many headers are read to detect the channel count


@dataclass
class Listing:
    """The image files of both splits, with labels indexing `classes`."""

    classes: list[str]
    train: list[tuple[Path, int]]
    test: list[tuple[Path, int]]

    def labels(self, split: str) -> np.ndarray:
        return np.array([label for _, label in getattr(self, split)], dtype=np.int64)


def list_class_folders(folder: Path, min_classes: int = 2) -> dict[str, list[Path]]:
    """{class name: sorted image files} of `folder`/<class>/<image>, at least `min_classes`
    classes. Hidden entries (names starting with '.': .ipynb_checkpoints, macOS's
    AppleDouble `._x.png` files) are skipped."""
    if folder.is_file():
        raise DataError(
            f"{folder} is a file, not a folder: expected {folder}/<class>/<image> "
            f"(one subfolder per class)"
        )
    if not folder.is_dir():
        raise DataError(
            f"{folder} does not exist: expected {folder}/<class>/<image> (one subfolder per class)"
        )
    names = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not names:
        raise DataError(f"{folder} has no class subfolders: expected {folder}/<class>/<image>")
    if len(names) < min_classes:
        raise DataError(
            f"{folder} has {len(names)} class folder ({', '.join(names)}): at least "
            f"{min_classes} classes are needed to tell classes apart (with one, every "
            f"prediction is right); add a subfolder per class: {folder}/<class>/<image>"
        )
    classes = {}
    for name in names:
        files = sorted(
            p
            for p in (folder / name).iterdir()
            if p.suffix.lower() in EXTENSIONS and not p.name.startswith(".") and p.is_file()
        )
        if not files:
            raise DataError(
                f"class folder {folder / name} has no images ({', '.join(sorted(EXTENSIONS))}): "
                f"add images or remove the folder"
            )
        classes[name] = files
    return classes


def list_image_folder(root: Path, holdout: int | list | None = None) -> Listing:
    """Both splits of `root`, classes the union of their folders (test-only ones checked).

    train/ needs 2 class folders (the kept classes, at least 2, all train); test/ may
    have one (its accuracy is then that class's recall)."""
    needs = "an ImageFolder root needs train/<class>/ and test/<class>/ subfolders"
    if root.is_file():
        raise DataError(f"{root} is a file, not a folder: {needs} (set dataset.root=DIR)")
    for split in ("train", "test"):
        if not (root / split).is_dir():
            raise DataError(f"{root / split} does not exist: {needs} (set dataset.root=DIR)")
    train = list_class_folders(root / "train")
    test = list_class_folders(root / "test", min_classes=1)
    classes = sorted(set(train) | set(test))
    _check_test_only_classes(root, classes, sorted(set(test) - set(train)), holdout)
    untested = sorted(set(train) - set(test))
    if untested:
        shown = ", ".join(untested[:5]) + (", …" if len(untested) > 5 else "")
        log.warning(
            "%s: test/ has no folder for %d of the %d classes of train/ (%s): the test "
            "metrics cover the other classes only",
            root, len(untested), len(train), shown,
        )  # fmt: skip
    index = {name: i for i, name in enumerate(classes)}
    return Listing(
        classes,
        [(p, index[name]) for name in sorted(train) for p in train[name]],
        [(p, index[name]) for name in sorted(test) for p in test[name]],
    )


def _check_test_only_classes(
    root: Path, classes: list[str], test_only: list[str], holdout: int | list | None
) -> None:
    if not test_only:
        return
    if holdout is None:
        raise DataError(
            f"{root}: test/ has class folders that train/ lacks ({', '.join(test_only)}): "
            f"add them to train/, remove them, or hold them out for open-set retrieval "
            f"(dataset.holdout_classes=[{','.join(test_only)}])"
        )
    held = {classes[i] for i in held_out_indices(holdout, classes)}
    missing = [name for name in test_only if name not in held]
    if missing:
        raise DataError(
            f"{root}: test/ has class folders that train/ lacks and dataset.holdout_classes "
            f"does not hold out ({', '.join(missing)}): hold them out too, add them to "
            f"train/, or remove them"
        )


class ImageFolder(DatasetSource):
    """torchvision's ImageFolder layout, decoded once into a validated cache."""

    name = "imagefolder"

    def __init__(
        self, cache_dir: str | None = None, max_pixels: int | None = PIL_MAX_PIXELS, **common
    ) -> None:
        super().__init__(**common)
        check(
            max_pixels is None
            or (
                isinstance(max_pixels, int) and not isinstance(max_pixels, bool) and max_pixels > 0
            ),
            "max_pixels",
            max_pixels,
            "must be a positive number of pixels (width × height) or null for no limit",
        )
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else None
        self.max_pixels = max_pixels
        self._flip_warned = False  # the flip warning once per source (per run)

    def _load_raw(self) -> ImageData:
        return self._load(subset_seed=None)

    def _load_subset(self, seed: int) -> ImageData:
        return self._load(subset_seed=None if self.subset is None else seed)

    def _load(self, subset_seed: int | None) -> ImageData:
        if self.root is None:
            raise DataError(
                "dataset.root is not set: pass dataset.root=DIR (with train/ and test/)"
            )
        listing = list_image_folder(self.root, self.holdout_classes)
        spec = self._decode_spec(listing)
        caches = self._caches(listing, spec)
        train_y = listing.labels("train")
        if subset_seed is None:
            train_x = self._split_images("train", listing.train, spec, caches)
        else:
            check_subset_size(self.subset, len(train_y), self.root.name or self.name)
            chosen = stratified_subset(torch.from_numpy(train_y), self.subset, subset_seed)
            train_x = self._subset_images(listing, chosen.numpy(), spec, caches)
            train_y = train_y[chosen.numpy()]
        test_x = self._split_images("test", listing.test, spec, caches)
        if train_x.shape[1:] != test_x.shape[1:]:
            raise ConfigError(
                "dataset.image_size",
                self.image_size,
                f"train images are {train_x.shape[2:]} but test images are "
                f"{test_x.shape[2:]}: set dataset.image_size=N to resize them",
            )
        self._warn_flip_on_gray(spec)
        return ImageData(
            name=self.root.name or self.name,
            train_x=torch.from_numpy(train_x),
            train_y=torch.from_numpy(train_y),
            test_x=torch.from_numpy(test_x),
            test_y=torch.from_numpy(listing.labels("test")),
            classes=listing.classes,
            info={"root": str(self.root.resolve())},
        )

    def _decode_spec(self, listing: Listing) -> DecodeSpec:
        if self.channels is not None:
            return DecodeSpec(self.channels, self.image_size, self.max_pixels)
        first_of_each: dict[tuple[str, int], Path] = {}
        for split in ("train", "test"):
            for path, label in getattr(listing, split):
                first_of_each.setdefault((split, label), path)
        sample = [str(p) for p in first_of_each.values()]
        step = max(1, len(sample) // CHANNEL_SAMPLE)
        channels = detect_channels(sample[::step], DecodeSpec(max_pixels=self.max_pixels))
        return DecodeSpec(channels, self.image_size, self.max_pixels, gray_detected=channels == 1)

    def _caches(self, listing: Listing, spec: DecodeSpec) -> dict[str, SplitCache] | None:
        if self.cache_dir is None:
            return None
        settings = f"size={spec.image_size}|channels={spec.channels}"
        key = cache_key(self.root, settings, listing.train + listing.test)
        folder = self.cache_dir / f"imagefolder-{key}"
        return {split: SplitCache(folder, split, key) for split in ("train", "test")}

    def _split_images(
        self,
        split: str,
        items: list[tuple[Path, int]],
        spec: DecodeSpec,
        caches: dict[str, SplitCache] | None,
    ) -> np.ndarray:
        cache = caches[split] if caches else None
        images = cache.read() if cache else None
        if images is None:
            images = self._decode([p for p, _ in items], spec, str(self.root / split))
            if cache:
                cache.write(images)
        return images

    def _subset_images(
        self,
        listing: Listing,
        chosen: np.ndarray,
        spec: DecodeSpec,
        caches: dict[str, SplitCache] | None,
    ) -> np.ndarray:
        full = caches["train"].read() if caches else None
        if full is not None:
            return full[chosen]
        paths = [listing.train[i][0] for i in chosen]
        what = f"{self.root / 'train'}, a subset of the {len(listing.train)}"
        return self._decode(paths, spec, what)

    def _decode(self, paths: list[Path], spec: DecodeSpec, what: str) -> np.ndarray:
        workers = pool_size(len(paths))
        how = f"{workers} processes" if workers > 1 else "1 process"
        doing, done = (
            f"decoding {len(paths)} images of {what} ({how})",
            f"decoded {len(paths)} images of {what}",
        )
        with WorkProgress(len(paths), "images", doing, done) as progress:
            return decode_images([str(p) for p in paths], spec, workers, progress.advance)

    def _warn_flip_on_gray(self, spec: DecodeSpec) -> None:
        if spec.channels == 1 and self.augment.flip and not self._flip_warned:
            self._flip_warned = True
            log.warning(
                "dataset.train_augment.flip=true on grayscale images (%s): right for most "
                "photos, wrong for digits, letters and other images whose mirror image "
                "means something else; set dataset.train_augment.flip=false for those",
                self.root,
            )
