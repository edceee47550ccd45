"""The `regx` command: help without torch, Hydra pass-through, run dirs, one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TINY = ["dataset=synthetic", "trainer=smoke", "trainer.epochs=1", "trainer.progress=false"]


def test_help_does_not_import_torch_or_hydra():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from regx.cli import app\n"
        "r = CliRunner()\n"
        "assert r.invoke(app, ['--help']).exit_code == 0\n"
        "out = r.invoke(app, ['train', '--help'])\n"
        "assert out.exit_code == 0 and 'Hydra' in out.output, out.output\n"
        "print(sorted(m for m in ('torch', 'hydra', 'matplotlib', 'sklearn') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_bare_regx_prints_help(cli):
    result = cli()
    assert result.returncode == 0
    assert "Usage" in result.stdout and "train" in result.stdout


def _run_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob(".hydra") if p.is_dir())


def test_single_run_prints_its_dir_and_writes_the_spec_files(cli, tmp_path):
    result = cli("train", *TINY)
    assert result.returncode == 0, result.stderr
    (run_dir,) = _run_dirs(tmp_path / "outputs" / "runs")
    assert f"run dir: {run_dir}" in result.stdout
    for name in (
        "metrics.csv",
        "summary.json",
        "predictions.npz",
        "report.md",
        "reliability.png",
        "confidence.png",
        "train.log",
        "checkpoints/last.pt",
        "checkpoints/best.pt",
        ".hydra/config.yaml",
        ".hydra/overrides.yaml",
    ):
        assert (run_dir / name).is_file(), name
    assert "epoch   1/1" in (run_dir / "train.log").read_text()


def test_multirun_writes_one_dir_per_job(cli, tmp_path):
    result = cli("train", "-m", "seed=0,1", *TINY)
    assert result.returncode == 0, result.stderr
    dirs = _run_dirs(tmp_path / "outputs" / "multirun")
    assert [d.name for d in dirs] == ["0", "1"]
    for d in dirs:
        assert (d / "summary.json").is_file() and (d / "predictions.npz").is_file()
    assert "seed=1" in (dirs[1] / ".hydra" / "overrides.yaml").read_text()


def test_hydra_flags_pass_through(cli, tmp_path):
    result = cli("train", "--cfg", "job", "loss=ce", "seed=5")
    assert result.returncode == 0, result.stderr
    assert "seed: 5" in result.stdout and "_target_: regx.losses.ce.CrossEntropy" in result.stdout
    assert not (tmp_path / "outputs").exists()  # printing the config trains nothing
    info = cli("train", "--info", "defaults")
    assert info.returncode == 0 and "dataset/digits" in info.stdout


def test_config_errors_are_one_line_exit_2(cli):
    for args, expected in [
        (["loss.nope=1"], "Could not override 'loss.nope'"),
        (["trainer.epochs=-1"], "trainer.epochs=-1: must be in [1, inf)"),
        (["dataset=nope"], "Available options in 'dataset': cifar10, cifar100, digits"),
    ]:
        result = cli("train", *args)
        assert result.returncode == 2, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], (args, result.stderr)
        assert "Traceback" not in result.stderr + result.stdout


def test_offline_torchvision_dataset_fails_in_one_line(cli, tmp_path):
    result = cli(
        "train", "dataset=cifar10", f"dataset.root={tmp_path}/c10", "dataset.download=false"
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cifar-10-batches-py" in lines[0], result.stderr
