"""Continuing a run: the checkpoint it resumes from, refused if another config wrote it."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from regx.engine.checkpoint import RESUME_FIX, load_checkpoint
from regx.engine.files import put_back_hydra_files
from regx.engine.spec import RunSpec
from regx.errors import DataError, ResumeMismatchError
from regx.keys import config_differences, config_hash

# what `Trainer.restore_from` reads from last.pt
RESUME_KEYS = ("model", "optimizer", "scheduler", "scaler", "loss", "train_state", "rng")


def read_resume_checkpoint(
    spec: RunSpec, run_dir: Path, path: Path | None = None
) -> dict[str, Any] | None:
    """The checkpoint a run continues from, or None for a fresh start.

    With `trainer.resume=auto` that is `checkpoints/last.pt` in the run dir, if present.
    It must come from a config with the same identity keys (regx.keys); otherwise the
    resume is refused with the differing settings, and the run's .hydra/ files, which
    Hydra has already overwritten with this command's config, are put back.
    """
    if path is None:
        path = run_dir / "checkpoints" / "last.pt"
        if spec.trainer.resume != "auto" or not path.is_file():
            return None
    ckpt = load_checkpoint(path, map_location="cpu", fix=RESUME_FIX)
    missing = [key for key in RESUME_KEYS if key not in ckpt]
    if missing:
        raise DataError(
            f"checkpoint {path} is no regx training checkpoint (it lacks {', '.join(missing)}): "
            f"{RESUME_FIX}"
        )
    if "config" in ckpt:
        differences = config_differences(ckpt["config"], spec.config)
    elif ckpt.get("config_hash") != config_hash(spec.config):
        differences = [f"config hash {ckpt.get('config_hash')} → {config_hash(spec.config)}"]
    else:
        differences = []
    if differences:
        put_back_hydra_files(run_dir, ckpt.get("hydra_files") or {})
        raise ResumeMismatchError(
            "trainer.resume",
            spec.trainer.resume,
            f"{path} was written with a different config ({'; '.join(differences)}): "
            "its .hydra/ files were put back as the run wrote them; "
            f"re-run with the run's own overrides (regx train --resume {shlex.quote(str(run_dir))}), "
            "use another run dir, or pass trainer.resume=never to start this one over",
        )
    return ckpt
