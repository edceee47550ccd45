"""Folders a run reads that its config may name relative to where it was launched, and the
overrides that train a run again in its own folder (`regx train --resume RUN`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

PATH_KEYS = ("dataset.root", "dataset.cache_dir")  # folders a run reads, maybe relative


def anchored_paths(run_dir: Path) -> dict[str, str]:
    """{key: absolute folder} for the run's relative PATH_KEYS, anchored at the folder its
    first launch ran in (.hydra/hydra.yaml's runtime.cwd): evaluating or resuming the run
    from another folder reads the same data. Empty where nothing is relative or unknown."""
    import yaml

    try:
        config = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text()) or {}
        hydra = yaml.safe_load((run_dir / ".hydra" / "hydra.yaml").read_text()) or {}
        launched_in = hydra["hydra"]["runtime"]["cwd"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return {}
    anchored = {}
    for key in PATH_KEYS:
        value: Any = config
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, str) and value and "${" not in value and not Path(value).is_absolute():
            anchored[key] = os.path.normpath(Path(str(launched_in)) / Path(value).expanduser())
    return anchored


def resume_args(run_dir: Path) -> list[str]:
    """The overrides that made `run_dir`, plus hydra.run.dir pointing back at it."""
    import yaml

    from regx.app.torchrun import quote_override_value
    from regx.errors import UserError

    overrides_file = run_dir / ".hydra" / "overrides.yaml"
    if not run_dir.exists():
        raise UserError(f"--resume {run_dir}: no such folder; pass the run's directory")
    if not overrides_file.is_file():
        raise UserError(
            f"{run_dir} is not a regx run directory (no .hydra/overrides.yaml); "
            "pass the folder that holds the run's .hydra/"
        )
    try:
        overrides = yaml.safe_load(overrides_file.read_text())
    except (OSError, ValueError, yaml.YAMLError) as e:
        reason = " ".join(str(getattr(e, "problem", None) or e).split()) or type(e).__name__
        raise UserError(
            f"{overrides_file} is unreadable ({reason}); it lists the overrides the run was "
            "made with: put them back as a YAML list (e.g. - loss=gamma_ce), or train a new run"
        ) from None
    overrides = [] if overrides is None else overrides
    if not isinstance(overrides, list) or not all(
        isinstance(o, (str, int, float)) for o in overrides
    ):
        raise UserError(
            f"{overrides_file} holds no list of overrides ({type(overrides).__name__}); "
            "put them back as a YAML list (e.g. - loss=gamma_ce), or train a new run"
        )
    # a relative dataset.root means the folder the run was launched in, not this one
    anchored = [f"{k}={quote_override_value(v)}" for k, v in anchored_paths(run_dir).items()]
    return [
        *(str(o) for o in overrides),
        *anchored,
        f"hydra.run.dir={quote_override_value(str(run_dir))}",
    ]
