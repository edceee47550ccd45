"""Helpers of the run-dir reliability tests: one finished tiny run to copy, a byte-for-byte
snapshot of a folder, `regx train --resume` and `regx report/evaluate` in this process."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fault_helpers import FAST, hydra_in_process, read_summary

TINY = ["dataset=synthetic", "model=mlp", "trainer=smoke"]


def make_finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 2-epoch run made by Hydra (with .hydra/ and .hydra/kept/)."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    code, _, err = hydra_in_process([*TINY, f"hydra.run.dir={run_dir}"])
    assert code == 0, err
    return run_dir


def tree(root: Path) -> dict[str, bytes | None]:
    """Every file under `root` with its bytes (folders as None): before == after."""
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(root.rglob("*"))
    }


def copy_run(finished: Path, dest: Path, status: str | None = None) -> Path:
    shutil.copytree(finished, dest)
    if status is not None:  # e.g. an interrupted run whose last.pt is resumed
        summary = read_summary(dest)
        summary["status"] = status
        (dest / "summary.json").write_text(json.dumps(summary))
    return dest


def resume_in_process(run_dir: Path, args: list[str] = ()) -> tuple[int, str, str]:
    """`regx train --resume RUN_DIR ARGS` in this process: (exit code, stdout, stderr)."""
    from regx.app.hydra_task import run_hydra

    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = run_hydra([*args, *FAST], resume=run_dir)
    finally:  # Hydra points the root logger at these streams: put it back
        for handler in root.handlers:
            if handler not in handlers:
                handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)
    return code, out.getvalue(), err.getvalue()


def cli(*args: str) -> tuple[int, str, str]:
    """`regx ARGS` in this process (typer's runner): (exit code, stdout, stderr)."""
    from regx.cli import app

    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr
