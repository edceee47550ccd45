"""Decode throughput of an ImageFolder tree (regx.data.decode), and what draft mode would give.

    python scripts/bench_decode.py ROOT [--modes serial,processes,threads] [--limit N]
                                        [--draft-size S] [--repeats R]

For each mode it decodes every image under ROOT/train and ROOT/test (or the first N)
into one uint8 array and prints wall seconds, CPU seconds (this process and its reaped
children: the pool's workers) and images/s:
  serial     one process, regx.data.decode.decode_images(workers=1)
  processes  the pool regx uses (one process per usable core)
  threads    the same chunks on a thread pool of the same size (Pillow releases the GIL
             inside its C decoders, not while it parses headers in Python)
With --draft-size S it also decodes the first images at S×S twice, in full then resized
(what regx does) and with JPEG draft mode (libjpeg's DCT scaling), and prints both
speeds and the largest pixel difference: draft mode is exact only where it is a no-op.
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from regx.data.decode import DecodeSpec, decode_chunk, decode_images, usable_cores


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def image_paths(root: Path, limit: int | None) -> list[str]:
    paths = [str(p) for split in ("train", "test") for p in sorted((root / split).glob("*/*"))]
    return paths[:limit] if limit else paths


def decode_threads(paths: list[str], spec: DecodeSpec) -> np.ndarray:
    workers = usable_cores()
    per_chunk = max(8, min(256, len(paths) // (workers * 8) or 1))
    chunks = [paths[i : i + per_chunk] for i in range(0, len(paths), per_chunk)]
    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(decode_chunk, chunks, [spec] * len(chunks)))
    return np.concatenate([r.images for r in results])


MODES: dict[str, Callable[[list[str], DecodeSpec], np.ndarray]] = {
    "serial": lambda paths, spec: decode_images(paths, spec, workers=1),
    "processes": lambda paths, spec: decode_images(paths, spec, workers=usable_cores()),
    "threads": decode_threads,
}


def time_mode(name: str, paths: list[str], spec: DecodeSpec) -> np.ndarray:
    wall0, cpu0 = time.perf_counter(), cpu_seconds()
    images = MODES[name](paths, spec)
    wall, cpu = time.perf_counter() - wall0, cpu_seconds() - cpu0
    print(
        f"{name:<10} {len(paths):>6} images  wall {wall:6.2f} s  cpu {cpu:6.2f} s  "
        f"{len(paths) / wall:7.0f} images/s  ({len(paths) / cpu:7.0f} per CPU second)"
    )
    return images


def draft_decode(path: str, size: int) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        img.draft("RGB", (size, size))
        img = img.convert("RGB")
        if img.size != (size, size):
            img = img.resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(img).transpose(2, 0, 1)


def compare_draft(paths: list[str], size: int) -> None:
    spec = DecodeSpec(channels=3, image_size=size)
    t0 = time.process_time()
    full = decode_images(paths, spec, workers=1)
    t1 = time.process_time()
    draft = np.stack([draft_decode(p, size) for p in paths])
    t2 = time.process_time()
    diff = np.abs(full.astype(np.int16) - draft.astype(np.int16))
    print(
        f"draft to {size}×{size} on {len(paths)} images: full+resize {len(paths) / (t1 - t0):.0f} "
        f"images/CPU s, draft {len(paths) / (t2 - t1):.0f} images/CPU s; pixels that differ "
        f"{(diff > 0).mean():.1%}, largest difference {int(diff.max())}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--modes", default="serial,processes,threads")
    parser.add_argument("--limit", type=int, default=None, help="decode only the first N images")
    parser.add_argument("--draft-size", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    paths = image_paths(args.root, args.limit)
    spec = DecodeSpec(channels=3)
    print(f"{args.root}: {len(paths)} images, {usable_cores()} usable cores")
    reference = None
    for _ in range(args.repeats):
        for name in args.modes.split(","):
            images = time_mode(name, paths, spec)
            if reference is None:
                reference = images
            assert np.array_equal(images, reference), f"{name} decoded different pixels"
    if args.draft_size:
        compare_draft(paths[:5000], args.draft_size)


if __name__ == "__main__":
    main()
