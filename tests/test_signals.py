"""SIGINT/SIGTERM: finish the step, write checkpoint and summary (`interrupted`), exit 130/143.

The signals come from inside the run (a loss plugin sends them to its own process at a
chosen step), so the step they land in is exact. A guard handler stands in for pytest's
own while a test runs: if regx failed to install its handlers, the guard records the
signal instead of ending the test session, and the test fails.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from fault_helpers import error_line, hydra_in_process, metric_rows, read_summary
from regx.engine.signals import InterruptOutsideTraining, StopRequest, interrupt_exit
from regx.errors import Interrupted, RunAborted

SMALL = ["dataset=synthetic", "trainer.epochs=3", "trainer.batch_size=64"]
STEPS_PER_EPOCH = 7  # 460 training images of the synthetic set, batches of 64


@pytest.fixture
def stray_signals() -> Iterator[list[int]]:
    seen: list[int] = []
    previous = {s: signal.signal(s, lambda n, f: seen.append(n)) for s in (2, 15)}
    yield seen
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def plugin(step: int, marker: Path, signum: int, times: int = 1) -> list[str]:
    return [
        "loss._target_=fault_plugins.SignalAtStep",
        f"+loss.step={step}",
        f"+loss.marker={marker}",
        f"+loss.signum={signum}",
        f"+loss.times={times}",
    ]


def test_sigint_mid_epoch_checkpoints_the_step_and_exits_130(
    tmp_path: Path, stray_signals: list[int]
) -> None:
    run_dir = tmp_path / "run"
    before = signal.getsignal(signal.SIGINT)
    code, out, err = hydra_in_process(
        [*SMALL, *plugin(STEPS_PER_EPOCH + 3, tmp_path / "fired", 2), f"hydra.run.dir={run_dir}"]
    )
    line = error_line(err)
    assert code == 130, err
    assert line == (
        f"error: interrupted by SIGINT at epoch 2, step 3/{STEPS_PER_EPOCH}: checkpoint "
        f"{run_dir / 'checkpoints' / 'last.pt'} saved; continue with: "
        f"regx train --resume {run_dir}"
    )
    assert "Traceback" not in out
    assert stray_signals == []
    assert signal.getsignal(signal.SIGINT) is before  # regx's handler is gone again

    summary = read_summary(run_dir)
    assert summary["status"] == "interrupted"
    assert summary["message"] == line.removeprefix("error: ")
    assert summary["epochs_run"] == 1
    assert [row["epoch"] for row in metric_rows(run_dir)] == ["1"]
    ckpt = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)
    assert ckpt["data_order"] == {"seed": 0, "epoch": 1, "step": 3}
    paused = ckpt["train_state"]["paused"]
    assert (paused["epoch"], paused["next_step"], paused["sums"]["seen"]) == (1, 3, 3 * 64)
    # the optimizer really took the 3 steps of epoch 2: 7 + 3 scheduler steps in all
    assert ckpt["scheduler"]["last_epoch"] == STEPS_PER_EPOCH + 3


def test_sigterm_on_the_last_step_of_an_epoch_stops_at_its_end_with_143(
    tmp_path: Path, stray_signals: list[int]
) -> None:
    run_dir = tmp_path / "run"
    code, _, err = hydra_in_process(
        [*SMALL, *plugin(STEPS_PER_EPOCH, tmp_path / "fired", 15), f"hydra.run.dir={run_dir}"]
    )
    line = error_line(err)
    assert code == 143, err
    assert line.startswith("error: interrupted by SIGTERM at the end of epoch 1: checkpoint ")
    assert stray_signals == []
    assert read_summary(run_dir)["status"] == "interrupted"
    ckpt = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)
    assert ckpt["train_state"]["paused"] is None
    assert ckpt["train_state"]["epoch"] == 1
    assert len(metric_rows(run_dir)) == 1


def test_a_signal_while_the_trained_model_is_scored_stops_there_and_resume_scores_it(
    tmp_path: Path, stray_signals: list[int]
) -> None:
    """Scoring has no step boundary: the signal stops it where it is (exit 143, summary
    `interrupted`), and `--resume` of the fully trained run only scores it."""
    from run_dir_helpers import resume_in_process

    run_dir = tmp_path / "run"
    # training takes 3 · 7 loss calls, the validation passes none; call 30 is in the
    # between-sample diagnostics, whose input gradients use the run's loss
    args = [*SMALL, *plugin(30, tmp_path / "fired", 15), "between.pairs=3000"]
    code, _, err = hydra_in_process([*args, f"hydra.run.dir={run_dir}"])
    line = error_line(err)
    assert code == 143, err
    assert line == (
        "error: interrupted by SIGTERM at the scoring after training: checkpoint "
        f"{run_dir / 'checkpoints' / 'last.pt'} saved; continue with: "
        f"regx train --resume {run_dir}"
    )
    summary = read_summary(run_dir)
    assert (summary["status"], summary["epochs_run"]) == ("interrupted", 3)
    assert stray_signals == []
    code, _, err = resume_in_process(run_dir)
    assert code == 0, err
    summary = read_summary(run_dir)
    assert (summary["status"], summary["epochs_run"]) == ("finished", 3)
    assert summary["between"]["pairs"] == 3000
    assert len(metric_rows(run_dir)) == 3


def test_second_signal_aborts_at_once_without_writing(
    tmp_path: Path, stray_signals: list[int]
) -> None:
    run_dir = tmp_path / "run"
    step = STEPS_PER_EPOCH + 2  # epoch 2: last.pt of epoch 1 exists
    code, out, err = hydra_in_process(
        [*SMALL, *plugin(step, tmp_path / "fired", 15, times=2), f"hydra.run.dir={run_dir}"]
    )
    line = error_line(err)
    assert code == 143, err
    assert line == "error: aborted by a second signal (SIGTERM); files already written are kept"
    assert "Traceback" not in out
    assert stray_signals == []
    # nothing was written after the abort: summary still says running, last.pt is epoch 1's
    assert read_summary(run_dir)["status"] == "running"
    ckpt = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)
    assert ckpt["train_state"]["epoch"] == 1 and ckpt["train_state"]["paused"] is None


def test_a_signal_stops_the_whole_sweep(tmp_path: Path, stray_signals: list[int]) -> None:
    sweep_dir = tmp_path / "sweep"
    code, _, err = hydra_in_process(
        [
            "-m",
            *SMALL,
            *plugin(2, tmp_path / "fired", 2),
            "seed=0,1",
            f"hydra.sweep.dir={sweep_dir}",
        ]
    )
    line = error_line(err)
    assert code == 130, err
    assert re.match(r"error: interrupted by SIGINT at epoch 1, step 2/7: ", line), line
    assert read_summary(sweep_dir / "0")["status"] == "interrupted"
    assert not (sweep_dir / "1").exists()  # the second job never started
    assert stray_signals == []


@pytest.mark.parametrize("delay", [0.5, 1.5, 3.0])
def test_ctrl_c_at_any_point_of_a_starting_run_exits_130_with_one_line(
    tmp_path: Path, delay: float
) -> None:
    """Wherever the signal lands: importing Hydra or torch (where a KeyboardInterrupt can be
    swallowed, or make the interpreter abort at exit), composing, loading data, training."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("REGX_DEBUG", None)
    proc = subprocess.Popen(
        # epochs enough that the run cannot finish before the signal on any machine
        [sys.executable, "-m", "regx", "train", "dataset=synthetic", "trainer.epochs=500"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    # outside training: "error: interrupted (SIGINT); …"; in it: "error: interrupted by SIGINT at …"
    assert error_line(stderr).startswith("error: interrupted"), stderr


@pytest.fixture
def handlers_restored() -> Iterator[None]:
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    hook = sys.unraisablehook
    yield
    for sig, handler in previous.items():
        signal.signal(sig, handler)
    sys.unraisablehook = hook


def test_outside_training_a_signal_raises_interrupted_with_its_exit_code(
    handlers_restored: None,
) -> None:
    handler = InterruptOutsideTraining().install()
    with pytest.raises(Interrupted) as raised, handler.raising():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    assert (raised.value.signum, raised.value.exit_code, handler.signum) == (15, 143, 15)
    assert interrupt_exit(raised.value) == (
        143,
        "error: interrupted (SIGTERM); files already written are kept",
    )
    assert interrupt_exit(KeyboardInterrupt()) == (
        130,
        "error: interrupted (SIGINT); files already written are kept",
    )
    assert interrupt_exit(RunAborted(2)) == (
        130,
        "error: aborted by a second signal (SIGINT); files already written are kept",
    )


def test_a_signal_while_typer_parses_is_kept_until_the_command_body_begins(
    handlers_restored: None,
) -> None:
    handler = InterruptOutsideTraining().install()
    os.kill(os.getpid(), signal.SIGINT)  # outside raising(): only remembered
    time.sleep(0.1)
    assert handler.signum == signal.SIGINT and not handler.command_ran
    with pytest.raises(Interrupted) as raised, handler.raising():
        raise AssertionError("the body must not start")
    assert raised.value.signum == signal.SIGINT and handler.command_ran


def test_a_signal_inside_an_import_leaves_at_once_so_no_module_is_left_half_built(
    tmp_path: Path,
) -> None:
    (tmp_path / "slow_to_import.py").write_text(
        "import os, signal, time\nos.kill(os.getpid(), signal.SIGINT)\ntime.sleep(5)\n"
    )
    script = (
        "from regx.engine.signals import InterruptOutsideTraining\n"
        "handler = InterruptOutsideTraining().install()\n"
        "print('before the import')\n"  # block-buffered (a pipe): flushed before leaving
        "with handler.raising():\n"
        "    try:\n"  # what a library did with the KeyboardInterrupt of a failed import
        "        import slow_to_import\n"
        "    except KeyboardInterrupt:\n"
        "        print('swallowed, going on with a half-built module')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    assert (proc.returncode, proc.stdout) == (130, "before the import\n")
    assert proc.stderr == "error: interrupted (SIGINT); files already written are kept\n"


def test_leaving_mid_import_runs_the_cleanups_of_the_blocks_it_leaves(tmp_path: Path) -> None:
    """A job interrupted inside an import (no exception reaches its `except`) still
    releases its run dir: the cleanup registered for the block runs, the finished one not."""
    (tmp_path / "slow_to_import.py").write_text(
        "import os, signal, time\nos.kill(os.getpid(), signal.SIGTERM)\ntime.sleep(5)\n"
    )
    script = (
        "from pathlib import Path\n"
        "from regx.engine.signals import InterruptOutsideTraining, before_leaving_mid_import\n"
        "handler = InterruptOutsideTraining().install()\n"
        "with handler.raising():\n"
        "    with before_leaving_mid_import(lambda: Path('done').write_text('no')):\n"
        "        pass\n"
        "    with before_leaving_mid_import(lambda: Path('released').write_text('yes')):\n"
        "        import slow_to_import\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert proc.returncode == 143, proc.stderr
    assert (tmp_path / "released").read_text() == "yes"
    assert not (tmp_path / "done").exists()


def test_a_signal_swallowed_before_training_stops_training_at_its_first_step(
    handlers_restored: None, capsys: pytest.CaptureFixture[str]
) -> None:
    handler = InterruptOutsideTraining().install()
    with StopRequest() as stop:
        assert not stop.requested  # no signal yet

    class SignalledWhileCollected:
        # Python swallows what __del__ raises; so did an import under torch's
        def __del__(self) -> None:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)

    with handler.raising():
        SignalledWhileCollected()
    assert capsys.readouterr().err == ""  # no "Exception ignored in …" traceback
    with StopRequest() as stop:
        assert stop.requested and stop.signal_name == "SIGINT"
    assert signal.getsignal(signal.SIGINT) is handler
    handler.release()
    assert signal.getsignal(signal.SIGINT) is signal.SIG_DFL


def test_leave_now_flushes_what_was_printed_and_exits_with_the_code() -> None:
    script = (
        "from regx.engine.signals import leave_now\n"
        "print('printed before leaving')\n"  # block-buffered (a pipe): leave_now flushes it
        "leave_now(143)\n"
        "print('never reached')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (143, "printed before leaving\n", "")


def test_a_signal_that_broke_the_composition_ends_as_an_interrupt(
    capsys: pytest.CaptureFixture[str], handlers_restored: None
) -> None:
    """Ctrl-C landing inside OmegaConf while Hydra composes can surface as an error of
    OmegaConf's own ("ConfigKeyError: 'NoneType' object has no attribute …"): with a signal
    remembered, that failure ends as the interrupt, one line and 130, and Hydra's held text
    is not shown; without one, the held error is condensed as before."""
    import io

    from regx.app.hydra_task import StderrGate, _exit_code

    def gate_holding(text: str) -> StderrGate:
        gate = StderrGate(io.StringIO())
        gate.write(text)
        return gate

    held = "Error merging override x\nConfigKeyError: 'NoneType' object has no attribute '_f'\n"
    handler = InterruptOutsideTraining().install()
    assert _exit_code(1, gate_holding(held), ["x=1"]) == 2  # no signal: Hydra's error
    assert "ConfigKeyError" in capsys.readouterr().err
    handler.signum = signal.SIGINT
    assert _exit_code(1, gate_holding(held), ["x=1"]) == 130
    err = capsys.readouterr().err
    assert err == "error: interrupted (SIGINT); files already written are kept\n"
    assert _exit_code(0, gate_holding(""), []) == 0  # a command that succeeded stays so
    assert _exit_code(130, gate_holding(""), []) == 130  # already the interrupt's own line
    assert capsys.readouterr().err == ""


def test_a_signal_before_training_leaves_no_run_dir_and_no_lock(tmp_path: Path) -> None:
    """SIGTERM while the split is made (the run dir and its lock exist, training has not
    begun): one line, 143, and the dir is removed as after any failure there."""
    from fault_helpers import regx_process

    run_dir = tmp_path / "out" / "run"
    args = [*SMALL, "split._target_=fault_plugins.SignalWhileSplitting", f"hydra.run.dir={run_dir}"]
    proc = regx_process(["train", *args], cwd=tmp_path)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, err
    assert error_line(err) == "error: interrupted (SIGTERM); files already written are kept"
    assert not run_dir.exists()


def test_a_signal_after_summary_json_says_finished_keeps_the_finished_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scoring's window for a signal ends where summary.json is written: a signal in
    the instant after that leaves the finished record as it is."""
    import json

    import regx.engine.run as run_module
    from conftest import compose_config
    from regx.config.build import build_spec
    from regx.errors import RunInterrupted

    finished = {"status": "finished", "test": {"acc": 0.5}}

    def finalize_then_signal(trainer, *args, **kwargs):
        (trainer.run_dir / "summary.json").write_text(json.dumps(finished))
        raise RunInterrupted("interrupted by SIGTERM at the scoring after training", 15)

    monkeypatch.setattr(run_module, "finalize_run", finalize_then_signal)
    spec = build_spec(compose_config([*SMALL, "trainer.epochs=1", "trainer=smoke"]))
    assert run_module.train(spec, tmp_path / "run") == finished
    assert json.loads((tmp_path / "run" / "summary.json").read_text()) == finished


CALLBACK = "+hydra.callbacks.signal._target_=fault_callbacks.SignalBeforeJob"


@pytest.mark.parametrize("inside_import", [False, True])
def test_a_signal_before_the_job_body_leaves_no_run_dir(
    tmp_path: Path, inside_import: bool
) -> None:
    """SIGTERM after Hydra has made the run dir and written .hydra/ and train.log, before
    regx's job body (and its own cleanup) runs: also no run dir, nor the folders Hydra made
    above it up to out_dir; the same when the signal lands inside an import."""
    from fault_helpers import regx_process

    out_dir = tmp_path / "out"
    args = [*SMALL, f"out_dir={out_dir}", CALLBACK]
    if inside_import:
        args.append("+hydra.callbacks.signal.inside_import=true")
    proc = regx_process(["train", *args], cwd=tmp_path)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, err
    assert error_line(err) == "error: interrupted (SIGTERM); files already written are kept"
    assert not out_dir.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing in the working dir


def test_a_signal_before_a_resumed_jobs_body_leaves_the_run_as_it_was(tmp_path: Path) -> None:
    """The same window in `regx train --resume RUN`: Hydra has rewritten RUN/.hydra/; the
    run's own files are put back and nothing else changes."""
    from fault_helpers import regx_process

    run_dir = tmp_path / "run"
    code, _, err = hydra_in_process(
        [*SMALL, *plugin(STEPS_PER_EPOCH + 3, tmp_path / "fired", 2), f"hydra.run.dir={run_dir}"]
    )
    assert code == 130, err
    before = {p.relative_to(run_dir): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    proc = regx_process(["train", "--resume", str(run_dir), CALLBACK], cwd=tmp_path)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, err
    assert error_line(err) == "error: interrupted (SIGTERM); files already written are kept"
    after = {p.relative_to(run_dir): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    assert after.keys() == before.keys()
    assert [name for name in before if after[name] != before[name]] == []
