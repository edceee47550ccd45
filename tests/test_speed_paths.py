"""The fast paths of SPEC §6 do what they promise, numerically (no timing assertions here:
timings live in scripts/bench.py).

CPU: the one-gather crop+flip, device batches, channels_last normalization, the
per-step loss buffer behind train_loss and the divergence check, bf16 autocast,
torch.compile on a tiny model, AirNet's whitening and flip TTA, startup costs that must
stay out of a run (inductor, torchvision), thread defaults, the cifar10_speed preset.
CUDA (run in a subprocess that sees the GPU, skipped where there is none): trainer=fast
with bf16 + channels_last + data on the GPU, and torch.compile.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from regx.data.augment import Normalize, crop_flip, pad
from regx.data.batches import DeviceBatches, epoch_permutation
from regx.data.types import Augment
from regx.engine import device as device_mod
from regx.models.airnet import AirNet

CPU = torch.device("cpu")


# -- augmentation and batches --------------------------------------------------------
def test_crop_flip_is_the_seeded_window_mirrored_for_the_seeded_coins():
    x = torch.arange(64 * 2 * 5 * 6, dtype=torch.int64).remainder(251).to(torch.uint8)
    x = x.view(64, 2, 5, 6)
    xp = pad(x, 2)
    torch.manual_seed(3)
    out = crop_flip(xp, (5, 6), flip=True)
    torch.manual_seed(3)
    dy = torch.randint(0, 5, (64, 1))
    dx = torch.randint(0, 5, (64, 1))
    coin = torch.rand(64) < 0.5
    for i in range(64):
        window = xp[i, :, int(dy[i]) : int(dy[i]) + 5, int(dx[i]) : int(dx[i]) + 6]
        expected = window.flip(-1) if coin[i] else window
        assert torch.equal(out[i], expected), i
    assert 16 < int(coin.sum()) < 48  # both branches exercised
    assert out.dtype == torch.uint8 and out.shape == (64, 2, 5, 6)


def test_crop_without_flip_matches_the_same_draws_and_no_padding_is_identity():
    xp = pad(torch.randint(0, 256, (8, 3, 4, 4), dtype=torch.uint8), 1)
    torch.manual_seed(0)
    a = crop_flip(xp, (4, 4), flip=False)
    torch.manual_seed(0)  # the documented draws: row offsets, then column offsets
    dy, dx = torch.randint(0, 3, (8, 1)), torch.randint(0, 3, (8, 1))
    for i in range(8):
        y0, x0 = int(dy[i]), int(dx[i])
        assert torch.equal(a[i], xp[i, :, y0 : y0 + 4, x0 : x0 + 4])
    x = torch.randint(0, 256, (8, 3, 4, 4), dtype=torch.uint8)
    assert crop_flip(x, (4, 4), flip=False) is x
    flipped = crop_flip(x, (4, 4), flip=True)  # no padding: each image kept or mirrored
    for i in range(8):
        assert torch.equal(flipped[i], x[i]) or torch.equal(flipped[i], x[i].flip(-1))


def test_device_batches_are_windows_of_the_epoch_permutation():
    n, size = 40, 6
    x = torch.randint(0, 256, (n, 1, size, size), dtype=torch.uint8)
    y = torch.arange(n) % 7
    batches = DeviceBatches(x, y, 16, CPU, Augment(crop_padding=1, flip=True), seed=5)
    assert len(batches) == 2  # drop_last: 40 // 16
    perm = epoch_permutation(n, 5, 2)
    xp = pad(x, 1)
    for b, (xb, yb, idx) in enumerate(batches.epoch(2)):
        assert torch.equal(idx, perm[16 * b : 16 * (b + 1)])
        assert torch.equal(yb, y[idx])
        for img, j in zip(xb, idx.tolist()):
            views = [xp[j, :, r : r + size, c : c + size] for r in range(3) for c in range(3)]
            assert any(torch.equal(img, v) or torch.equal(img, v.flip(-1)) for v in views)


def test_normalize_channels_last_keeps_values_and_gives_channels_last():
    x = torch.randint(0, 256, (4, 3, 5, 5), dtype=torch.uint8)
    plain = Normalize((0.1, 0.5, 0.9), (0.2, 0.3, 0.4), CPU)(x)
    fast = Normalize((0.1, 0.5, 0.9), (0.2, 0.3, 0.4), CPU, channels_last=True)(x)
    expected = (x.float() / 255 - torch.tensor([0.1, 0.5, 0.9]).view(1, 3, 1, 1)) / torch.tensor(
        [0.2, 0.3, 0.4]
    ).view(1, 3, 1, 1)
    assert torch.allclose(plain, expected, atol=1e-5)
    assert torch.equal(plain, fast)
    assert fast.is_contiguous(memory_format=torch.channels_last)
    assert plain.is_contiguous()


# -- the training step ------------------------------------------------------------------
SYNTH32 = [
    "dataset=synthetic",
    "dataset.image_size=16",
    "dataset.channels=3",
    "dataset.num_train=320",
    "dataset.num_test=64",
    "dataset.train_augment.crop_padding=2",
    "dataset.train_augment.flip=true",
    "model.widths=[8,16]",
    "trainer.batch_size=32",
    "trainer.checkpoint=false",
]


def _trainer(tmp_path: Path, overrides: list[str]):
    from conftest import FAST, compose_config
    from regx.config.build import build_spec
    from regx.engine.trainer import Trainer

    spec = build_spec(compose_config([*FAST, *overrides]), overrides)
    return Trainer(spec, tmp_path / "run")


def test_train_loss_is_the_size_weighted_mean_of_the_step_losses(tmp_path):
    from regx.engine.progress import EpochProgress

    trainer = _trainer(tmp_path, [*SYNTH32, "trainer.epochs=2", "trainer.nan_check_every=3"])
    seen: list[tuple[float, int]] = []
    trainer.loss_fn.register_forward_hook(
        lambda mod, args, out: seen.append((float(out.detach().mean()), len(out)))
    )
    row = trainer.train_epoch(0, EpochProgress(len(trainer.batches), 2, enabled=False))
    assert len(seen) == len(trainer.batches) == 9  # 288 training images / 32
    expected = sum(m * n for m, n in seen) / sum(n for _, n in seen)
    assert row["train_loss"] == pytest.approx(expected, rel=1e-5)
    assert 0.0 <= row["train_acc"] <= 1.0


def test_a_nan_loss_is_reported_at_its_step_with_the_last_finite_loss(tmp_path):
    from regx.engine.progress import EpochProgress
    from regx.errors import DivergedError

    trainer = _trainer(tmp_path, [*SYNTH32, "trainer.epochs=1", "trainer.nan_check_every=4"])
    calls = {"n": 0}
    finite: list[float] = []

    def poison(mod, args, out):
        calls["n"] += 1
        if calls["n"] == 6:  # the 6th step's loss becomes NaN
            return out * float("nan")
        finite.append(float(out.detach().mean()))
        return out

    trainer.loss_fn.register_forward_hook(poison)
    with pytest.raises(DivergedError, match=r"epoch 1, step 6 \(last finite loss ([0-9.]+)\)") as e:
        trainer.train_epoch(0, EpochProgress(len(trainer.batches), 1, enabled=False))
    reported = float(str(e.value).split("last finite loss ")[1].split(")")[0])
    assert reported == pytest.approx(finite[4], rel=1e-3)
    assert calls["n"] == 8  # found at the check after step 8 (every 4), not at the end


def test_bf16_autocast_and_channels_last_train_on_cpu(tmp_path, train_run):
    summary = train_run(
        [*SYNTH32, "trainer.epochs=3", "trainer.precision=bf16", "trainer.channels_last=true"]
    )
    assert summary["status"] == "finished"
    assert summary["test"]["acc"] > 0.5  # 4 classes: well above chance
    assert np.isfinite(summary["test"]["nll"])


@pytest.mark.slow
def test_torch_compile_trains_a_tiny_model_on_cpu_and_reports_its_cold_cost(tmp_path, train_run):
    summary = train_run(
        [
            "dataset=synthetic",
            "model=mlp",
            "model.hidden=[32]",
            "trainer.epochs=2",
            "trainer.batch_size=64",
            "trainer.compile=true",
            "trainer.checkpoint=false",
        ]
    )
    assert summary["status"] == "finished"
    assert summary["test"]["acc"] > 0.6
    assert summary["compile_seconds"] is not None
    assert summary["compile_seconds"] > 0  # the first epoch paid for compilation


# -- startup costs and threads ----------------------------------------------------------
def _python(code: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_runtime_setup_and_versions_import_neither_inductor_nor_torchvision():
    out = _python(
        "import sys, torch\n"
        "from regx.engine.device import configure_runtime\n"
        "from regx.engine.environment import versions\n"
        "on = configure_runtime(torch.device('cpu'), None, 1)\n"
        "v = versions()\n"
        "print(on, torch.are_deterministic_algorithms_enabled(),\n"
        "      'torch._inductor' in sys.modules, 'torch._dynamo' in sys.modules,\n"
        "      'torchvision' in sys.modules, v['torchvision'] is not None)\n"
    )
    assert out.split() == ["True", "True", "False", "False", "False", "True"]


def test_compiling_keeps_inductor_determinism_in_step():
    out = _python(
        "import torch\n"
        "from regx.engine.device import configure_runtime\n"
        "configure_runtime(torch.device('cpu'), True, 1, compiling=True)\n"
        "import torch._inductor.config as c\n"
        "print(c.deterministic, torch.are_deterministic_algorithms_enabled())\n"
    )
    assert out.split() == ["True", "True"]


def test_default_threads_all_cores_or_omp_num_threads(monkeypatch):
    cores = device_mod.available_cores()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert device_mod.default_threads() == cores
    # the machine's load must not change the thread count (nor, through it, the numbers)
    monkeypatch.setattr(os, "getloadavg", lambda: (cores + 5.0, 0.0, 0.0))
    assert device_mod.default_threads() == cores
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # what joblib sets for each worker
    assert device_mod.default_threads() == 1
    configure = device_mod.configure_runtime
    before = torch.get_num_threads()
    try:
        configure(CPU, None, None)
        assert torch.get_num_threads() == 1
        configure(CPU, None, 2)
        assert torch.get_num_threads() == 2  # trainer.threads wins
    finally:
        torch.set_num_threads(before)


def test_more_threads_than_cores_is_warned_about(monkeypatch, caplog):
    """Oversubscribed threads spin at every barrier (a run many times slower): say so."""
    import logging

    monkeypatch.setattr(device_mod, "available_cores", lambda: 2)
    before = torch.get_num_threads()
    caplog.set_level(logging.WARNING, logger="regx")
    try:
        device_mod.configure_runtime(CPU, None, 2)
        assert not caplog.records
        device_mod.configure_runtime(CPU, None, 1000)
    finally:
        torch.set_num_threads(before)
    assert [r.getMessage() for r in caplog.records] == [
        "trainer.threads=1000 is more than the 2 cores this process may use: the threads spin "
        "waiting for each other and the run is slower; trainer.threads=2 or less"
    ]


# -- AirNet and the cifar10_speed preset -----------------------------------------------
def _correlated_images(n: int, size: int = 12) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    base = torch.randn(n, 1, size // 2, size // 2, generator=g)
    smooth = torch.nn.functional.interpolate(base, size=size, mode="bilinear")
    noise = torch.randn(n, 2, size, size, generator=g)
    return torch.cat([smooth, 0.5 * smooth + 0.3 * noise[:, :1], noise[:, 1:]], 1)


def test_airnet_whitening_layer_decorrelates_patches_and_stays_frozen():
    model = AirNet(num_classes=5, in_channels=3, image_size=12, widths=[8, 8], whiten_eps=1e-6)
    images = _correlated_images(200)
    model.init_from_data(lambda: images, chunk=64)
    with torch.no_grad():
        out = torch.nn.functional.conv2d(images, model.whiten.weight[:12])  # + half only
    flat = out.permute(0, 2, 3, 1).reshape(-1, 12).double()
    cov = torch.cov(flat.T)
    # unit variance in every retained direction, no correlation between them
    assert torch.allclose(cov, torch.eye(12, dtype=torch.float64), atol=0.02)
    assert torch.equal(model.whiten.weight[12:], -model.whiten.weight[:12])
    assert not model.whiten.weight.requires_grad and model.whiten.bias.requires_grad


def test_airnet_flip_tta_makes_eval_mirror_invariant_and_shapes_fit_small_inputs():
    torch.manual_seed(0)
    for size in (8, 32):
        model = AirNet(num_classes=10, in_channels=3, image_size=size, widths=[8, 16, 16])
        x = torch.randn(4, 3, size, size)
        with torch.no_grad():
            for _ in range(30):  # BN running statistics of this input scale
                assert model(x).shape == (4, 10)
            model.eval()
            f, f_mirror = model.features(x), model.features(x.flip(-1))
            scale = f.abs().max()
            assert scale > 0
            assert torch.allclose(f, f_mirror, atol=1e-5 * scale)
            assert torch.allclose(model(x), model.head(f))
            model.tta = "none"
            assert (model.features(x) - model.features(x.flip(-1))).abs().max() > 1e-3 * scale


def _tiny_image_folder(root: Path, per_class_train: int = 8, per_class_test: int = 3) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", per_class_train), ("test", per_class_test)):
        for c in range(10):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            tint = rng.integers(0, 256, 3)
            for i in range(n):
                pixels = np.clip(tint + rng.normal(0, 30, (32, 32, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")


def test_cifar10_speed_preset_runs_on_cpu_on_a_tiny_image_folder(tmp_path, train_run):
    root = tmp_path / "cifar-like"
    _tiny_image_folder(root)
    summary = train_run(
        [
            "experiment=cifar10_speed",
            f"dataset.root={root}",
            f"dataset.cache_dir={tmp_path / 'cache'}",
            "split.val_fraction=0.25",
            "trainer.epochs=1",
            "trainer.batch_size=30",
            "trainer.precision=32",  # bf16 on a CPU without native support is only slow
            "trainer.checkpoint=false",
            "between.pairs=50",  # 1000 pairs × 3 λ of AirNet's input gradient: ~20 s on a CPU
        ]
    )
    assert summary["status"] == "finished"
    assert summary["dataset"]["image_size"] == 32 and summary["dataset"]["train_size"] == 60
    assert summary["epochs_run"] == 1
    assert 0.0 <= summary["test"]["acc"] <= 1.0 and np.isfinite(summary["test"]["nll"])


def test_cifar10_speed_root_comes_from_the_environment(monkeypatch, compose_cfg):
    monkeypatch.setenv("REGX_CIFAR10", "/data/somewhere/cifar10-jpg")
    cfg = compose_cfg(["experiment=cifar10_speed"])
    assert cfg.dataset.root == "/data/somewhere/cifar10-jpg"
    assert cfg.model._target_.endswith("AirNet") and cfg.trainer.precision == "bf16"
    assert cfg.trainer.channels_last and cfg.loss.epsilon == 0.2


# -- CUDA (a subprocess that sees the GPU) ---------------------------------------------
def _cuda_env() -> dict[str, str]:
    """This session's environment without the blanket hiding of GPUs that conftest adds."""
    env = dict(os.environ)
    if env.get("CUDA_VISIBLE_DEVICES") == "":
        env.pop("CUDA_VISIBLE_DEVICES")
    return env


@pytest.fixture(scope="module")
def cuda_env() -> dict[str, str]:
    env = _cuda_env()
    probe = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.cuda.is_available())"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    if probe.stdout.strip() != "True":
        pytest.skip("no CUDA device on this machine")
    return env


def _train_cli(args: list[str], cwd: Path, env: dict[str, str]) -> dict:
    run_dir = cwd / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "regx", "train", *args, f"hydra.run.dir={run_dir}"],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((run_dir / "summary.json").read_text())


CUDA_SYNTH = [
    "dataset=synthetic",
    "dataset.image_size=32",
    "dataset.channels=3",
    "dataset.num_classes=10",
    "dataset.num_train=4096",
    "dataset.num_test=1024",
    "dataset.train_augment.crop_padding=2",
    "dataset.train_augment.flip=true",
    "trainer=fast",
    # ~80 steps: AirNet's eval-mode BN statistics lag at chance for its first ~15 steps
    "trainer.epochs=6",
    "trainer.batch_size=256",
    "trainer.progress=false",
]


def test_cuda_fast_preset_bf16_channels_last_on_device(tmp_path, cuda_env):
    summary = _train_cli([*CUDA_SYNTH, "model=airnet"], tmp_path, cuda_env)
    assert summary["device"].startswith("cuda")
    assert summary["deterministic"] is False
    assert summary["test"]["acc"] > 0.9  # templates + noise: easy for a real net
    assert summary["compile_seconds"] is None


def test_cuda_compile_reports_cold_cost_and_trains(tmp_path, cuda_env):
    summary = _train_cli([*CUDA_SYNTH, "model=cnn", "trainer.compile=true"], tmp_path, cuda_env)
    assert summary["device"].startswith("cuda")
    assert summary["test"]["acc"] > 0.9
    assert summary["compile_seconds"] is not None and summary["compile_seconds"] > 0


def test_cuda_runtime_switches_and_device_batches(cuda_env):
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import torch\n"
            "from regx.engine.device import configure_runtime, autocast\n"
            "from regx.data.batches import DeviceBatches\n"
            "from regx.data.types import Augment\n"
            "from regx.data.augment import Normalize\n"
            "dev = torch.device('cuda')\n"
            "det = configure_runtime(dev, None, None)\n"
            "x = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)\n"
            "b = DeviceBatches(x, torch.arange(64), 16, dev, Augment(2, True), seed=0)\n"
            "xb, yb, idx = next(iter(b.epoch(0)))\n"
            "xn = Normalize((0.5,) * 3, (0.2,) * 3, dev, channels_last=True)(xb)\n"
            "m = torch.nn.Conv2d(3, 4, 3).to(dev, memory_format=torch.channels_last)\n"
            "with autocast(dev, 'bf16'):\n"
            "    out = m(xn)\n"
            "print(det, torch.backends.cudnn.benchmark, b.x.device.type, xb.device.type,\n"
            "      xn.is_contiguous(memory_format=torch.channels_last), out.dtype)\n",
        ],
        capture_output=True,
        text=True,
        env=cuda_env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True", "cuda", "cuda", "True", "torch.bfloat16"]


@pytest.mark.parametrize(("setting", "nhwc"), [(None, True), (False, False), (True, True)])
def test_a_cpu_run_is_channels_last_unless_told_otherwise(
    tmp_path: Path, setting: bool | None, nhwc: bool
) -> None:
    """`trainer.channels_last: null` is on for a CPU: the model's convolutions and the
    normalized batches are NHWC; `false` keeps NCHW. The layout changes only the kernels'
    summation order: the same weights give the same scores to float rounding."""
    from regx.engine.device import use_channels_last

    value = "null" if setting is None else str(setting).lower()
    trainer = _trainer(tmp_path, [*SYNTH32, f"trainer.channels_last={value}"])
    assert use_channels_last(setting, torch.device("cpu")) is nhwc
    assert use_channels_last(setting, torch.device("cuda")) is bool(setting)
    convs = [m.weight for m in trainer.model.modules() if isinstance(m, torch.nn.Conv2d)]
    layout = torch.channels_last if nhwc else torch.contiguous_format
    assert convs and all(w.is_contiguous(memory_format=layout) for w in convs)
    xb, _, _ = next(iter(trainer.batches.epoch(0)))
    x = trainer.normalize(xb)
    assert x.is_contiguous(memory_format=layout)
    nchw = _trainer(tmp_path / "nchw", [*SYNTH32, "trainer.channels_last=false"])
    trainer.model.eval()
    nchw.model.eval()
    with torch.no_grad():
        scores, expected = trainer.model(x), nchw.model(nchw.normalize(xb))
    torch.testing.assert_close(scores, expected, atol=1e-5, rtol=1e-5)
