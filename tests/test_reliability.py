"""Run directories under hostile use: a finished run is never trained into again (with or
without checkpoints, by --resume, hydra.run.dir or a sweep), an existing run keeps its
.hydra/ record, one process per run dir (a lock with stale-lock detection), and sweep
workers stop when their launcher is killed. Each case: the exit code, exactly one `error:`
line, and the run's files byte for byte as before where nothing may change.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fault_helpers import FAST, error_line, hydra_in_process, read_summary
from run_dir_helpers import TINY, copy_run, make_finished_run, resume_in_process, tree


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_finished_run(tmp_path_factory)


# -- a finished run is never overwritten --------------------------------------------------------
@pytest.mark.parametrize("checkpoints", [True, False], ids=["with-checkpoints", "without"])
@pytest.mark.parametrize("how", ["resume", "run-dir"])
def test_a_finished_run_is_never_trained_into_again(
    finished: Path, tmp_path: Path, how: str, checkpoints: bool
) -> None:
    run_dir = copy_run(finished, tmp_path / "run")
    if not checkpoints:  # a common disk clean-up
        shutil.rmtree(run_dir / "checkpoints")
    before = tree(run_dir)
    if how == "resume":
        code, _, err = resume_in_process(run_dir)
    else:
        code, _, err = hydra_in_process([*TINY, f"hydra.run.dir={run_dir}"])
    line = error_line(err)
    assert code == 2
    assert line.startswith(f"error: {run_dir} holds a finished run (summary.json: status ")
    assert f"re-score it with: regx evaluate {run_dir}" in line
    assert tree(run_dir) == before  # summary, metrics, report, train.log, .hydra/: untouched


def test_a_sweep_over_finished_jobs_refuses_them_and_keeps_their_files(
    finished: Path, tmp_path: Path
) -> None:
    """Without sweep.skip_done the job is refused; Hydra's rewrite of its .hydra/ is undone."""
    sweep = tmp_path / "sweep"
    copy_run(finished, sweep / "0")
    before = tree(sweep / "0")
    code, _, err = hydra_in_process(["-m", *TINY, "loss=focal", f"hydra.sweep.dir={sweep}"])
    line = error_line(err)
    assert code == 2  # refused before it launches: every job would be refused
    assert "holds 1 finished job(s)" in line and "sweep.skip_done=true" in line
    assert tree(sweep / "0") == before

    code, out, err = hydra_in_process(
        ["-m", *TINY, "sweep.skip_done=true", f"hydra.sweep.dir={sweep}"]
    )
    assert code == 0, err
    assert f"skipped, finished before: {sweep / '0'}" in out
    assert tree(sweep / "0") == before
    # a finished job of another config: refused, and its .hydra/ still describes it
    code, _, err = hydra_in_process(
        ["-m", *TINY, "loss=focal", "sweep.skip_done=true", f"hydra.sweep.dir={sweep}"]
    )
    assert "holds a finished run of another config" in err
    assert code == 1  # the sweep's only job was refused: it did not succeed
    assert tree(sweep / "0") == before


def test_a_bad_value_into_an_interrupted_run_leaves_it_as_it_was(
    finished: Path, tmp_path: Path
) -> None:
    """`hydra.run.dir=RUN trainer.epochs=-1`: the run's .hydra/ must not describe the
    bad command, nor its summary.json say `failed`."""
    run_dir = copy_run(finished, tmp_path / "run", status="running")  # killed outright
    before = tree(run_dir)
    code, _, err = hydra_in_process([*TINY, "trainer.epochs=-1", f"hydra.run.dir={run_dir}"])
    assert code == 2
    assert error_line(err) == "error: trainer.epochs=-1: must be in [1, inf)"
    assert tree(run_dir) == before


def test_resume_refuses_an_edited_config_and_leaves_the_edit(
    finished: Path, tmp_path: Path
) -> None:
    run_dir = copy_run(finished, tmp_path / "run", status="interrupted")
    config = run_dir / ".hydra" / "config.yaml"
    config.write_text(config.read_text().replace("  epochs: 2\n", "  epochs: 5\n"))
    before = tree(run_dir)
    code, _, err = resume_in_process(run_dir)
    line = error_line(err)
    assert code == 2
    assert line.startswith(f"error: {config} was edited (trainer.epochs: 2 → 5), but --resume")
    assert "nothing was changed" in line
    assert tree(run_dir) == before


@pytest.mark.parametrize(
    ("text", "why"),
    [("a: [b\n", "is unreadable ("), ("{a: 1}\n", "holds no list of overrides (dict)")],
    ids=["bad-yaml", "a-mapping"],
)
def test_resume_with_damaged_overrides_is_one_line(
    finished: Path, tmp_path: Path, text: str, why: str
) -> None:
    run_dir = copy_run(finished, tmp_path / "run", status="interrupted")
    (run_dir / ".hydra" / "overrides.yaml").write_text(text)
    before = tree(run_dir)
    code, _, err = resume_in_process(run_dir)
    line = error_line(err)
    assert code == 2
    assert line.startswith(f"error: {run_dir / '.hydra' / 'overrides.yaml'} {why}"), line
    assert tree(run_dir) == before


def test_resume_quotes_a_run_dir_with_a_comma_or_space(tmp_path: Path) -> None:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from regx.app.run_paths import resume_args

    run_dir = tmp_path / "data, here=odd"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "overrides.yaml").write_text("- seed=3\n")
    args = resume_args(run_dir)
    assert args[0] == "seed=3"
    parsed = OverridesParser.create().parse_overrides(args[1:])
    assert parsed[0].key_or_group == "hydra.run.dir" and parsed[0].value() == str(run_dir)


def test_a_folder_that_is_no_run_is_not_made_one(tmp_path: Path) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "report.md").write_text("my notes\n")
    code, _, err = hydra_in_process([*TINY, f"hydra.run.dir={folder}"])
    assert code == 2
    assert error_line(err) == (
        f"error: hydra.run.dir={folder}: the folder exists and holds no regx run (no .hydra/), "
        "and a run would overwrite files there; name a new or empty folder"
    )
    assert tree(folder) == {"report.md": b"my notes\n"}


def test_a_run_dir_that_is_a_file_or_the_working_dir_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.md").write_text("mine\n")
    code, _, err = hydra_in_process([*TINY, "hydra.run.dir=notes.md"])
    assert code == 2
    assert error_line(err) == "error: hydra.run.dir=notes.md: is a file; name a folder for the run"
    code, _, err = hydra_in_process([*TINY, "hydra.run.dir="])  # the working directory
    assert code == 2
    assert error_line(err).startswith(
        "error: hydra.run.dir=: the folder exists and holds no regx run"
    )
    assert tree(tmp_path) == {"notes.md": b"mine\n"}


# -- one process per run dir ----------------------------------------------------------------------
def _lock(run_dir: Path, pid: int, host: str | None = None, start: str | None = None) -> None:
    from regx.app.run_lock import LOCK_NAME, process_start_time

    record = {
        "pid": pid,
        "host": host or platform.node(),
        "start": start or process_start_time(pid),
    }
    (run_dir / LOCK_NAME).write_text(json.dumps(record))


def test_a_run_dir_in_use_is_refused_and_left_alone(finished: Path, tmp_path: Path) -> None:
    run_dir = copy_run(finished, tmp_path / "run", status="running")
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _lock(run_dir, owner.pid)
        # without a last.pt, too: no warning that it would train again, only the refusal
        (run_dir / "checkpoints" / "last.pt").unlink()
        before = tree(run_dir)
        code, _, err = resume_in_process(run_dir)
        assert code == 1
        assert error_line(err) == (
            f"error: {run_dir} is in use by process {owner.pid} (another regx run trains there); "
            f"wait for it to end or stop it (kill {owner.pid}), then run this again"
        )
        assert tree(run_dir) == before
    finally:
        owner.kill()
        owner.wait()


def test_a_stale_lock_is_taken_over_and_released(finished: Path, tmp_path: Path) -> None:
    from regx.app.run_lock import LOCK_NAME

    run_dir = copy_run(finished, tmp_path / "run", status="interrupted")
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    _lock(run_dir, int(gone.stdout))  # a run killed outright left its lock
    code, _, err = resume_in_process(run_dir)
    assert code == 0, err
    assert read_summary(run_dir)["status"] == "finished"
    assert not (run_dir / LOCK_NAME).exists()


def test_lock_owners_alive_gone_recycled_or_elsewhere(tmp_path: Path) -> None:
    from regx.app.run_lock import LOCK_NAME, RunDirBusy, RunLock, owner_is_gone

    me = os.getpid()
    assert owner_is_gone({"pid": me, "host": platform.node(), "start": None}) is False
    assert owner_is_gone({"pid": me, "host": platform.node(), "start": "-1"}) is (
        sys.platform.startswith("linux")  # a recycled pid: another process's start time
    )
    assert owner_is_gone({"pid": me, "host": "another-host"}) is None
    assert owner_is_gone(None) is True  # garbage in the lock file
    (tmp_path / LOCK_NAME).write_text("not json")
    lock = RunLock.acquire(tmp_path)
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == me
    lock.release()
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    _lock(tmp_path, me, host="another-host")
    with pytest.raises(
        RunDirBusy, match=r"on another-host .*if no such process runs there, delete"
    ):
        RunLock.acquire(tmp_path)
    folder = tmp_path / "other"
    (folder / LOCK_NAME).mkdir(parents=True)  # a folder where the lock file belongs
    from regx.errors import UserError

    with pytest.raises(UserError, match=r"is a folder, where regx keeps the run's lock file"):
        RunLock.acquire(folder)
    assert sorted(p.name for p in folder.iterdir()) == [LOCK_NAME]  # nothing left beside it


@pytest.mark.slow
def test_joblib_workers_stop_when_the_launcher_is_killed(tmp_path: Path) -> None:
    """SIGKILL of `regx train -m hydra/launcher=joblib` alone (an OOM killer): its workers
    stop their runs with a checkpoint (status interrupted), release their locks, and start
    no queued job."""
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    sweep = tmp_path / "sweep"
    args = ["train", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *TINY, *FAST]
    args += ["trainer.epochs=5000", "seed=0,1,2,3", f"hydra.sweep.dir={sweep}"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "regx", *args],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the cleanup below ends all of it
    )
    jobs = [sweep / str(j) for j in (0, 1)]
    try:
        deadline = time.monotonic() + 240
        while not all((job / "metrics.csv").exists() for job in jobs):
            assert time.monotonic() < deadline and proc.poll() is None, "the sweep did not start"
            time.sleep(0.1)
        workers = [read_summary(job)["pid"] for job in jobs]  # `running`, with the pid
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 60
        while any(_running(pid) for pid in workers):
            assert time.monotonic() < deadline, "orphaned workers kept running"
            time.sleep(0.1)
        for job in jobs:
            summary = read_summary(job)
            assert summary["status"] == "interrupted", summary
            assert "interrupted by SIGTERM" in summary["message"]
            assert not (job / ".regx-lock").exists()
        time.sleep(2)  # a queued job would start now
        assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1"]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.is_file() and stat.read_text().rpartition(")")[2].split()[0] == "Z")


def test_an_unexpected_error_in_training_leaves_a_failed_run_not_a_running_one(
    monkeypatch, tmp_path: Path
) -> None:
    """A bug keeps its traceback, but the run dir says `failed` and why, so a sweep's report
    and `--resume` do not take it for a live run."""
    from regx.engine.trainer import Trainer

    def broken(self, epoch, progress):
        raise RuntimeError("value cannot be converted to type float without overflow")

    monkeypatch.setattr(Trainer, "train_epoch", broken)
    run_dir = tmp_path / "run"
    code, _, err = hydra_in_process([*TINY, f"hydra.run.dir={run_dir}"])
    assert code == 1 and "overflow" in err
    summary = read_summary(run_dir)
    assert summary["status"] == "failed"
    assert summary["message"] == (
        "internal error: RuntimeError: value cannot be converted to type float without overflow"
    )


def test_resume_without_a_checkpoint_says_it_trains_again(finished: Path, tmp_path: Path) -> None:
    run_dir = copy_run(finished, tmp_path / "run", status="interrupted")
    shutil.rmtree(run_dir / "checkpoints")
    code, _, err = resume_in_process(run_dir)
    assert code == 0, err
    assert (
        f"warning: {run_dir} has no checkpoints/last.pt (the run stopped before its first "
        "checkpoint, or it was deleted): it trains again from epoch 1"
    ) in err.splitlines()
    assert read_summary(run_dir)["status"] == "finished"


def test_a_sweep_into_a_runs_own_folder_is_refused_before_it_starts(
    finished: Path, tmp_path: Path
) -> None:
    run_dir = copy_run(finished, tmp_path / "run")
    before = tree(run_dir)
    code, _, err = hydra_in_process(["-m", *TINY, "seed=0,1", f"hydra.sweep.dir={run_dir}"])
    assert code == 2
    assert error_line(err) == (
        f"error: hydra.sweep.dir={run_dir}: is a run's folder (it holds summary.json or "
        "checkpoints/); name another folder for the sweep's job folders"
    )
    assert tree(run_dir) == before
