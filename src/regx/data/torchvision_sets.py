"""torchvision's MNIST, Fashion-MNIST, CIFAR-10/100 and SVHN, loaded whole into uint8 tensors.

The files are fetched with torchvision's own downloader (`dataset.download=true`, the
default), which verifies the archive's checksum. Files already extracted under `root` are
used as they are: the per-load MD5 pass over 170 MB is skipped, which also lets tests
write small files in the real on-disk formats. Offline and without the files, loading
fails with one line that names the folder to fill; files that are there but cannot be read
(empty, cut short, not the dataset's, labels outside its classes) give one line naming the
folder to check or delete.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.error import URLError

import numpy as np
import torch

from regx.data.base import DatasetSource
from regx.data.types import ImageData
from regx.errors import DataError


def _without_md5(cls: type, *list_attrs: str) -> dict[str, Any]:
    """Class attributes of `cls` with every per-file checksum set to None."""
    attrs: dict[str, Any] = {}
    for name in list_attrs:
        value = getattr(cls, name)
        if isinstance(value, dict) and "md5" in value:
            attrs[name] = {**value, "md5": None}
        elif isinstance(value, dict):  # SVHN: split -> [url, filename, md5]
            attrs[name] = {k: [v[0], v[1], None] for k, v in value.items()}
        else:
            attrs[name] = [[f, None] for f, _ in value]
    return attrs


class TorchvisionSource(DatasetSource):
    """Common loading and error handling; subclasses name the torchvision class."""

    folder_hint = ""

    def _torchvision_dataset(self, train: bool) -> Any:
        raise TypeError(f"{type(self).__name__} must implement _torchvision_dataset()")

    def _arrays(self, ds: Any) -> tuple[np.ndarray, np.ndarray]:
        """(images uint8 NCHW, labels) of a loaded torchvision dataset."""
        data = ds.data.numpy() if isinstance(ds.data, torch.Tensor) else np.asarray(ds.data)
        if data.ndim == 3:  # MNIST-like: N, H, W
            data = data[:, None]
        elif data.shape[-1] in (1, 3) and data.shape[1] not in (1, 3):  # CIFAR: N, H, W, C
            data = data.transpose(0, 3, 1, 2)
        labels = getattr(ds, "targets", None)
        if labels is None:
            labels = ds.labels
        return np.ascontiguousarray(data, dtype=np.uint8), np.asarray(labels, dtype=np.int64)

    def _read(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
        """(train_x, train_y, test_x, test_y, classes); any failure to read the files raises."""
        train = self._torchvision_dataset(train=True)
        test = self._torchvision_dataset(train=False)
        train_x, train_y = self._arrays(train)
        test_x, test_y = self._arrays(test)
        for x, y in ((train_x, train_y), (test_x, test_y)):
            if len(x) == 0 or len(x) != len(y):
                raise ValueError(f"{len(x)} images with {len(y)} labels")
        classes = list(getattr(train, "classes", [])) or [
            str(i) for i in range(int(train_y.max()) + 1)
        ]
        labels = np.concatenate([train_y, test_y])
        if labels.min() < 0 or labels.max() >= len(classes):
            raise ValueError(f"labels outside 0..{len(classes) - 1}")
        return train_x, train_y, test_x, test_y, [str(c) for c in classes]

    def _load_raw(self) -> ImageData:
        if self.root is None:
            raise DataError(f"dataset.root is not set for {self.name}: set dataset.root=DIR")
        try:
            train_x, train_y, test_x, test_y, classes = self._read()
        except Exception as e:  # pickle, numpy, torch and torchvision each fail differently
            where = self.root / self.folder_hint if self.folder_hint else self.root
            raise self._read_error(e, where) from e
        x_tr, x_te = torch.from_numpy(train_x), torch.from_numpy(test_x)
        if self.image_size is not None and self.image_size != x_tr.shape[-1]:
            x_tr, x_te = _resize(x_tr, self.image_size), _resize(x_te, self.image_size)
        return ImageData(
            name=self.name,
            train_x=x_tr,
            train_y=torch.from_numpy(train_y),
            test_x=x_te,
            test_y=torch.from_numpy(test_y),
            classes=classes,
        )

    def _read_error(self, error: Exception, where: Path) -> DataError:
        """Missing or undownloadable files, or files in `where` that cannot be read."""
        reason = _reason(error)
        network = isinstance(error, (URLError, ConnectionError, TimeoutError)) or (
            self.download and "error downloading" in str(error).lower()  # torchvision's words
        )
        if network or (isinstance(error, (RuntimeError, OSError)) and not _has_files(where)):
            how = (
                "could not be downloaded"
                if self.download
                else "is missing and dataset.download=false"
            )
            return DataError(
                f"{self.name} {how} ({reason}); put the files in {where} "
                f"or run once with network access and dataset.download=true"
            )
        return DataError(
            f"cannot read the {self.name} files in {where} ({reason}): they are damaged, "
            f"incomplete or not {self.name}'s; check them, or delete {where} and run "
            f"again with dataset.download=true"
        )


def _has_files(folder: Path) -> bool:
    """Whether `folder` holds any regular file (then a failure is in reading, not finding)."""
    try:
        return any(p.is_file() for p in folder.iterdir())
    except OSError:
        return False


def _reason(error: BaseException, limit: int = 160) -> str:
    """torchvision's message as a short reason: its first sentence, never cut mid-word."""
    text = " ".join(str(error).split()).split(". ")[0].rstrip(".") or type(error).__name__
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " …"


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    out = torch.nn.functional.interpolate(x.float(), size=size, mode="bilinear", antialias=True)
    return out.round().clamp(0, 255).to(torch.uint8)


class MNIST(TorchvisionSource):
    name = "mnist"
    folder_hint = "MNIST/raw"

    def _torchvision_dataset(self, train: bool) -> Any:
        from torchvision.datasets import MNIST as TV

        return TV(str(self.root), train=train, download=self.download)


class FashionMNIST(TorchvisionSource):
    name = "fashion_mnist"
    folder_hint = "FashionMNIST/raw"

    def _torchvision_dataset(self, train: bool) -> Any:
        from torchvision.datasets import FashionMNIST as TV

        return TV(str(self.root), train=train, download=self.download)


class CIFAR10(TorchvisionSource):
    name = "cifar10"
    folder_hint = "cifar-10-batches-py"

    def _torchvision_dataset(self, train: bool) -> Any:
        from torchvision.datasets import CIFAR10 as TV

        cls = type("CIFAR10", (TV,), _without_md5(TV, "train_list", "test_list", "meta"))
        return cls(str(self.root), train=train, download=self.download)


class CIFAR100(TorchvisionSource):
    name = "cifar100"
    folder_hint = "cifar-100-python"

    def _torchvision_dataset(self, train: bool) -> Any:
        from torchvision.datasets import CIFAR100 as TV

        cls = type("CIFAR100", (TV,), _without_md5(TV, "train_list", "test_list", "meta"))
        return cls(str(self.root), train=train, download=self.download)


class SVHN(TorchvisionSource):
    name = "svhn"
    folder_hint = ""

    def _torchvision_dataset(self, train: bool) -> Any:
        from torchvision.datasets import SVHN as TV

        cls = type("SVHN", (TV,), _without_md5(TV, "split_list"))
        return cls(str(self.root), split="train" if train else "test", download=self.download)
