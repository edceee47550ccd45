"""Folders a run reads that its config may name relative to where it was launched."""

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
