"""Where the Hydra configs live: `regx/conf` in a wheel, `<repo>/conf` in an editable install."""

from __future__ import annotations

from pathlib import Path


def config_dir() -> Path:
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "conf", package.parent.parent / "conf"):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise FileNotFoundError(
        f"regx's configs are missing (looked in {package / 'conf'} and {package.parent.parent / 'conf'}); "
        "reinstall regx"
    )
