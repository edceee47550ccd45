"""A multirun's progress: `[job k/n done, f failed, ETA …]` on stdout as each job ends
(regx.app.callbacks.SweepProgress), n from the sweep's plan (regx.app.sweeps.sweep_plan),
k numbered through files in the sweep dir so that parallel jobs never share a number."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import joblib
import pytest
from omegaconf import OmegaConf

from regx.app.callbacks import JobMark, claim_mark, duration, progress_line
from regx.app.sweeps import SweepPlan, sweep_plan
from regx.config.hydra_compat import BASIC_SWEEPER

JOBLIB = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
# `++`: added, or set where conf/config.yaml already registers the callback
PROGRESS = "++hydra.callbacks.sweep_progress._target_=regx.app.callbacks.SweepProgress"
SMOKE = ["dataset=synthetic", "model=mlp", "trainer=smoke", "trainer.epochs=1"]
SMOKE += ["trainer.progress=false", "trainer.threads=1", "trainer.checkpoint=false"]
SMOKE += ["calibration.bootstrap=0", "between.pairs=0"]  # the jobs' end: quick
LINE = re.compile(r"^\[job .*\]$", re.M)
ETA = r"ETA (\d+ min )?\d+ s"


def plan(jobs: int | None, parallel: int, tmp_path: Path) -> SweepPlan:
    return SweepPlan(jobs, parallel, tmp_path / ".regx-jobs")


# -- the line -----------------------------------------------------------------------------------
def test_the_eta_is_the_mean_job_time_times_the_jobs_left_over_the_jobs_at_once(tmp_path):
    marks = [JobMark(100.0, False), JobMark(140.0, True), JobMark(60.0, True)]  # mean 100 s
    # 9 jobs left, 2 at a time: 100 · 9 / 2 = 450 s
    assert (
        progress_line(marks, plan(12, 2, tmp_path)) == "[job 3/12 done, 2 failed, ETA 7 min 30 s]"
    )
    # 1 job left: it alone, whatever may run at once: 100 s
    assert progress_line(marks, plan(4, 2, tmp_path)) == "[job 3/4 done, 2 failed, ETA 1 min 40 s]"
    assert progress_line(marks[:1], plan(3, 1, tmp_path)) == "[job 1/3 done, ETA 3 min 20 s]"
    assert progress_line(marks, plan(3, 1, tmp_path)) == "[job 3/3 done, 2 failed]"
    assert progress_line(marks[:1], plan(None, 1, tmp_path)) == "[job 1 done]"
    assert progress_line(marks, plan(2, 1, tmp_path)) == "[job 3 done, 2 failed]"  # n too low


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.4, "0 s"), (42.4, "42 s"), (59.6, "1 min 0 s"), (250, "4 min 10 s"), (7530, "2 h 5 min")],
)
def test_duration(seconds, text):
    assert duration(seconds) == text


def test_jobs_ending_at_once_claim_different_numbers(tmp_path):
    folder = tmp_path / ".regx-jobs"
    seen: list[list[JobMark]] = []
    start = threading.Barrier(8)

    def finish(i: int) -> None:
        start.wait()
        seen.append(claim_mark(folder, JobMark(float(i), i % 2 == 1)))

    threads = [threading.Thread(target=finish, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(len(marks) for marks in seen) == list(range(1, 9))  # k = 1 … 8, once each
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{k}.json" for k in range(1, 9))
    longest = max(seen, key=len)  # job 8's line sees every job: 4 of them failed
    assert sorted(m.seconds for m in longest) == [float(i) for i in range(8)]
    assert sum(m.failed for m in longest) == 4


# -- the plan -----------------------------------------------------------------------------------
def hydra_config(sweeper: dict, launcher: dict, task: list[str], sweep_dir: Path):
    return OmegaConf.create(
        {
            "hydra": {
                "sweep": {"dir": str(sweep_dir)},
                "sweeper": sweeper,
                "launcher": launcher,
                "overrides": {"task": task},
            }
        }
    )


def test_the_basic_sweepers_plan_counts_its_product(tmp_path):
    sweeper = {"_target_": BASIC_SWEEPER, "max_batch_size": None, "params": {"model": "cnn,mlp"}}
    task = ["seed=0,1,2", "trainer=smoke", "loss.gamma=range(0,1,0.5)"]
    cfg = hydra_config(sweeper, {"_target_": JOBLIB, "n_jobs": 4}, task, tmp_path / "s")
    found = sweep_plan(cfg)
    assert (found.jobs, found.parallel) == (2 * 3 * 2, 4)
    assert found.marks == tmp_path / "s" / ".regx-jobs"
    sweeper["max_batch_size"] = 3  # the launcher gets 3 jobs at a time
    assert (
        sweep_plan(
            hydra_config(sweeper, {"_target_": JOBLIB, "n_jobs": 4}, task, tmp_path)
        ).parallel
        == 3
    )
    basic = {"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}
    assert sweep_plan(hydra_config(sweeper, basic, ["seed=0,1"], tmp_path)).jobs == 4
    assert sweep_plan(hydra_config(sweeper, basic, ["seed=0,1"], tmp_path)).parallel == 1


def test_a_searchs_plan_counts_the_trials_not_yet_run(tmp_path):
    sweep_dir = tmp_path / "search"
    for n in (0, 1):  # two trials of an earlier launch
        (sweep_dir / str(n) / ".hydra").mkdir(parents=True)
        (sweep_dir / str(n) / ".hydra" / "config.yaml").write_text("seed: 0\n")
    sweeper = {"_target_": "x.RegxOptunaSweeper", "n_trials": 5, "n_jobs": 8}
    every_core = {"_target_": JOBLIB, "n_jobs": -1}
    found = sweep_plan(hydra_config(sweeper, every_core, ["loss.gamma=interval(0,1)"], sweep_dir))
    assert (found.jobs, found.parallel) == (3, min(joblib.cpu_count(), 3))
    sweeper["n_jobs"] = 1
    assert sweep_plan(hydra_config(sweeper, every_core, [], sweep_dir)).parallel == 1


# -- real sweeps ---------------------------------------------------------------------------------
def test_a_sweep_prints_one_line_per_finished_job(cli, tmp_path):
    sweep = tmp_path / "sweep"
    # job 1 cannot build its optimizer: it fails, the sweep goes on
    r = cli(
        "train",
        "-m",
        "trainer.optimizer.lr=0.05,-1,0.1",
        *SMOKE,
        PROGRESS,
        f"hydra.sweep.dir={sweep}",
    )
    assert r.returncode == 1, r.stderr  # every job ran; one failed: the sweep did not succeed
    lines = LINE.findall(r.stdout)
    assert len(lines) == 3, r.stdout
    assert re.fullmatch(rf"\[job 1/3 done, {ETA}\]", lines[0]), lines
    assert re.fullmatch(rf"\[job 2/3 done, 1 failed, {ETA}\]", lines[1]), lines
    assert lines[2] == "[job 3/3 done, 1 failed]"
    # stderr: the failed job's error line, then the sweep's outcome (after its table)
    assert r.stderr.strip().splitlines() == [
        "error: trainer.optimizer.lr=-1.0: must be in (0, 3.40282e+38]",
        f"error: 1 of 3 jobs did not finish ({sweep / '1'} first; their errors are above); "
        "fix them, then finish the sweep with the same command and sweep.skip_done=true",
    ]
    assert "1 run(s) not finished" in r.stdout and (sweep / "report.md").is_file()
    assert not (sweep / ".regx-jobs").exists()  # the marks go with the sweep's end


def test_parallel_jobs_each_print_their_own_number(cli, tmp_path):
    sweep = tmp_path / "sweep"
    r = cli(
        "train", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "seed=0,1", *SMOKE,
        PROGRESS, f"hydra.sweep.dir={sweep}",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    lines = LINE.findall(r.stdout)
    assert len(lines) == 2, r.stdout
    assert re.fullmatch(rf"\[job 1/2 done, {ETA}\]", lines[0]), lines
    assert lines[1] == "[job 2/2 done]"


def test_a_single_run_prints_no_job_line(tmp_path, capsys):
    from hydra.core.utils import JobReturn, JobStatus

    from regx.app.callbacks import SweepProgress

    config = OmegaConf.create({"hydra": {"runtime": {"output_dir": str(tmp_path)}}})
    callback = SweepProgress()  # as in `regx train`: no on_multirun_start
    callback.on_job_start(config)
    callback.on_job_end(config, JobReturn(status=JobStatus.COMPLETED))
    assert capsys.readouterr() == ("", "") and list(tmp_path.iterdir()) == []


def test_a_sweep_over_an_unresolvable_override_still_counts_its_jobs(cli, tmp_path):
    """The plan reads the overrides as typed: `${nope}` fails in its job, with its key, not
    in the launcher's callback (which Hydra would turn into a warning and no progress)."""
    sweep = tmp_path / "sweep"
    r = cli("train", "-m", *SMOKE, "trainer.epochs=${nope}", PROGRESS, f"hydra.sweep.dir={sweep}")
    assert r.returncode == 1
    assert LINE.findall(r.stdout) == ["[job 1/1 done, 1 failed]"]
    assert r.stderr.strip().splitlines()[0] == (
        "error: trainer.epochs=${nope}: does not resolve (Interpolation key 'nope' not found)"
    )
    assert "Warning" not in r.stderr
