"""The wheel ships the Hydra configs next to the code, so a non-editable install works."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_wheel_contains_conf_and_finds_it(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("regx-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for conf in REPO.joinpath("conf").rglob("*.yaml"):
        assert f"regx/conf/{conf.relative_to(REPO / 'conf')}" in names
    assert "regx/cli.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "regx = regx.__main__:main" in zipfile.ZipFile(wheel).read(entry_points).decode()

    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    found = subprocess.run(
        [sys.executable, "-c", "from regx.config.paths import config_dir; print(config_dir())"],
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(found.stdout.strip()) == site / "regx" / "conf"
