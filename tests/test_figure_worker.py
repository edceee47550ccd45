"""The report's figure worker (regx.report.figure_worker): the same PNGs as drawn inline,
the worker's errors raised in the run's process, a dead worker's figures drawn inline, no
process left behind — and a real `regx train` drawing its figures through one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from regx.report.figure_worker import FigureWorker, draw_inline
from regx.report.run_plots import plot_confidence, plot_curves, plot_reliability

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the worker is forked (Linux)")

METRICS = {"acc": 0.8, "ece": 0.05, "mce": 0.1, "mean_confidence": 0.85, "overconfidence": 0.05}
SUMMARY = {"test": METRICS, "test_ts": METRICS, "temperature": 1.5}
HISTORY = [
    {"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "train_acc": 0.5, "val_acc": 0.5}
    for e in (1, 2, 3)
]


def figure_jobs(out: Path) -> list[tuple]:
    g = torch.Generator().manual_seed(0)
    probs = torch.randn(200, 5, generator=g).mul(2).softmax(dim=1)
    labels = torch.randint(0, 5, (200,), generator=g)
    return [
        (plot_reliability, out / "reliability.png", probs, probs, labels, 15, SUMMARY),
        (plot_confidence, out / "confidence.png", probs, labels, SUMMARY),
        (plot_curves, out / "curves.png", HISTORY, 2),
    ]


def is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_worker_writes_the_same_pngs_as_inline_drawing_and_leaves_no_process(tmp_path):
    (tmp_path / "inline").mkdir()
    (tmp_path / "worker").mkdir()
    for job in figure_jobs(tmp_path / "inline"):
        draw_inline(*job)
    with FigureWorker() as worker:
        pid = worker.pid
        for job in figure_jobs(tmp_path / "worker"):
            worker.draw(*job)
        worker.wait()
        for name in ("reliability.png", "confidence.png", "curves.png"):
            drawn = (tmp_path / "worker" / name).read_bytes()
            assert drawn[:8] == b"\x89PNG\r\n\x1a\n" and len(drawn) > 5000
            assert drawn == (tmp_path / "inline" / name).read_bytes(), name
    assert worker.pid is None
    with pytest.raises(ChildProcessError):  # reaped by close(): no zombie left
        os.waitpid(pid, os.WNOHANG)


def test_a_figure_that_fails_in_the_worker_raises_in_the_caller_and_the_next_wait_is_clean(
    tmp_path,
):
    with FigureWorker() as worker:
        jobs = figure_jobs(tmp_path)
        worker.draw(jobs[0][0], tmp_path / "missing" / "reliability.png", *jobs[0][2:])
        worker.draw(*jobs[1])
        with pytest.raises(FileNotFoundError, match="missing"):
            worker.wait()
        worker.draw(*jobs[2])
        worker.wait()  # the failure was reported once; the worker goes on
        assert (tmp_path / "curves.png").stat().st_size > 5000
        assert worker.alive


def test_a_worker_killed_mid_report_has_its_figures_drawn_inline(tmp_path):
    worker = FigureWorker()
    pid = worker.pid
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    jobs = figure_jobs(tmp_path)
    try:
        worker.draw(*jobs[0])  # the pipe may still take it: then wait() redraws it
        worker.draw(*jobs[1])
        worker.wait()
    finally:
        worker.close()
    assert not worker.alive
    for name in ("reliability.png", "confidence.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_the_worker_ends_when_its_run_goes_away_without_closing_it(tmp_path):
    """A run killed outright (or os._exit) closes the pipe: the worker must not linger."""
    script = (
        "import os, sys; from regx.report.figure_worker import FigureWorker\n"
        "w = FigureWorker(); print(w.pid, flush=True); os._exit(0)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    pid = int(out.stdout.split()[0])
    deadline = time.monotonic() + 60  # the warm-up may take a few seconds on a busy machine
    while is_running(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not is_running(pid)


def test_regx_train_draws_its_figures_in_the_worker(tmp_path):
    """A fresh process (matplotlib not loaded): the report is drawn by the worker, complete
    before summary.json says finished, and the run's process never loads matplotlib."""
    run_dir = tmp_path / "run"
    probe = (
        "import sys, runpy\n"
        "import regx.engine.scoring as scoring\n"
        "write = scoring.write_run_outputs\n"
        "def checked(*a, **k):\n"
        "    out = write(*a, **k)\n"
        "    print('matplotlib in run process:', 'matplotlib' in sys.modules)\n"
        "    return out\n"
        "scoring.write_run_outputs = checked\n"
        "import regx.engine.run as run; run.write_run_outputs = checked\n"
        "sys.argv = ['regx', *sys.argv[1:]]\n"
        "runpy.run_module('regx', run_name='__main__')\n"
    )
    args = ["train", "dataset=synthetic", "model=mlp", "trainer=smoke", f"hydra.run.dir={run_dir}"]
    proc = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "matplotlib in run process: False" in proc.stdout
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished"
    for name in ("reliability.png", "confidence.png", "curves.png", "between.png"):
        assert (run_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert "![training curves](curves.png)" in (run_dir / "report.md").read_text()


def test_without_a_process_to_fork_the_figures_are_drawn_inline(monkeypatch):
    import matplotlib  # noqa: F401  (loaded: the run's own process draws, no worker)

    assert FigureWorker.start() is None
    monkeypatch.delitem(sys.modules, "matplotlib")  # as in a fresh process; put back after

    def no_fork() -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", no_fork)
    fds = len(os.listdir("/proc/self/fd"))
    assert FigureWorker.start() is None
    assert len(os.listdir("/proc/self/fd")) == fds  # the pipes were closed again
