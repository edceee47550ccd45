"""Sweeps through Hydra's plugins: the joblib launcher runs jobs in parallel processes, the
Optuna sweeper searches a space and reports the best trial (a failed run is a failed
trial), an interrupted sweep is completed with `sweep.skip_done=true`, and a missing
plugin ends in one line naming the extra."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from regx.app.sweeps import (
    TrialRecorder,
    finished_run,
    missing_plugin_message,
    objective_direction,
    prefer_regx_plugin_configs,
)
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


def test_optuna_search_prints_the_best_trial_and_its_value_is_the_summarys(cli, tmp_path):
    sweep = tmp_path / "search"
    r = cli(
        "train",
        "-m",
        "hparams_search=gamma_ce_optuna",
        "hydra.sweeper.n_trials=4",
        *SMOKE,
        f"hydra.sweep.dir={sweep}",
    )
    assert r.returncode == 0, r.stderr
    runs = summaries(sweep)
    assert sorted(runs) == [0, 1, 2, 3]
    assert all(s["status"] == "finished" for s in runs.values())
    for job in runs:  # each trial: γ-CE with mixup, γ, lr and α drawn from the space
        cfg = OmegaConf.load(sweep / str(job) / ".hydra" / "config.yaml")
        assert cfg.loss._target_ == "regx.losses.gamma_ce.GammaCrossEntropy"
        assert 0.0 <= cfg.loss.gamma <= 0.9
        assert 0.005 <= cfg.trainer.optimizer.lr <= 0.2
        assert 0.1 <= cfg.aug.alpha <= 2.0
        assert cfg.objective == "val.nll"
    nll = {job: s["val"]["nll"] for job, s in runs.items()}
    best_job = min(nll, key=nll.get)  # objective val.nll: direction auto is minimize
    results = OmegaConf.load(sweep / "optimization_results.yaml")
    assert results.best_value == nll[best_job]  # exactly the value in summary.json
    best_overrides = OmegaConf.load(sweep / str(best_job) / ".hydra" / "overrides.yaml")
    assert {f"{k}={v}" for k, v in results.best_params.items()} <= set(best_overrides)
    assert f"best trial: #{best_job} of 4  val.nll = {nll[best_job]:.6g}" in r.stdout
    assert f"run dir: {sweep / str(best_job)}" in r.stdout


def test_optuna_records_a_failed_run_as_a_failed_trial_and_goes_on(cli, tmp_path):
    sweep = tmp_path / "search"
    r = cli(
        "train",
        "-m",
        "hydra/sweeper=optuna",
        "loss=gamma_ce",
        # γ=1.5 fails validation, so that run returns NaN; the sampler's seed 0 draws
        # 1.5 for the first trial and 0.3 for the second
        "loss.gamma=choice(0.3,1.5)",
        "hydra.sweeper.n_trials=2",
        *SMOKE,
        f"hydra.sweep.dir={sweep}",
    )
    assert r.returncode == 0, r.stderr
    runs = summaries(sweep)
    by_gamma = {
        OmegaConf.load(sweep / str(job) / ".hydra" / "config.yaml").loss.gamma: s
        for job, s in runs.items()
    }
    assert by_gamma[1.5]["status"] == "failed"
    assert by_gamma[0.3]["status"] == "finished"
    failed_job = next(j for j, s in runs.items() if s["status"] == "failed")
    assert failed_job == 0  # the search went on after the failed trial
    assert "Failed experiment: trial" in r.stdout + r.stderr
    results = OmegaConf.load(sweep / "optimization_results.yaml")
    assert results.best_params["loss.gamma"] == 0.3
    assert results.best_value == by_gamma[0.3]["val"]["acc"]  # objective val.acc: maximize


def test_optuna_with_every_trial_failed_ends_in_one_error_line(cli, tmp_path):
    r = cli(
        "train",
        "-m",
        "hydra/sweeper=optuna",
        "loss=gamma_ce",
        "loss.gamma=interval(1.2,1.5)",
        "hydra.sweeper.n_trials=2",
        *SMOKE,
        f"hydra.sweep.dir={tmp_path / 'search'}",
    )
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == (
        f"error: all 2 trials failed; see summary.json in the trials' run dirs under "
        f"{tmp_path / 'search'}"
    )
    assert "Traceback" not in r.stderr


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


def test_objective_direction_follows_the_metric():
    assert objective_direction("auto", "val.nll") == "minimize"
    assert objective_direction("auto", "test.ece") == "minimize"
    assert objective_direction("auto", "val.acc") == "maximize"
    assert objective_direction("auto", "retrieval.recall_at_1") == "maximize"
    assert objective_direction("minimize", "val.acc") == "minimize"


def test_trial_recorder_turns_a_nan_result_into_a_failed_job(tmp_path):
    from hydra.core.utils import JobReturn, JobStatus

    def job(num: int, value: float) -> JobReturn:
        ret = JobReturn(overrides=[f"seed={num}"], status=JobStatus.COMPLETED)
        ret.return_value = value
        ret.hydra_cfg = OmegaConf.create(
            {"hydra": {"runtime": {"output_dir": str(tmp_path / str(num))}}}
        )
        return ret

    class Launcher:
        def launch(self, job_overrides, initial_job_idx):
            return [job(initial_job_idx, 0.5), job(initial_job_idx + 1, float("nan"))]

    recorder = TrialRecorder(Launcher())
    ok, failed = recorder.launch([["seed=4"], ["seed=5"]], initial_job_idx=4)
    assert ok.status == JobStatus.COMPLETED and ok.return_value == 0.5
    assert failed.status == JobStatus.FAILED
    with pytest.raises(
        RuntimeError, match=r"trial 5 .* has no objective value \(no summary.json\)"
    ):
        failed.return_value  # noqa: B018  (reading it raises, as Hydra's JobReturn does)
    assert [(t.job, t.value == t.value) for t in recorder.trials] == [(4, True), (5, False)]


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
        (
            "hydra_plugins.hydra_optuna_sweeper",
            "hparams_search=gamma_ce_optuna",
            "hydra/sweeper=optuna needs the 'hydra-optuna-sweeper' package",
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
        "MissingExtraError(\"hydra/sweeper=optuna needs the 'hydra-optuna-sweeper' package, "
        "which is not installed: pip install 'regx[sweep]'\")"
    )
    assert missing_plugin_message(wrapped) == (
        "hydra/sweeper=optuna needs the 'hydra-optuna-sweeper' package, "
        "which is not installed: pip install 'regx[sweep]'"
    )


def test_best_trial_without_optunas_results_file_is_the_best_recorded(tmp_path, capsys):
    from regx.app.sweeps import Trial, report_best

    trials = [
        Trial(0, ["loss.gamma=0.1"], tmp_path / "0", 0.7),
        Trial(1, ["loss.gamma=0.5"], tmp_path / "1", float("nan")),
        Trial(2, ["loss.gamma=0.9"], tmp_path / "2", 0.4),
    ]
    report_best(trials, tmp_path / "optimization_results.yaml", "val.nll", "minimize")
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "best trial: #2 of 3  val.nll = 0.4"
    assert f"run dir: {tmp_path / '2'}" in out
    report_best(trials, tmp_path / "optimization_results.yaml", "val.acc", "maximize")
    assert capsys.readouterr().out.splitlines()[0] == "best trial: #0 of 3  val.acc = 0.7"


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
    overrides = [f"hydra/launcher={launcher}", "hydra/sweeper=optuna"]
    cfg = compose_config(overrides, return_hydra_config=True)
    node = cfg.hydra.launcher
    assert {k: node[k] for k in keys} == keys
    built = instantiate(node, **instantiate_kwargs())
    assert type(built).__module__.startswith(f"hydra_plugins.hydra_{launcher.split('_')[0]}")
    # regx's Optuna sweeper config, not the plugin's (which has no `direction: auto`)
    assert cfg.hydra.sweeper._target_ == "hydra_plugins.regx_sweepers.optuna_sweeper.OptunaSweeper"
    assert cfg.hydra.sweeper.direction == "auto"
