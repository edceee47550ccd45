"""ImageFolder: exact decoding, the validated decoded cache, cold = warm runs bit for bit,
the decode-only-the-subset path, class lists, grayscale, and decode errors through the CLI."""

from __future__ import annotations

import io
import json
import logging
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fault_helpers import FAST, assert_same_run, error_line, hydra_in_process, regx_process
from regx import progress
from regx.data.base import DatasetSource
from regx.data.decode import DecodeSpec, decode_images
from regx.data.holdout import apply_holdout
from regx.data.imagefolder import ImageFolder
from regx.errors import ConfigError, DataError


def tree(root: Path, per_class: tuple[int, int] = (16, 4), size: int = 8, gray: bool = False):
    """train/ and test/ with classes a and b; class b's images are brighter at the top."""
    rng = np.random.default_rng(0)
    for split, n in zip(("train", "test"), per_class):
        for name in ("a", "b"):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 200, (size, size, 3), dtype=np.uint8)
                if name == "b":
                    pixels[: size // 2] += 55
                Image.fromarray(pixels[..., 0] if gray else pixels).save(folder / f"{i:02d}.png")
    return root


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def pillow(path: Path, mode: str, size: int | None = None) -> np.ndarray:
    img = Image.open(path).convert(mode)
    if size is not None:
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    pixels = np.array(img)
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


# -- decoding ------------------------------------------------------------------------
def mixed_files(folder: Path) -> list[Path]:
    """One file each of RGB PNG, JPEG, gray PNG, palette PNG and RGBA PNG, all 7×7."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (7, 7, 3), dtype=np.uint8)
    images = {
        "rgb.png": Image.fromarray(rgb),
        "photo.jpg": Image.fromarray(rgb),
        "gray.png": Image.fromarray(rgb[..., 1]),
        "palette.png": Image.fromarray(rgb).convert("P"),
        "alpha.png": Image.fromarray(np.dstack([rgb, rgb[..., 0]])),
    }
    for name, img in images.items():
        img.save(folder / name)
    return [folder / name for name in images]


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize(("channels", "size"), [(3, None), (1, None), (3, 5), (1, 4)])
def test_decode_equals_pillow_pixel_for_pixel(tmp_path, workers, channels, size):
    paths = mixed_files(tmp_path / "files") * 4  # 20 files: several chunks for the pool
    got = decode_images([str(p) for p in paths], DecodeSpec(channels, size), workers=workers)
    want = np.stack([pillow(p, "L" if channels == 1 else "RGB", size) for p in paths])
    assert got.dtype == np.uint8 and got.flags.c_contiguous
    assert got.shape == want.shape and np.array_equal(got, want)


def test_imagefolder_hands_on_contiguous_tensors_equal_to_pillow(tmp_path):
    root = tree(tmp_path / "imgs", per_class=(3, 2))
    data = ImageFolder(root=str(root), cache_dir=None).load()
    assert data.train_x.is_contiguous() and data.test_x.is_contiguous()
    want = np.stack([pillow(p, "RGB") for p in sorted((root / "train").glob("*/*.png"))])
    assert torch.equal(data.train_x, torch.from_numpy(want))
    assert data.train_y.tolist() == [0, 0, 0, 1, 1, 1] and data.test_y.tolist() == [0, 0, 1, 1]


# -- the decoded cache ---------------------------------------------------------------
def cache_file(cache: Path, split: str = "train") -> Path:
    (folder,) = cache.glob("imagefolder-*")
    return folder / f"{split}_x.npy"


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip_last_byte(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0xFF
    path.write_bytes(bytes(raw))


def garble_marker(path: Path) -> None:
    path.with_name("train.json").write_text("{not json")


@pytest.mark.parametrize("damage", [truncate, flip_last_byte, garble_marker, Path.unlink])
def test_damaged_cache_is_rebuilt_with_one_warning(tmp_path, caplog, damage):
    root, cache = tree(tmp_path / "imgs", per_class=(3, 2)), tmp_path / "cache"
    fresh = ImageFolder(root=str(root), cache_dir=str(cache)).load()
    damage(cache_file(cache))
    with caplog.at_level(logging.INFO, logger="regx"):
        again = ImageFolder(root=str(root), cache_dir=str(cache)).load()
    (warning,) = warnings_of(caplog)
    assert warning.startswith(f"decoded cache {cache_file(cache)} is damaged (")
    assert warning.endswith("): decoding the images again")
    assert torch.equal(again.train_x, fresh.train_x)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="regx"):
        ImageFolder(root=str(root), cache_dir=str(cache)).load()
    assert warnings_of(caplog) == []  # rebuilt: valid again
    assert not any(r.getMessage().startswith("decoding") for r in caplog.records)


def test_write_killed_before_its_marker_is_a_cold_cache(tmp_path, caplog):
    root, cache = tree(tmp_path / "imgs", per_class=(3, 2)), tmp_path / "cache"
    ImageFolder(root=str(root), cache_dir=str(cache)).load()
    folder = cache_file(cache).parent
    (folder / "train.json").unlink()  # killed after the rename, before the marker
    leftover = folder / ".train_x.99999999.deadbeef.npy"  # killed mid-write, pid long gone
    leftover.write_bytes(b"half")
    with caplog.at_level(logging.INFO, logger="regx"):
        ImageFolder(root=str(root), cache_dir=str(cache)).load()
    messages = [r.getMessage() for r in caplog.records]
    assert warnings_of(caplog) == []
    assert messages[0] == f"decoding 6 images of {root / 'train'} (1 process)"
    assert not leftover.exists() and (folder / "train.json").exists()
    marker = json.loads((folder / "train.json").read_text())
    assert (
        marker["shape"] == [6, 3, 8, 8] and marker["file_bytes"] == cache_file(cache).stat().st_size
    )


def run_cli(root: Path, run_dir: Path, *extra: str, cwd: Path) -> tuple[int, str, str]:
    args = ["train", "dataset=imagefolder", f"dataset.root={root}", "trainer=smoke"]
    proc = regx_process([*args, f"hydra.run.dir={run_dir}", *FAST, *extra], cwd=cwd)
    out, err = proc.communicate(timeout=300)
    assert "Traceback" not in out + err
    return proc.returncode, out, err


@pytest.mark.slow
def test_cold_warm_and_rebuilt_cache_runs_are_identical(tmp_path, monkeypatch):
    root, cache = tree(tmp_path / "imgs"), tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("REGX_CACHE", str(cache))
    code, cold_out, _ = run_cli(root, tmp_path / "cold", cwd=tmp_path)
    assert code == 0 and f"decoding 32 images of {root / 'train'} (1 process)" in cold_out
    code, warm_out, _ = run_cli(root, tmp_path / "warm", cwd=tmp_path)
    assert code == 0 and "decoding" not in warm_out
    assert_same_run(tmp_path / "warm", tmp_path / "cold")
    full_size = cache_file(cache).stat().st_size
    truncate(cache_file(cache))
    code, out, err = run_cli(root, tmp_path / "rebuilt", cwd=tmp_path)
    assert code == 0 and "decoded cache" not in out
    assert err.splitlines() == [  # the one warning, on stderr
        f"warning: decoded cache {cache_file(cache)} is damaged ({full_size // 2} bytes where "
        f"{full_size} were written): decoding the images again"
    ]
    assert cache_file(cache).stat().st_size == full_size
    assert_same_run(tmp_path / "rebuilt", tmp_path / "cold")


# -- subset: decode only the chosen images ---------------------------------------------
def test_subset_decodes_the_images_the_base_class_would_choose(tmp_path, caplog):
    root, cache = tree(tmp_path / "imgs", per_class=(9, 2)), tmp_path / "cache"
    source = ImageFolder(root=str(root), cache_dir=str(cache), subset=7)
    with caplog.at_level(logging.INFO, logger="regx"):
        cold = source._load_subset(seed=3)
    assert f"decoding 7 images of {root / 'train'}, a subset of the 18 (1 process)" in caplog.text
    assert not list(cache.glob("imagefolder-*/train_x.npy"))  # a subset is not cached
    assert len(list(cache.glob("imagefolder-*/test_x.npy"))) == 1  # a whole split is
    base = DatasetSource._load_subset(source, seed=3)  # decode all, then choose
    warm = source._load_subset(seed=3)  # from the full cache the base path just wrote
    for got in (cold, warm):
        assert torch.equal(got.train_x, base.train_x) and torch.equal(got.train_y, base.train_y)
        assert torch.equal(got.test_x, base.test_x) and got.train_x.is_contiguous()
    # 3.5 images of each class: largest remainder, the tie to the first class
    assert sorted(cold.train_y.tolist()) == [0, 0, 0, 0, 1, 1, 1]
    other = source._load_subset(seed=4)
    assert not torch.equal(other.train_x, cold.train_x)


def test_subset_larger_than_the_training_set_is_a_config_error(tmp_path):
    root = tree(tmp_path / "imgs", per_class=(3, 2))
    with pytest.raises(ConfigError, match=r"^dataset.subset=7: must be at most the 6 training"):
        ImageFolder(root=str(root), cache_dir=None, subset=7).load()


# -- class lists -----------------------------------------------------------------------
def test_classes_are_the_union_of_train_and_test_folders(tmp_path):
    root = tree(tmp_path / "imgs", per_class=(3, 2))
    (root / "train" / "c").mkdir()
    for i in range(2):
        Image.fromarray(np.full((8, 8, 3), 9 * i, np.uint8)).save(root / "train" / "c" / f"{i}.png")
    data = ImageFolder(root=str(root), cache_dir=None).load()
    assert data.classes == ["a", "b", "c"]  # c has no test images: fine
    assert data.train_y.tolist() == [0, 0, 0, 1, 1, 1, 2, 2]
    assert data.test_y.tolist() == [0, 0, 1, 1]


def test_test_only_class_is_accepted_when_held_out(tmp_path):
    root = tree(tmp_path / "imgs", per_class=(3, 2))
    for name in ("c", "d"):
        (root / "test" / name).mkdir()
        Image.fromarray(np.full((8, 8, 3), 99, np.uint8)).save(root / "test" / name / "0.png")
    source = ImageFolder(root=str(root), cache_dir=None, holdout_classes=["c", "d"])
    raw = source._load_raw()
    assert raw.classes == ["a", "b", "c", "d"] and raw.test_y.tolist() == [0, 0, 1, 1, 2, 3]
    data = apply_holdout(raw, source.holdout_classes)
    assert data.classes == ["a", "b"] and data.open_classes == ["c", "d"]
    assert data.open_y.tolist() == [0, 1] and len(data.test_y) == 4
    only_c = ImageFolder(root=str(root), cache_dir=None, holdout_classes=["a", "c"])
    with pytest.raises(DataError) as e:
        only_c.load()
    assert str(e.value) == (
        f"{root}: test/ has class folders that train/ lacks and dataset.holdout_classes "
        "does not hold out (d): hold them out too, add them to train/, or remove them"
    )


# -- grayscale -------------------------------------------------------------------------
def test_gray_images_give_one_channel_and_one_flip_warning(tmp_path, caplog):
    root = tree(tmp_path / "gray", per_class=(3, 2), gray=True)
    source = ImageFolder(root=str(root), cache_dir=None, train_augment={"flip": True})
    with caplog.at_level(logging.INFO, logger="regx"):
        data = source.load()
        source.load()
    assert data.train_x.shape == (6, 1, 8, 8)
    first = sorted((root / "train").glob("*/*.png"))[0]
    assert torch.equal(data.train_x[0], torch.from_numpy(pillow(first, "L")))
    (warning,) = warnings_of(caplog)
    assert warning.startswith(f"dataset.train_augment.flip=true on grayscale images ({root})")
    rgb = ImageFolder(root=str(root), cache_dir=None, channels=3).load()
    assert rgb.train_x.shape == (6, 3, 8, 8) and torch.equal(rgb.train_x[:, 2:], data.train_x)


def test_colour_image_after_gray_ones_is_named(tmp_path):
    root = tree(tmp_path / "gray", per_class=(3, 2), gray=True)
    colour = root / "train" / "a" / "01.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(colour)
    with pytest.raises(DataError) as e:
        ImageFolder(root=str(root), cache_dir=None).load()
    assert str(e.value).startswith(f"image {colour} is in colour (RGB) but the first images")
    assert str(e.value).endswith(
        "set dataset.channels=3 to keep colour (or dataset.channels=1 "
        "to convert every image to gray)"
    )


# -- progress --------------------------------------------------------------------------
DOING, DONE = "decoding 10 images of X (2 processes)", "decoded 10 images of X"


def test_progress_is_a_bar_on_a_terminal_and_two_log_lines_otherwise(monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="regx")
    with progress.WorkProgress(10, "images", DOING, DONE) as plain:
        plain.advance(10)
    assert plain.bar is None
    assert [r.getMessage().split(" in ")[0] for r in caplog.records] == [
        "decoding 10 images of X (2 processes)",
        "decoded 10 images of X",
    ]
    caplog.clear()
    monkeypatch.setattr(progress, "stderr_is_terminal", lambda: True)
    with progress.WorkProgress(10, "images", DOING, DONE) as bar:
        bar.advance(4)
        assert bar.bar.tasks[0].completed == 4 and bar.bar.tasks[0].total == 10
    assert [r.getMessage().split(" in ")[0] for r in caplog.records] == ["decoded 10 images of X"]


# -- decode errors through the CLI: one line naming the file, exit 3, no traceback --------
def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header(width: int, height: int) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + png_chunk(
        b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    )


def write_bomb(path: Path) -> None:
    """A 14000×14000 PNG header (196 M pixels, beyond Pillow's limit) with no pixel data."""
    idat = png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
    path.write_bytes(png_header(14000, 14000) + idat + png_chunk(b"IEND", b""))


def write_broken_chunk(path: Path) -> None:
    """An 8×8 PNG whose second data chunk has a mangled type: Pillow's SyntaxError on load."""
    data = zlib.compress(b"".join(b"\0" + bytes(range(24)) for _ in range(8)))
    chunks = png_chunk(b"IDAT", data[:10]) + png_chunk(b"ID\x00T", data[10:])
    path.write_bytes(png_header(8, 8) + chunks + png_chunk(b"IEND", b""))


def write_truncated_jpeg(path: Path) -> None:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (8, 8, 3), np.uint8)).save(
        buffer, "JPEG"
    )
    path.write_bytes(buffer.getvalue()[:300])


BOMB = (
    "has 14000×14000 = 196000000 pixels, more than dataset.max_pixels=89478485 (the guard "
    "against decompression bombs): set dataset.max_pixels=196000000 (or null for no limit) "
    "or remove the file"
)
CASES = {
    "bomb": (write_bomb, [], "error: image {bad} " + BOMB),
    "bomb allowed, no data": (
        write_bomb,
        ["dataset.max_pixels=null"],
        "error: cannot read image {bad} (image file is truncated (0 bytes not processed)): "
        "replace or delete the file",
    ),
    "broken chunk": (
        write_broken_chunk,
        [],
        "error: cannot read image {bad} (broken PNG file (chunk b'ID\\x00T')): "
        "replace or delete the file",
    ),
    "truncated jpeg": (
        write_truncated_jpeg,
        [],
        "error: cannot read image {bad} (Truncated File Read): replace or delete the file",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_decode_error_is_one_line_naming_the_file(tmp_path, case):
    write, extra, expected = CASES[case]
    root = tree(tmp_path / "imgs", per_class=(8, 2))
    bad = root / "train" / "b" / ("05.jpg" if "jpeg" in case else "05.png")
    write(bad)
    code, _, err = run_cli(root, tmp_path / "run", "dataset.cache_dir=null", *extra, cwd=tmp_path)
    assert code == 3
    assert error_line(err) == expected.format(bad=bad)
    assert not (tmp_path / "run").exists()  # failed before training: no run dir left


def test_max_pixels_must_be_positive_or_null(tmp_path):
    root = tree(tmp_path / "imgs", per_class=(3, 2))
    code, out, err = hydra_in_process(
        [
            "dataset=imagefolder",
            f"dataset.root={root}",
            "dataset.max_pixels=0",
            f"hydra.run.dir={tmp_path / 'run'}",
        ]
    )
    assert code == 2 and "Traceback" not in out
    assert error_line(err) == (
        "error: dataset.max_pixels=0: must be a positive number of pixels (width × height) "
        "or null for no limit"
    )
