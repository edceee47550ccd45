"""Sweeps through Hydra's plugins: the joblib launcher runs jobs in parallel processes, an
interrupted sweep is completed with `sweep.skip_done=true`, and a missing plugin ends in
one line naming the extra. regx's Optuna search: tests/test_optuna.py."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from regx.app.sweeps import finished_run, missing_plugin_message
from regx.config.hydra_compat import prefer_regx_plugin_configs
from regx.errors import UserError
from regx.keys import config_hash

# one epoch: these tests are about the sweep machinery, not the training
SMOKE = ["trainer=smoke", "trainer.epochs=1", "trainer.progress=false"]


def summaries(sweep_dir: Path) -> dict[int, dict[str, Any]]:
    """summary.json of each job of a sweep, by job number."""
    return {int(p.parent.name): json.loads(p.read_text()) for p in sweep_dir.glob("*/summary.json")}


def test_joblib_runs_the_jobs_in_parallel_processes_with_one_thread_each(cli, tmp_path):
    import joblib

    sweep = tmp_path / "sweep"
    r = cli(
        "train", "-m", "hydra/launcher=joblib", "seed=0,1,2,3", *SMOKE, f"hydra.sweep.dir={sweep}"
    )
    assert r.returncode == 0, r.stderr
    assert "Joblib.Parallel(n_jobs=-1" in r.stdout + r.stderr
    runs = summaries(sweep)
    assert sorted(runs) == [0, 1, 2, 3]
    assert all(s["status"] == "finished" for s in runs.values())
    assert sorted(s["seed"] for s in runs.values()) == [0, 1, 2, 3]
    # one torch thread per job: joblib caps each worker at cores // n_jobs = 1
    assert all(s["device"].endswith(" 1 threads)") for s in runs.values()), runs[0]["device"]
    if joblib.cpu_count() >= 2:
        spans = sorted((s["started"], s["finished"]) for s in runs.values())
        # two jobs at once: a job starts before the one started before it has finished
        assert any(later[0] < earlier[1] for earlier, later in pairwise(spans)), spans
    # `regx report` on the sweep dir lists the 4 runs
    (sweep / "runs.csv").unlink(missing_ok=True)  # written by the end-of-sweep table too
    rep = cli("report", str(sweep))
    assert rep.returncode == 0, rep.stderr
    assert "4 runs (4 finished)" in rep.stdout
    with open(sweep / "runs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted((row["run"], row["status"], row["seed"]) for row in rows) == [
        (str(i), "finished", str(i)) for i in range(4)
    ]


def _popen_regx(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    env.pop("REGX_DEBUG", None)
    return subprocess.Popen(
        [sys.executable, "-m", "regx", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group, killed as a whole below
    )


def test_a_killed_sweep_is_completed_by_skip_done(cli, tmp_path):
    sweep = tmp_path / "sweep"
    args = ["train", "-m", "seed=0,1,2,3", *SMOKE, f"hydra.sweep.dir={sweep}"]
    proc = _popen_regx(args, tmp_path)
    try:
        # the basic launcher runs the jobs one after the other: when job 2's dir appears,
        # jobs 0 and 1 have finished; kill the sweep there, as an OOM killer or a node would
        deadline = time.monotonic() + 240
        while not (sweep / "2").is_dir() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "the sweep ended before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    before = summaries(sweep)
    assert {j for j, s in before.items() if s["status"] == "finished"} == {0, 1}
    kept = {
        (j, name): (sweep / str(j) / name).read_bytes()
        for j in (0, 1)
        for name in ("summary.json", "metrics.csv", "predictions.npz")
    }

    r = cli(*args, "sweep.skip_done=true")
    assert r.returncode == 0, r.stderr
    after = summaries(sweep)
    assert sorted(after) == [0, 1, 2, 3]
    assert all(s["status"] == "finished" for s in after.values())
    assert sorted(s["seed"] for s in after.values()) == [0, 1, 2, 3]
    # the finished jobs were skipped, their files untouched; the other two ran
    assert r.stdout.count("skipped, finished before:") == 2
    for j in (0, 1):
        assert f"skipped, finished before: {sweep / str(j)}" in r.stdout
    for (j, name), content in kept.items():
        assert (sweep / str(j) / name).read_bytes() == content, (j, name)
    trained = [ln for ln in r.stdout.splitlines() if ln.startswith("run dir: ")]
    assert trained == [f"run dir: {sweep / '2'}", f"run dir: {sweep / '3'}"]


def test_a_relaunch_over_finished_jobs_is_refused_before_it_starts_unless_skip_done(cli, tmp_path):
    """Without sweep.skip_done every job would be refused, and the sweep would exit 0 as if
    it had done its work; with it, a job refused for its different config fails the sweep."""
    sweep = tmp_path / "sweep"
    args = ["train", "-m", "seed=0,1", *SMOKE, f"hydra.sweep.dir={sweep}"]
    assert cli(*args).returncode == 0
    files = {p: p.read_bytes() for p in sweep.rglob("*") if p.is_file()}
    r = cli(*args)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines()[-1] == (
        f"error: hydra.sweep.dir={sweep} holds 2 finished job(s) of an earlier launch "
        f"({sweep / '0'} first), which are never trained into again: add "
        "sweep.skip_done=true to reuse them and run the rest, or pass a new hydra.sweep.dir"
    )
    assert {
        p: p.read_bytes() for p in sweep.rglob("*") if p.is_file()
    } == files  # multirun.yaml too

    r = cli(*args, "trainer.epochs=2", "sweep.skip_done=true")  # another config: refused
    assert r.returncode == 1, r.stderr
    assert (
        r.stderr.strip()
        .splitlines()[-1]
        .startswith(f"error: 2 of 2 jobs did not finish ({sweep / '0'} first; ")
    )
    assert all(
        summaries(sweep)[j]["config_hash"]
        == json.loads(files[sweep / str(j) / "summary.json"])["config_hash"]
        for j in (0, 1)
    )
    assert not (sweep / ".regx-jobs").exists()


def test_a_sweep_of_no_job_is_refused(cli, tmp_path):
    sweep = tmp_path / "sweep"
    r = cli("train", "-m", "seed=range(0,0)", *SMOKE, f"hydra.sweep.dir={sweep}")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == (
        "error: the sweep expands to no job (a swept key with no value, e.g. seed=range(0,0)): "
        "give every swept key at least one value"
    )
    assert not sweep.exists()


def _cfg(**top: Any):
    base = {"seed": 0, "loss": {"gamma": 0.5}, "sweep": {"skip_done": True}}
    return OmegaConf.create({**base, **top})


def test_skip_done_reuses_only_a_finished_run_of_the_same_config(tmp_path):
    cfg = _cfg()
    assert finished_run(cfg, tmp_path) is None  # no summary.json yet
    plain = OmegaConf.to_container(cfg, resolve=True)
    summary = {"status": "finished", "config_hash": config_hash(plain), "val": {"acc": 0.9}}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    assert finished_run(cfg, tmp_path) == summary
    assert finished_run(_cfg(sweep={"skip_done": False}), tmp_path) is None
    for status in ("running", "failed", "diverged", "interrupted"):
        (tmp_path / "summary.json").write_text(json.dumps({**summary, "status": status}))
        assert finished_run(cfg, tmp_path) is None, status
    # a finished run of another config in this dir: refused, never overwritten
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(UserError, match="holds a finished run of another config"):
        finished_run(_cfg(seed=1), tmp_path)


@pytest.mark.parametrize(
    ("hidden", "override", "message"),
    [
        (
            "hydra_plugins.hydra_joblib_launcher",
            "hydra/launcher=joblib",
            "hydra/launcher=joblib needs the 'hydra-joblib-launcher' package",
        ),
        (
            "hydra_plugins.hydra_submitit_launcher",
            "hydra/launcher=submitit_slurm",
            "hydra/launcher=submitit_slurm needs the 'hydra-submitit-launcher' package",
        ),
    ],
)
def test_missing_plugin_ends_in_one_line_naming_the_extra(hidden, override, message, cli, tmp_path):
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(f"import sys\nsys.modules[{hidden!r}] = None\n")
    r = cli("train", "-m", override, "seed=0", env={"PYTHONPATH": str(hide)})
    assert r.returncode == 2
    assert (
        r.stderr.strip() == f"error: {message}, which is not installed: pip install 'regx[sweep]'"
    )


def test_missing_plugin_message_only_for_plugins_not_installed():
    error = "RuntimeError: Unknown plugin class : 'hydra_plugins.hydra_joblib_launcher.x.Y'"
    assert missing_plugin_message(error) is None  # installed here: some other problem
    wrapped = (
        "InstantiationException: Error in call to target 'hydra_plugins.regx_sweepers.x':\n"
        "MissingExtraError(\"hydra/sweeper=regx_optuna needs the 'optuna' package, "
        "which is not installed: pip install 'regx[sweep]'\")"
    )
    assert missing_plugin_message(wrapped) == (
        "hydra/sweeper=regx_optuna needs the 'optuna' package, "
        "which is not installed: pip install 'regx[sweep]'"
    )


@pytest.mark.parametrize(
    ("launcher", "keys"),
    [
        ("joblib", {"n_jobs": -1}),
        ("submitit_slurm", {"partition": None, "gpus_per_node": 1, "timeout_min": 60}),
    ],
)
def test_regx_launcher_configs_build_the_plugins_launchers(launcher, keys):
    from hydra.utils import instantiate

    from regx.config import compose_config
    from regx.config.hydra_compat import instantiate_kwargs
    from regx.config.paths import config_dir

    prefer_regx_plugin_configs(config_dir())
    cfg = compose_config([f"hydra/launcher={launcher}"], return_hydra_config=True)
    node = cfg.hydra.launcher
    assert {k: node[k] for k in keys} == keys
    built = instantiate(node, **instantiate_kwargs())
    assert type(built).__module__.startswith(f"hydra_plugins.hydra_{launcher.split('_')[0]}")


def _joblib_sweep(tmp_path: Path, epochs: int) -> tuple[subprocess.Popen, Path]:
    """A 3-job joblib sweep (2 at a time) in its own session, as from a terminal."""
    sweep = tmp_path / "sweep"
    args = [
        "train", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "seed=0,1,2",
        "trainer=smoke", f"trainer.epochs={epochs}", "trainer.progress=false",
        f"hydra.sweep.dir={sweep}",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "REGX_DEBUG")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "regx", *args], cwd=tmp_path, env=env, text=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    return proc, sweep


def _wait_for(proc: subprocess.Popen, ready: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None and not ready():
        time.sleep(0.05)
    assert proc.poll() is None, "the sweep ended before the signal"


def _loky_workers(proc: subprocess.Popen) -> list[int]:
    from regx.processes import child_processes

    return [pid for pid, cmd in child_processes(proc.pid).items() if "popen_loky" in cmd]


@pytest.mark.parametrize(
    ("to_group", "signum"),
    [(False, signal.SIGTERM), (True, signal.SIGINT)],
    ids=["sigterm-to-the-launcher", "ctrl-c-to-the-terminal-s-process-group"],
)
def test_a_signal_to_a_joblib_sweep_stops_every_worker_s_run_with_a_checkpoint(
    tmp_path, to_group, signum
):
    """The launcher passes the stop on to its workers as one SIGTERM each and waits for them
    (joblib would kill them outright); workers ignore the terminal's own SIGINT, which would
    be a second signal and abort the run unsaved. Each run stops after its step, resumable,
    and nothing is left running."""
    from regx.processes import running

    proc, sweep = _joblib_sweep(tmp_path, epochs=5000)
    try:
        _wait_for(
            proc, lambda: all((sweep / j / "checkpoints" / "last.pt").is_file() for j in "01")
        )
        workers = _loky_workers(proc)
        assert len(workers) == 2
        if to_group:
            os.killpg(proc.pid, signum)
        else:
            proc.send_signal(signum)
        _, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 128 + signum, err
    assert err.strip().splitlines()[-1] == (
        f"error: interrupted ({signal.Signals(signum).name}); files already written are kept"
    )
    for job in ("0", "1"):
        summary = json.loads((sweep / job / "summary.json").read_text())
        assert summary["status"] == "interrupted", summary
        assert summary["message"].startswith("interrupted by SIGTERM")
        assert not (sweep / job / ".regx-lock").exists()
    assert not (sweep / "2").exists()  # the queued job never started
    assert [pid for pid in workers if running(pid)] == []  # (a zombie waits for init to reap it)


def test_sigint_while_joblib_workers_start_ends_the_sweep_at_once(tmp_path):
    """A SIGINT to the launcher as its workers start (before any run trains) used to reach
    them as a KeyboardInterrupt, which loky returned as the job's result: the workers took
    the next jobs and the launcher waited for them for minutes."""
    from regx.processes import running

    proc, sweep = _joblib_sweep(tmp_path, epochs=2)
    try:
        _wait_for(proc, lambda: len(_loky_workers(proc)) == 2)
        workers = _loky_workers(proc)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)  # a hang guard: it takes about a second
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        "error: interrupted (SIGINT); files already written are kept"
    )
    statuses = [json.loads(s.read_text())["status"] for s in sweep.glob("*/summary.json")]
    assert "finished" not in statuses  # no job ran to its end after the signal
    assert [pid for pid in workers if running(pid)] == []
