"""Interrupted runs continue bit for bit; a resume never mixes two configs; checkpoints are atomic.

The reference is one uninterrupted in-process run (`baseline`); "the same run" is checked by
`fault_helpers.assert_same_run` (summary.json metric fields, metrics.csv without `seconds`,
predictions.npz bytes).
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import threading
from pathlib import Path

import pytest
import torch

from conftest import train_in_process
from fault_helpers import (
    FAST,
    assert_same_run,
    error_line,
    file_identity,
    hydra_in_process,
    metric_fields,
    metric_rows,
    read_summary,
    regx_process,
    wait_for,
)
from regx.engine.files import atomic_write_bytes
from regx.errors import RunInterrupted

# 768 synthetic images: 76 validate, 692 train = 10 steps of 64 per epoch
RUN = ["dataset=synthetic", "dataset.num_train=768", "trainer.epochs=5", "seed=3"]
STEPS_PER_EPOCH = 10


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted run of RUN."""
    run_dir = tmp_path_factory.mktemp("baseline") / "run"
    summary = train_in_process(RUN, run_dir)
    assert summary["status"] == "finished" and summary["epochs_run"] == 5
    return run_dir


def test_sigkill_then_sigterm_then_rerun_matches_the_uninterrupted_run(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """SIGKILL after the first checkpoint; `regx train --resume DIR`, stopped by SIGTERM after
    its own next checkpoint; then the same command again with hydra.run.dir=DIR: the
    three pieces make exactly the uninterrupted run."""
    run_dir = tmp_path / "run"
    last_pt = run_dir / "checkpoints" / "last.pt"
    command = ["train", *RUN, *FAST, f"hydra.run.dir={run_dir}"]

    first = regx_process(command, cwd=tmp_path)
    killer_failure: list[BaseException] = []

    def kill_after_first_checkpoint() -> None:
        try:
            wait_for(last_pt.exists, first, "the first checkpoint")
            first.send_signal(signal.SIGKILL)
        except BaseException as e:  # reported by the main thread
            killer_failure.append(e)

    killer = threading.Thread(target=kill_after_first_checkpoint)
    killer.start()
    reference = request.getfixturevalue("baseline")  # trains meanwhile
    killer.join()
    assert not killer_failure, killer_failure
    first.communicate()
    assert first.returncode == -signal.SIGKILL
    killed = read_summary(run_dir)
    assert killed["status"] == "running"  # what a killed run leaves: not "finished"
    assert killed["pid"] == first.pid  # and which process was running it
    assert 1 <= len(metric_rows(run_dir)) < 5

    second = regx_process(["train", "--resume", str(run_dir)], cwd=tmp_path)
    killed_ckpt = file_identity(last_pt)
    wait_for(
        lambda: file_identity(last_pt) != killed_ckpt, second, "a checkpoint of the resumed run"
    )
    second.send_signal(signal.SIGTERM)
    _, err = second.communicate(timeout=120)
    assert second.returncode == 143, err
    line = error_line(err)
    assert re.fullmatch(
        r"error: interrupted by SIGTERM at (epoch \d, step \d+/10|the end of epoch \d): "
        rf"checkpoint {re.escape(str(last_pt))} saved; continue with: "
        rf"regx train --resume {re.escape(str(run_dir))}",
        line,
    ), line
    assert read_summary(run_dir)["status"] == "interrupted"

    # the same command again (in this process, to spare a third interpreter start)
    code, out, err = hydra_in_process([*RUN, f"hydra.run.dir={run_dir}"])
    assert code == 0, err
    assert "Traceback" not in out + err
    log = (run_dir / "train.log").read_text()
    assert log.count("resumed ") == 2, log
    assert_same_run(run_dir, reference)


def test_sigterm_mid_epoch_then_resume_is_bit_exact(tmp_path: Path, baseline: Path) -> None:
    """A stop inside an epoch checkpoints that step; the resumed run continues the epoch."""
    run_dir = tmp_path / "run"
    stop_at = [
        "loss._target_=fault_plugins.SignalAtStep",
        f"+loss.step={2 * STEPS_PER_EPOCH + 6}",  # epoch 3, step 6
        f"+loss.marker={tmp_path / 'fired'}",
    ]
    with pytest.raises(RunInterrupted) as stopped:
        train_in_process([*RUN, *stop_at], run_dir)
    assert stopped.value.exit_code == 143
    assert f"at epoch 3, step 6/{STEPS_PER_EPOCH}:" in str(stopped.value)
    assert read_summary(run_dir)["status"] == "interrupted"
    assert len(metric_rows(run_dir)) == 2
    ckpt = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)
    assert ckpt["data_order"] == {"seed": 3, "epoch": 2, "step": 6}

    summary = train_in_process([*RUN, *stop_at], run_dir)  # trainer.resume=auto
    assert summary["status"] == "finished"
    assert_same_run(run_dir, baseline)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 2-epoch run made by Hydra (with its .hydra/ folder), seed 0."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    code, _, err = hydra_in_process(
        ["dataset=synthetic", "trainer=smoke", f"hydra.run.dir={run_dir}"]
    )
    assert code == 0, err
    return run_dir


def test_same_seed_same_numbers_other_seed_other_numbers(
    tmp_path: Path, finished_run: Path
) -> None:
    """trainer.deterministic (on for CPU by default): a seed fixes every number of a run,
    whether Hydra ran it or not."""
    smoke = ["dataset=synthetic", "trainer=smoke"]
    same, other = tmp_path / "same", tmp_path / "other"
    summary = train_in_process([*smoke, "seed=0"], same)
    train_in_process([*smoke, "seed=1"], other)
    assert summary["deterministic"] is True
    assert_same_run(same, finished_run)
    assert metric_fields(read_summary(other))["test"] != metric_fields(summary)["test"]


def _interrupted_copy(finished_run: Path, run_dir: Path) -> None:
    """A copy of the finished run that says it was interrupted (a finished run is never
    trained into again, regx.app.run_dirs): its last.pt is the one to resume from."""
    shutil.copytree(finished_run, run_dir)
    summary = read_summary(run_dir)
    summary["status"] = "interrupted"
    (run_dir / "summary.json").write_text(json.dumps(summary))


def _snapshot(run_dir: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(run_dir)): p.read_bytes()
        for p in sorted(run_dir.rglob("*"))
        if p.is_file() and p.name != "train.log"  # the log records the refused attempt
    }


def test_resume_with_another_config_is_refused_and_changes_nothing(
    tmp_path: Path, finished_run: Path
) -> None:
    run_dir = tmp_path / "run"
    _interrupted_copy(finished_run, run_dir)
    before = _snapshot(run_dir)
    code, _, err = hydra_in_process(
        [
            "dataset=synthetic",
            "trainer=smoke",
            "trainer.epochs=3",
            "model=mlp",
            "trainer.progress=true",  # a setting that may change: not reported
            f"hydra.run.dir={run_dir}",
        ]
    )
    line = error_line(err)
    assert code == 2, err
    assert line.startswith(
        f"error: trainer.resume=auto: {run_dir / 'checkpoints' / 'last.pt'} was written with "
        "a different config ("
    ), line
    assert "trainer.epochs: 2 → 3" in line
    assert "model._target_: regx.models.cnn.SmallCNN → regx.models.mlp.MLP" in line
    assert "progress" not in line
    assert f"regx train --resume {run_dir}" in line
    # .hydra/ (which Hydra had overwritten), summary.json, checkpoints: as before
    assert _snapshot(run_dir) == before


def test_resume_by_path_accepts_settings_that_change_no_number(
    tmp_path: Path, finished_run: Path
) -> None:
    """`regx train --resume DIR trainer.eval_batch_size=100` on an interrupted run whose
    last epoch is done: nothing left to train, the final evaluation gives the same figures."""
    from regx.app.hydra_task import run_hydra

    run_dir = tmp_path / "run"
    _interrupted_copy(finished_run, run_dir)
    code = run_hydra(["trainer.eval_batch_size=100", *FAST], resume=run_dir)
    assert code == 0
    assert metric_fields(read_summary(run_dir)) == metric_fields(read_summary(finished_run))


def test_unreadable_checkpoint_is_named_and_kept(tmp_path: Path, finished_run: Path) -> None:
    run_dir = tmp_path / "run"
    _interrupted_copy(finished_run, run_dir)
    last_pt = run_dir / "checkpoints" / "last.pt"
    last_pt.write_bytes(b"half a checkpoint")
    code, _, err = hydra_in_process(
        ["dataset=synthetic", "trainer=smoke", f"hydra.run.dir={run_dir}"]
    )
    line = error_line(err)
    assert code == 3, err
    assert line.startswith(f"error: checkpoint {last_pt} is unreadable (")
    assert line.endswith("delete it to start the run over, or pass trainer.resume=never")
    assert last_pt.read_bytes() == b"half a checkpoint"
    assert read_summary(run_dir)["status"] == "interrupted"


def test_a_failed_write_leaves_the_previous_file_and_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "last.pt"
    atomic_write_bytes(target, lambda f: f.write(b"epoch 1"))

    def crash_halfway(f) -> None:
        f.write(b"epo")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(target, crash_halfway)
    assert target.read_bytes() == b"epoch 1"
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_a_killed_writers_temp_file_goes_with_the_next_write(tmp_path: Path) -> None:
    """SIGKILL mid-save leaves `.last.pt.PID.tmp` (a checkpoint's size); the next save of the
    file removes it, and never a temp file of a writer that still runs."""
    import os
    import subprocess
    import sys

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    stale = tmp_path / f".last.pt.{int(gone.stdout)}.tmp"
    alive = tmp_path / f".last.pt.{os.getppid()}.tmp"  # this test's parent still runs
    other = tmp_path / f".best.pt.{int(gone.stdout)}.tmp"  # another file's: left to its write
    for path in (stale, alive, other):
        path.write_bytes(b"half")
    atomic_write_bytes(tmp_path / "last.pt", lambda f: f.write(b"epoch 2"))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["last.pt", alive.name, other.name])


def test_kept_hydra_files_follow_launches_that_never_trained(tmp_path):
    """.hydra/kept/ is the run's own config: replaced while the folder holds no run files
    (an earlier launch stopped before training), frozen once the run has trained."""
    from regx.app.run_dirs import keep_hydra_files, kept_hydra_files

    hydra = tmp_path / ".hydra"
    hydra.mkdir()
    for loss in ("ce", "focal"):
        (hydra / "config.yaml").write_text(f"loss: {loss}\n")
        keep_hydra_files(tmp_path)
        assert kept_hydra_files(tmp_path) == {"config.yaml": f"loss: {loss}\n"}
    (tmp_path / "metrics.csv").write_text("epoch\n1\n")  # it trained with focal
    (hydra / "config.yaml").write_text("loss: gamma_ce\n")
    keep_hydra_files(tmp_path)
    assert kept_hydra_files(tmp_path) == {"config.yaml": "loss: focal\n"}
