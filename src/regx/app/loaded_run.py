"""`regx.load_run(run_dir)`: a finished run's model, ready to embed and classify images.

    import regx
    run = regx.load_run("outputs/runs/2026-12-01/10-00-00-000000-123")
    logits = run.predict(images)     # uint8 (N, C, H, W) → (N, K) float32 logits
    feats = run.embed(images)        # → (N, D) model.features(x), before the head
    run.classes, run.config          # class names, the resolved config

The weights are the run's best (checkpoints/best.pt, else the best weights last.pt keeps),
in eval mode, on `device`; images are normalized with the run's own training statistics
and must have the shape the run trained on. A run that did not finish loads with a
warning. Building the model leaves the caller's random number generators as they were.
"""

from __future__ import annotations

import math
import os
import shlex
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from regx.errors import UserError


@dataclass
class LoadedRun:
    run_dir: Path
    config: dict[str, Any]
    model: torch.nn.Module
    normalize: Any  # regx.data.augment.Normalize
    device: torch.device
    classes: list[str]
    checkpoint: str  # which file the weights came from
    checkpoint_epoch: int | None
    image_shape: tuple[int, int, int]  # (C, H, W) the model trained on
    batch_size: int = 512
    precision: str = "32"

    def _run(self, images: Any) -> tuple[torch.Tensor, torch.Tensor]:
        from regx.engine.predict import predict

        images = self._checked(images)
        logits, feats = predict(
            self.model, images, self.normalize, self.device, self.batch_size, self.precision, True
        )
        return logits.cpu(), feats.cpu()

    def _checked(self, images: Any) -> torch.Tensor:
        """`images` as a uint8 tensor of the trained shape, else a UserError saying what is."""
        try:
            images = torch.as_tensor(images)
        except (TypeError, RuntimeError, ValueError):
            raise UserError(
                f"images must be a uint8 tensor or array (N, C, H, W), got {type(images).__name__}"
            ) from None
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise UserError(
                f"images must be a uint8 tensor (N, C, H, W), got {images.dtype} {tuple(images.shape)}"
            )
        c, h, w = self.image_shape
        got = tuple(images.shape[1:])
        if got != self.image_shape:
            shown = f"(N, {c}, {h}, {w})"
            hint = (
                "; channels last? pass images.permute(0, 3, 1, 2)"
                if got[-1] == c and got[0] != c
                else ": convert or resize them first"
            )
            raise UserError(
                f"images must be {shown}, the shape the run trained on, got "
                f"{tuple(images.shape)}{hint}"
            )
        return images

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Logits (N, K) float32 of uint8 images (N, C, H, W); softmax gives probabilities."""
        return self._run(images)[0]

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Embeddings (N, D) float32: `model.features(x)`, before the head, not normalized."""
        return self._run(images)[1]


def check_run_dir(run_dir: Path, one_run: str) -> None:
    """`run_dir` holds one run, else a UserError saying what it is; `one_run` shows how to
    pass one of a sweep's runs, `{run}` standing for its path (`regx evaluate {run}`)."""
    if (run_dir / ".hydra" / "config.yaml").is_file():
        return
    runs = sorted(
        (p.parent.parent for p in run_dir.glob("*/.hydra/config.yaml")),
        key=lambda p: (len(p.name), p.name),  # 2 before 10
    )
    if runs:
        example = one_run.format(run=shlex.quote(str(runs[0])))
        raise UserError(
            f"{run_dir} is a sweep of {len(runs)} runs, not a run: pass one of them "
            f"(e.g. {example})"
        )
    if not run_dir.exists():
        raise UserError(f"{run_dir}: no such folder; pass a run directory (it holds .hydra/)")
    raise UserError(
        f"{run_dir} is not a regx run directory (no .hydra/config.yaml); "
        "pass the folder that holds the run's .hydra/"
    )


def unfinished_note(run_dir: Path) -> str | None:
    """Why the weights about to be used may not be the run's final best, or None."""
    from regx.engine.files import summary_of

    summary = summary_of(run_dir)
    if summary is None and (run_dir / "summary.json").exists():
        return (
            f"{run_dir / 'summary.json'} is unreadable (not a JSON object): using the best "
            "weights the run saved, with the dataset statistics of its training data"
        )
    status = (summary or {}).get("status", "unknown")
    if status != "finished":
        return (
            f"{run_dir} did not finish (summary.json: status {status}): using the best "
            "weights it saved so far"
        )
    return None


def _dataset_record(run_dir: Path, spec: Any) -> dict[str, Any]:
    """summary.json's `dataset` (shape, classes, mean/std); runs without the statistics
    recorded get them from their training data, loaded as the run loaded it."""
    from regx.engine.files import summary_of
    from regx.engine.scoring import dataset_record

    record = (summary_of(run_dir) or {}).get("dataset")  # a damaged summary: as if absent
    if _complete_record(record):
        return record
    data = spec.dataset.load(seed=spec.seed)
    return dataset_record(data, len(data.train_y), 0)  # the record a run writes


def _complete_record(record: Any) -> bool:
    """Whether summary.json's `dataset` holds everything `load_run` reads, as regx writes it."""
    if not isinstance(record, dict):
        return False
    ints = all(isinstance(record.get(k), int) for k in ("num_classes", "channels", "image_size"))
    lists = all(isinstance(record.get(k), list) and record[k] for k in ("classes", "mean", "std"))
    if not (ints and lists) or len(record["classes"]) != record["num_classes"]:
        return False
    stats = [*record["mean"], *record["std"]]
    same_length = len(record["mean"]) == len(record["std"]) == record["channels"]
    numbers = all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in stats
    )
    return same_length and numbers and all(v > 0 for v in record["std"])


def _image_shape(record: dict[str, Any]) -> tuple[int, int, int]:
    """(C, H, W); square for a summary.json `dataset` without `image_shape`."""
    shape = record.get("image_shape")
    if isinstance(shape, list) and len(shape) == 3 and all(isinstance(v, int) for v in shape):
        return shape[0], shape[1], shape[2]
    return record["channels"], record["image_size"], record["image_size"]


def resolve_load_device(device: Any) -> torch.device:
    """`device` of `load_run` as a torch device this machine has, else one UserError."""
    from regx.config.schema import DEVICE_PATTERN
    from regx.engine.device import resolve_device
    from regx.errors import ConfigError

    name = str(device) if isinstance(device, (str, torch.device)) else None
    try:
        if name is None or not DEVICE_PATTERN.match(name):  # trainer.device's own rule
            raise ValueError
        dev = resolve_device(name)
    except ConfigError as e:
        raise UserError(f"device={name!r}: {e.allowed}") from None
    except (RuntimeError, ValueError):
        raise UserError(
            f"device={device!r} is not a device: pass 'cpu', 'cuda', 'cuda:N', 'mps' or 'auto'"
        ) from None
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise UserError("device='mps': MPS is not available on this machine; use auto or cpu")
    return dev


def load_run(run_dir: Any, device: Any = "cpu") -> LoadedRun:
    """The run's best model in eval mode on `device` (see the module docstring); a run that
    did not finish gives a warning."""
    if isinstance(run_dir, bytes):
        run_dir = os.fsdecode(run_dir)
    if not isinstance(run_dir, (str, os.PathLike)):
        raise UserError(f"run_dir must be a path (str or Path), got {type(run_dir).__name__}")
    run_dir = Path(run_dir).expanduser()
    check_run_dir(run_dir, "regx.load_run('{run}')")
    run = open_run(run_dir, resolve_load_device(device))
    note = unfinished_note(run_dir)
    if note:
        warnings.warn(note, UserWarning, stacklevel=3)  # the caller of regx.load_run
    return run


def open_run(run_dir: Path, dev: torch.device, spec: Any = None) -> LoadedRun:
    """The run's best weights in its model, on `dev`; `run_dir` holds a run. `spec`: the
    run as trained, where the caller has built it already (evaluate), else read here."""
    from regx.data.augment import Normalize
    from regx.engine.device import use_channels_last
    from regx.engine.evaluate import best_weights
    from regx.engine.setup import build_model_for

    if spec is None:
        from regx.config.build import build_spec

        spec = build_spec(trained_config(run_dir))
    weights = best_weights(run_dir)
    ds = _dataset_record(run_dir, spec)
    with torch.random.fork_rng(devices=[]):  # the weights replace the random initialization
        model = build_model_for(spec, ds["num_classes"], ds["channels"], ds["image_size"], dev)
    _load_weights(model, weights)
    s = spec.trainer
    return LoadedRun(
        run_dir=run_dir,
        config=spec.config,
        model=model,
        normalize=Normalize(
            tuple(ds["mean"]), tuple(ds["std"]), dev, use_channels_last(s.channels_last, dev)
        ),
        device=dev,
        classes=list(ds["classes"]),
        checkpoint=weights.source,
        checkpoint_epoch=weights.epoch,
        batch_size=s.eval_batch_size,
        precision=s.precision,
        image_shape=_image_shape(ds),
    )


def trained_config(run_dir: Path) -> Any:
    """The run's .hydra/config.yaml (checked readable) as a DictConfig: relative data
    folders anchored where the run was launched, no trackers (they belong to training)."""
    from omegaconf import OmegaConf

    from regx.app.run_dirs import check_run_files
    from regx.app.run_paths import anchored_paths
    from regx.config import register_resolvers

    check_run_files(run_dir)
    register_resolvers()  # the run's config may use them
    cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    for key, folder in anchored_paths(run_dir).items():  # relative: to where the run began
        OmegaConf.update(cfg, key, folder)
    cfg.logger = None
    return cfg


def _load_weights(model: torch.nn.Module, weights: Any) -> None:
    """The checkpoint's weights into `model` in eval mode; a mismatch names its first detail."""
    try:
        model.load_state_dict(weights.state)
    except (RuntimeError, TypeError, AttributeError) as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        detail = lines[1] if len(lines) > 1 else lines[0] if lines else type(e).__name__
        if len(detail) > 200:
            detail = detail[:200].rsplit(" ", 1)[0] + " …"
        raise UserError(
            f"{weights.source} does not fit the model .hydra/config.yaml describes ({detail}): "
            "was the config edited? copy back .hydra/kept/config.yaml"
        ) from None
    model.eval()
