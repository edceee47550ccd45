"""The decoded cache of an ImageFolder: each split's images as one uint8 `.npy` file.

Layout: `CACHE_DIR/imagefolder-<key>/{train,test}_x.npy`, each with its marker
`{train,test}.json`. The key hashes the folder, the decode settings, a format version and
the whole listing (every file's path, label, size and mtime), so an edited folder gets a
new cache. The marker is written last and records the array's shape, dtype, file size
and CRC-32; a read checks all four, so a file cut short, overwritten, or left by a killed
write is never used: the split is decoded again after one warning line.

Writes go to a temporary file that is renamed into place (atomic on POSIX), and a split's
old marker is removed before its file is replaced, so no state a crash can leave looks
valid. A cache is read fully into memory, not memory-mapped: the checksum reads every byte
anyway, and the rest of regx gets the same C-contiguous in-memory array from a warm cache
as from a fresh decode (a memory map and a freshly decoded array had differed in layout,
which changed the float summation order downstream and the results at ~1e-8).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import uuid
import zlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from regx.processes import process_alive

log = logging.getLogger("regx")

FORMAT_VERSION = 3  # part of the key: raised whenever decoding gives other pixels


@dataclass(frozen=True)
class Marker:
    """What a complete cache file holds; written after the file, read before trusting it."""

    key: str
    shape: list[int]
    dtype: str
    file_bytes: int
    crc32: int


class CacheDamaged(Exception):
    """The cache file does not match its marker (one line, for the warning)."""


def cache_key(root: Path, settings: str, listing: Iterable[tuple[Path, int]]) -> str:
    """A hash of the folder, the decode settings and every listed file's label, size, mtime."""
    digest = hashlib.sha1(f"{root.resolve()}|{settings}|v{FORMAT_VERSION}".encode())
    for path, label in listing:
        st = path.stat()
        digest.update(f"{path.relative_to(root)}|{label}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


@dataclass(frozen=True)
class SplitCache:
    """The cached images of one split (`train` or `test`) in `folder`."""

    folder: Path
    split: str
    key: str

    @property
    def path(self) -> Path:
        return self.folder / f"{self.split}_x.npy"

    @property
    def marker_path(self) -> Path:
        return self.folder / f"{self.split}.json"

    def read(self) -> np.ndarray | None:
        """The cached images, or None (nothing cached, or damaged: one warning, then None)."""
        if not self.marker_path.exists():
            return None
        try:
            return self._read_checked()
        except Exception as e:  # whatever is wrong with a cache, decoding again fixes it
            reason = " ".join(str(e).split()) or type(e).__name__
            log.warning(
                "decoded cache %s is damaged (%s): decoding the images again", self.path, reason
            )
            return None

    def _read_checked(self) -> np.ndarray:
        marker = Marker(**json.loads(self.marker_path.read_text()))
        if marker.key != self.key:
            raise CacheDamaged(f"its marker is for cache {marker.key}")
        size = self.path.stat().st_size
        if size != marker.file_bytes:
            raise CacheDamaged(f"{size} bytes where {marker.file_bytes} were written")
        images = np.load(self.path, allow_pickle=False)
        if list(images.shape) != marker.shape or images.dtype.str != marker.dtype:
            raise CacheDamaged(f"holds {images.dtype}{list(images.shape)}, not {marker.shape}")
        if not images.flags.c_contiguous:
            images = np.ascontiguousarray(images)
        if zlib.crc32(images) != marker.crc32:
            raise CacheDamaged("its checksum does not match")
        return images

    def write(self, images: np.ndarray) -> None:
        """Store `images` atomically; a failure (read-only, full disk) is a warning only."""
        images = np.ascontiguousarray(images)
        tmp = self.folder / f".{self.split}_x.{os.getpid()}.{uuid.uuid4().hex[:8]}.npy"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._remove_stale_temporaries()
            self.marker_path.unlink(missing_ok=True)  # it must not vouch for the new file
            with open(tmp, "wb") as f:
                np.save(f, images, allow_pickle=False)
            os.replace(tmp, self.path)
            marker = Marker(
                key=self.key,
                shape=list(images.shape),
                dtype=images.dtype.str,
                file_bytes=self.path.stat().st_size,
                crc32=zlib.crc32(images),
            )
            _write_atomic(self.marker_path, json.dumps(asdict(marker)))
        except OSError as e:
            # The cleanup can fail the same way (a cache dir under a regular file)
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            log.warning(
                "cannot write the decoded cache in %s (%s): the next run decodes again "
                "(set dataset.cache_dir=DIR to a writable folder, or null)",
                self.folder,
                e.strerror or e,
            )

    def _remove_stale_temporaries(self) -> None:
        """Temporary files of writes whose process is gone (killed while writing)."""
        for tmp in self.folder.glob(f".{self.split}_x.*.npy"):
            pid = tmp.name.split(".")[2]
            if pid.isdigit() and not process_alive(int(pid)):
                tmp.unlink(missing_ok=True)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):  # the write's own error is the one to report
            tmp.unlink(missing_ok=True)
