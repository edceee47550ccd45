"""Decoding image files into one uint8 array of shape (N, C, H, W), C-contiguous.

Each file is decoded by Pillow exactly as `Image.open(f).convert(mode)` (mode "L" for one
channel, "RGB" for three), then resized to S×S with bilinear resampling when
`image_size=S` is set and the image is not S×S already. The bytes equal Pillow's own
decode: no draft mode (libjpeg's DCT scaling and its own YCbCr→gray path give different
pixels than decoding in full and then resizing or converting).

Wide integer grayscale (16-bit "I;16…" and 32-bit "I", as 16-bit PNGs and TIFFs open) is
first made 8-bit, because Pillow's own conversion clips at 255 and so saturates nearly
every pixel: a value v becomes clip(v, 0, 65535) >> 8 = ⌊v / 256⌋, which maps 0..65535
evenly onto 0..255 and gives back u exactly for an 8-bit value u stored as u·257. Mode "I"
is read on the 16-bit scale (what Pillow gives for 16-bit files); values outside it clip.

Many files are decoded by a pool of processes (one per usable core), each taking chunks of
consecutive files and sending back one array per chunk; the chunks are put together in
listing order, so the result and the first error reported do not depend on the pool.
Pillow's own decompression-bomb check is replaced by `max_pixels` (W·H above it is
refused, None is no limit), so the limit is one setting with one message.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from regx.errors import ConfigError, DataError

# Stored modes that count as grayscale for `channels=null` (palette images count as colour)
GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
# Integer gray modes wider than 8 bits, scaled to 8 bits by `_to_8bit`
WIDE_GRAY_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})
PIL_MAX_PIXELS = 89_478_485  # Pillow's Image.MAX_IMAGE_PIXELS, where it starts to warn
POOL_MIN_IMAGES = 512  # below this, starting processes costs more than it saves
PR_SET_PDEATHSIG = 1  # Linux prctl option: a signal for the child when its parent dies


@dataclass(frozen=True)
class DecodeSpec:
    """What every image becomes: `channels` (1 or 3) × `image_size`² (None: as stored)."""

    channels: int = 3
    image_size: int | None = None
    max_pixels: int | None = PIL_MAX_PIXELS
    # Set when the channel count was detected as 1 from a sample: a colour image later in
    # the listing is refused rather than silently turned gray.
    gray_detected: bool = False


@dataclass
class ChunkResult:
    """One chunk's images (stacked), or the first failure in it as a one-line message."""

    images: np.ndarray | None
    error: str | None = None
    error_is_size: bool = False


class DecodeRefused(Exception):
    """A file that is readable but not accepted (too many pixels, colour in gray data)."""


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text or type(e).__name__


def _open_checked(path: str, spec: DecodeSpec):  # -> PIL.Image.Image
    from PIL import Image

    img = Image.open(path)
    width, height = img.size
    if spec.max_pixels is not None and width * height > spec.max_pixels:
        img.close()
        raise DecodeRefused(
            f"image {path} has {width}×{height} = {width * height} pixels, more than "
            f"dataset.max_pixels={spec.max_pixels} (the guard against decompression bombs): "
            f"set dataset.max_pixels={width * height} (or null for no limit) or remove the file"
        )
    if spec.gray_detected and img.mode not in GRAY_MODES:
        img.close()
        raise DecodeRefused(
            f"image {path} is in colour ({img.mode}) but the first images were grayscale, "
            f"so dataset.channels was set to 1: set dataset.channels=3 to keep colour "
            f"(or dataset.channels=1 to convert every image to gray)"
        )
    return img


@contextlib.contextmanager
def _pillow_limit_off() -> Iterator[None]:
    """Pillow's own pixel limit off (it is checked at open and in some loaders)."""
    from PIL import Image

    previous, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def _to_8bit(img):  # PIL.Image.Image -> PIL.Image.Image (mode L)
    """A wide integer gray image as 8-bit gray: clip(v, 0, 65535) >> 8 per pixel."""
    from PIL import Image

    values = np.asarray(img).astype(np.int64)
    return Image.fromarray((np.clip(values, 0, 65535) >> 8).astype(np.uint8))


def decode_image(path: str, spec: DecodeSpec) -> np.ndarray:
    """One file as a (C, H, W) uint8 array; raises DecodeRefused or Pillow's own error."""
    from PIL import Image

    with _pillow_limit_off(), _open_checked(path, spec) as img:
        mode = "L" if spec.channels == 1 else "RGB"
        if img.mode in WIDE_GRAY_MODES:
            img = _to_8bit(img)
        img = img.convert(mode) if img.mode != mode else img
        size = spec.image_size
        if size is not None and img.size != (size, size):
            img = img.resize((size, size), Image.Resampling.BILINEAR)
        pixels = np.asarray(img, dtype=np.uint8)
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def _shape_text(shape: tuple[int, ...]) -> str:
    return f"{shape[1]}×{shape[2]}"


def decode_chunk(paths: Sequence[str], spec: DecodeSpec) -> ChunkResult:
    """Decode consecutive files into one (n, C, H, W) array, stopping at the first failure."""
    images: np.ndarray | None = None
    for i, path in enumerate(paths):
        try:
            pixels = decode_image(path, spec)
        except DecodeRefused as e:
            return ChunkResult(None, str(e))
        except Exception as e:  # any decoder failure (OSError, SyntaxError, ValueError…)
            return ChunkResult(
                None, f"cannot read image {path} ({_one_line(e)}): replace or delete the file"
            )
        if images is None:
            images = np.empty((len(paths), *pixels.shape), dtype=np.uint8)
        elif pixels.shape != images.shape[1:]:
            message = _size_message(path, pixels.shape, paths[0], images.shape[1:])
            return ChunkResult(None, message, error_is_size=True)
        images[i] = pixels
    return ChunkResult(images)


def _size_message(path: str, shape: tuple, first: str, first_shape: tuple) -> str:
    return (
        f"the images have different sizes ({path} is {_shape_text(shape)}, {first} is "
        f"{_shape_text(first_shape)}): set dataset.image_size=N to resize them"
    )


def _raise(result: ChunkResult, spec: DecodeSpec) -> None:
    if result.error_is_size:
        raise ConfigError("dataset.image_size", spec.image_size, result.error)
    raise DataError(result.error)


def _start_worker(parent: int) -> None:
    """A worker ignores Ctrl-C (it reaches the whole process group; the parent stops the
    pool) and dies with its parent, so a SIGKILLed run leaves no decoder behind."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _chunk_results(
    chunks: list[Sequence[str]], spec: DecodeSpec, workers: int
) -> Iterator[ChunkResult]:
    if workers <= 1:
        yield from (decode_chunk(chunk, spec) for chunk in chunks)
        return
    # fork: the workers need only Pillow and numpy, already imported; spawn would import
    # torch again in each of them.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    pool = ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context(method),
        initializer=_start_worker,
        initargs=(os.getpid(),),
    )
    try:
        yield from pool.map(decode_chunk, chunks, [spec] * len(chunks))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def pool_size(images: int) -> int:
    """The processes `decode_images` uses for this many files by default."""
    return usable_cores() if images >= POOL_MIN_IMAGES else 1


def decode_images(
    paths: Sequence[str],
    spec: DecodeSpec,
    workers: int | None = None,
    advance: Callable[[int], None] | None = None,
) -> np.ndarray:
    """All `paths` as one C-contiguous (N, C, H, W) uint8 array, in the order given.

    `workers`: processes (None: one per usable core, in-process below POOL_MIN_IMAGES
    files); `advance(k)` is called as each chunk of k images is done.
    """
    workers = max(1, min(pool_size(len(paths)) if workers is None else workers, len(paths)))
    per_chunk = max(8, min(256, len(paths) // (workers * 8) or 1))
    chunks = [paths[i : i + per_chunk] for i in range(0, len(paths), per_chunk)]
    out: np.ndarray | None = None
    start = 0
    # closing: on an error the pool stops now, not when the traceback is freed
    with contextlib.closing(_chunk_results(chunks, spec, workers)) as results:
        for chunk, result in zip(chunks, results):
            if result.images is None:
                _raise(result, spec)
            if out is None:
                out = np.empty((len(paths), *result.images.shape[1:]), dtype=np.uint8)
            elif result.images.shape[1:] != out.shape[1:]:
                message = _size_message(chunk[0], result.images.shape[1:], paths[0], out.shape[1:])
                raise ConfigError("dataset.image_size", spec.image_size, message)
            out[start : start + len(chunk)] = result.images
            start += len(chunk)
            if advance is not None:
                advance(len(chunk))
    if out is None:
        raise DataError("no images to decode")
    return out


def detect_channels(paths: Sequence[str], spec: DecodeSpec) -> int:
    """1 if every file in `paths` (a sample) is stored gray, else 3; reads headers only."""
    for path in paths:
        try:
            with _pillow_limit_off(), _open_checked(path, spec) as img:
                if img.mode not in GRAY_MODES:
                    return 3
        except DecodeRefused as e:
            raise DataError(str(e)) from None
        except Exception as e:
            raise DataError(
                f"cannot read image {path} ({_one_line(e)}): replace or delete the file"
            ) from None
    return 1
