"""Runs never share a directory: microseconds and the process id are in its name."""

from __future__ import annotations

import os
import re
from pathlib import Path

from omegaconf import OmegaConf

from fault_helpers import FAST, metric_rows, read_summary, regx_process
from regx.config import compose_config

RUN_NAME = re.compile(r"\d\d-\d\d-\d\d-(\d{6})-(\d+)")


def test_two_runs_started_together_get_their_own_complete_dirs(tmp_path: Path) -> None:
    args = ["train", "dataset=synthetic", "dataset.num_train=128", "trainer.epochs=1", *FAST]
    runs = [regx_process(args, cwd=tmp_path) for _ in range(2)]  # same instant, same folder
    outputs = [run.communicate(timeout=300) for run in runs]
    for run, (_, err) in zip(runs, outputs):
        assert run.returncode == 0, err

    dirs = sorted((tmp_path / "outputs" / "runs").glob("*/*"))
    assert len(dirs) == 2, dirs
    names = [RUN_NAME.fullmatch(d.name) for d in dirs]
    assert all(names), [d.name for d in dirs]
    assert {m.group(2) for m in names} == {str(run.pid) for run in runs}
    for run, (out, _) in zip(runs, outputs):
        run_dir = next(d for d in dirs if d.name.endswith(f"-{run.pid}"))
        assert f"run dir: {run_dir}" in out  # each process reports its own directory
        summary = read_summary(run_dir)
        assert summary["status"] == "finished" and summary["epochs_run"] == 1
        assert len(metric_rows(run_dir)) == 1
        for name in (
            "predictions.npz",
            "report.md",
            "train.log",
            "checkpoints/last.pt",
            "checkpoints/best.pt",
            ".hydra/overrides.yaml",
        ):
            assert (run_dir / name).stat().st_size > 0, name


def test_run_and_sweep_dir_names_carry_microseconds_and_pid() -> None:
    cfg = compose_config(return_hydra_config=True)
    for key in ("hydra.run.dir", "hydra.sweep.dir"):
        first = Path(OmegaConf.select(cfg, key)).name
        match = RUN_NAME.fullmatch(first)
        assert match, (key, first)
        assert match.group(2) == str(os.getpid())


def test_a_folder_name_the_system_cannot_hold_is_one_line(tmp_path):
    from fault_helpers import error_line, hydra_in_process

    long = tmp_path / ("x" * 300)
    for args, named in (
        ([f"hydra.run.dir={long}/run"], long / "run"),
        (["-m", f"hydra.sweep.dir={long}"], long),
    ):
        code, _, err = hydra_in_process(["trainer=smoke", *args])
        assert code == 2, err
        assert error_line(err) == (
            f"error: {named}: File name too long; name another folder "
            "(hydra.run.dir, hydra.sweep.dir, out_dir or --resume)"
        )
    assert list(tmp_path.iterdir()) == []


def test_commands_in_messages_are_quoted_for_the_shell(tmp_path):
    import shlex

    from regx.app.run_dirs import finished_message

    run_dir = tmp_path / "with space" / "$HOME"
    (run_dir).mkdir(parents=True)
    (run_dir / "summary.json").write_text('{"status": "finished"}')
    line = finished_message(run_dir, "run")
    command = line.split("re-score it with: ")[1].split(" [OVERRIDES")[0]
    assert shlex.split(command) == ["regx", "evaluate", str(run_dir)]
