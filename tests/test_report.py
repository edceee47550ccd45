"""The per-run report (report.md + figures) and the sweep report (`regx report`, the
end-of-multirun table): numbers to the last printed digit, grouping, unfinished runs."""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import re
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from regx.errors import UserError
from regx.metrics.calibration import calibration_metrics
from regx.report.grouping import group_runs
from regx.report.run_report import write_run_report
from regx.report.runs import read_run
from regx.report.sweep import sweep_report

TINY = ["dataset=synthetic", "model=mlp", "trainer=smoke", "trainer.progress=false"]


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the PNG header; fails on anything that is not a PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", data[16:24])


# -- the per-run report --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    from conftest import train_in_process

    run_dir = tmp_path_factory.mktemp("run")
    summary = train_in_process([*TINY, "trainer.epochs=3"], run_dir)
    return run_dir, summary


def test_report_table_prints_the_summary_values(finished_run):
    run_dir, summary = finished_run
    text = (run_dir / "report.md").read_text()
    val, test, ts = summary["val"], summary["test"], summary["test_ts"]
    for key, name, scale, decimals in (
        ("acc", "accuracy (%)", 100, 2),
        ("nll", "NLL", 1, 4),
        ("ece", "ECE (%)", 100, 2),
        ("ace", "adaptive ECE (%)", 100, 2),
        ("classwise_ece", "classwise ECE (%)", 100, 3),
        ("aurc", "AURC (%)", 100, 3),
    ):
        cells = " | ".join(f"{m[key] * scale:.{decimals}f}" for m in (val, test, ts))
        assert f"| {name} | {cells} |" in text, name
    assert f"**T = {summary['temperature']:.4g}**" in text
    assert summary["temperature_fit"]["note"] in text
    for image in ("reliability.png", "confidence.png", "curves.png"):
        assert f"]({image})" in text and png_size(run_dir / image)[0] >= 400, image


def test_summary_metrics_are_recomputable_from_predictions_npz(finished_run):
    run_dir, summary = finished_run
    with np.load(run_dir / "predictions.npz") as npz:
        arrays = {k: torch.from_numpy(npz[k]) for k in npz.files}
    n_bins = 15
    assert calibration_metrics(arrays["probs"], arrays["labels"], n_bins) == summary["test"]
    assert calibration_metrics(arrays["probs_ts"], arrays["labels"], n_bins) == summary["test_ts"]
    assert calibration_metrics(arrays["val_probs"], arrays["val_labels"], n_bins) == summary["val"]
    # and the scaled probabilities are softmax(logits / T) with the recorded T
    scaled = (arrays["logits"] / summary["temperature"]).softmax(dim=1)
    assert torch.equal(scaled, arrays["probs_ts"])


def test_weighted_split_fits_the_temperature_with_its_weights(tmp_path):
    """split=adversarial mode=weight: validation metrics and the temperature use the weights."""
    from conftest import train_in_process
    from regx.metrics.temperature import fit_temperature

    overrides = [*TINY, "split=adversarial", "split.mode=weight", "dataset.test_shift=corrupt"]
    summary = train_in_process(overrides, tmp_path)
    with np.load(tmp_path / "predictions.npz") as npz:
        arrays = {k: torch.from_numpy(npz[k]) for k in npz.files}
    weights = arrays["val_weights"]
    assert weights.std() > 0.05  # a shifted test set gives unequal weights
    weighted = fit_temperature(arrays["val_logits"], arrays["val_labels"], weights)
    plain = fit_temperature(arrays["val_logits"], arrays["val_labels"])
    assert summary["temperature"] == pytest.approx(weighted.temperature, rel=1e-9)
    assert abs(weighted.temperature - plain.temperature) > 1e-4
    val = calibration_metrics(arrays["val_probs"], arrays["val_labels"], 15, weights)
    assert summary["val"] == val
    text = (tmp_path / "report.md").read_text()
    auc = summary["split"]["auc"]
    assert f"| discriminator AUC (out of fold; 0.5 = no shift) | {auc:.3f} |" in text
    assert "](split.png)" in text and png_size(tmp_path / "split.png")[0] > 300


def synthetic_predictions(n: int = 300, k: int = 5, scale: float = 3.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    logits = torch.as_tensor(rng.normal(scale=scale, size=(n, k)), dtype=torch.float32)
    labels = torch.as_tensor(
        np.where(rng.random(n) < 0.7, logits.argmax(1).numpy(), rng.integers(0, k, n))
    )
    return logits, labels


def report_for(
    tmp_path: Path, fit: dict, split: dict | None = None, arrays=None, t: float = 1.0
) -> str:
    logits, labels = synthetic_predictions()
    probs, probs_ts = logits.softmax(1), (logits / t).softmax(1)
    summary = {
        "test": calibration_metrics(probs, labels),
        "test_ts": calibration_metrics(probs_ts, labels),
        "temperature": t,
        "temperature_fit": fit,
        "val": calibration_metrics(probs, labels),
        "split": split or {},
        "dataset": {"name": "synthetic", "train_size": 10, "val_size": 5, "test_size": 300},
        "seed": 0,
        "best_epoch": 2,
        "epochs_run": 3,
    }
    history = [
        {
            "epoch": e,
            "train_loss": 1 / e,
            "train_acc": 0.5 + e / 10,
            "val_loss": 1.2 / e,
            "val_acc": 0.5 + e / 12,
            "val_ece": 0.1 / e,
        }
        for e in (1, 2, 3)
    ]
    write_run_report(tmp_path, summary, history, probs, probs_ts, labels, 15, arrays, choices={})
    return (tmp_path / "report.md").read_text()


def test_report_explains_a_temperature_kept_at_one(tmp_path):
    from regx.metrics.temperature import TemperatureFit

    fit = TemperatureFit(1.0, "no_errors", 0.02, 0.02).as_dict()
    text = report_for(tmp_path, fit)
    assert "**T = 1**" in text and "no misclassified example" in text and "kept at 1" in text
    # T = 1: one reliability panel; T ≠ 1: before and after side by side
    one_panel = png_size(tmp_path / "reliability.png")[0]
    fitted = TemperatureFit(1.7, "fitted", 0.9, 0.7).as_dict()
    text = report_for(tmp_path, fitted, t=1.7)
    assert "Validation NLL 0.9000 → 0.7000" in text
    assert png_size(tmp_path / "reliability.png")[0] == 2 * one_panel


def test_report_shows_split_diagnostics_and_plot(tmp_path):
    from regx.metrics.temperature import TemperatureFit

    split = {
        "kind": "adversarial",
        "mode": "weight",
        "discriminator": "logreg",
        "auc": 0.7312,
        "ess": 101.25,
        "weight_min": 0.05,
        "weight_max": 12.5,
        "val_size": 143,
        "val_unique": 143,
    }
    rng = np.random.default_rng(0)
    arrays = {"d_train": rng.random(500), "d_test": rng.random(200), "d_val": rng.random(50)}
    text = report_for(
        tmp_path, TemperatureFit(1.2, "fitted", 0.5, 0.4).as_dict(), split, arrays, t=1.2
    )
    assert "| discriminator AUC (out of fold; 0.5 = no shift) | 0.731 |" in text
    assert "| effective sample size of the weights | 101.2 |" in text
    assert "| largest weight | 12.5 |" in text and "| distinct validation images | 143 |" in text
    assert "importance weights" in text  # mode=weight: validation metrics are weighted
    assert "](split.png)" in text and png_size(tmp_path / "split.png")[0] > 300


# -- sweep report on hand-made run folders ---------------------------------------------------
def make_run(
    root: Path,
    name: str,
    *,
    seed: int,
    loss: str = "ce",
    gamma: float | None = None,
    aug_choice: str | None = None,
    threads: int | None = None,
    summary: dict | None = None,
    epochs_logged: int = 0,
) -> Path:
    """A run folder as Hydra + the engine leave it (config, choices, overrides, summary)."""
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    loss_node = {"_target_": f"regx.losses.{loss}.Loss"}
    if gamma is not None:
        loss_node["gamma"] = gamma
    config = {
        "dataset": {"_target_": "regx.data.digits.Digits", "subset": None},
        "loss": loss_node,
        "aug": None,
        "trainer": {"epochs": 2, "threads": threads, "progress": False},
        "seed": seed,
        "out_dir": "outputs",
    }
    overrides = [f"loss={loss}", f"seed={seed}"]
    if gamma is not None:
        overrides.append(f"loss.gamma={gamma}")
    if aug_choice is not None:
        overrides.append(f"+aug={aug_choice}")
    choices = {"dataset": "digits", "loss": loss, "trainer": "default", "hydra/launcher": "basic"}
    if aug_choice is not None:
        choices["aug"] = aug_choice
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (run / ".hydra" / "hydra.yaml").write_text(
        yaml.safe_dump({"hydra": {"runtime": {"choices": choices}}})
    )
    if summary is not None:
        (run / "summary.json").write_text(json.dumps(summary))
    if epochs_logged:
        rows = "\n".join(f"{e},0.1" for e in range(1, epochs_logged + 1))
        (run / "metrics.csv").write_text("epoch,train_loss\n" + rows + "\n")
    return run


def finished(
    acc: float, ece: float, ece_ts: float, nll: float, val_acc: float, r1: float | None = 0.9
) -> dict:
    return {
        "status": "finished",
        "test": {"acc": acc, "ece": ece, "nll": nll},
        "test_ts": {"ece": ece_ts},
        "val": {"acc": val_acc},
        "retrieval": {} if r1 is None else {"recall_at_1": r1},
        "overrides": ["x"],
    }


@pytest.fixture
def sweep_dir(tmp_path):
    """2 losses × 3 seeds; ce seed 2 with `+aug=none`; one failed, two killed, one running."""
    root = tmp_path / "sweep"
    rng = np.random.default_rng(0)
    values = {}
    for i, (loss, seed) in enumerate([(loss, s) for loss in ("ce", "gamma_ce") for s in range(3)]):
        m = finished(*rng.uniform(0.01, 0.99, size=5).round(6))
        values[(loss, seed)] = m
        make_run(
            root,
            str(i),
            seed=seed,
            loss=loss,
            summary=m,
            aug_choice="none" if (loss, seed) == ("ce", 2) else None,
            threads=seed,
        )
    failed = {"status": "failed", "message": "loss.gamma=2: must be in [0, 1]"}
    make_run(root, "6", seed=3, loss="gamma_ce", summary=failed)
    make_run(root, "nested/7", seed=4, loss="ce", epochs_logged=2)  # killed: no summary.json
    # `running` with the pid of a process that has exited (killed), and with a live one
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    running = {"status": "running", "message": "training", "host": platform.node()}
    dead = {**running, "pid": int(gone.stdout)}
    make_run(root, "8", seed=5, loss="ce", summary=dead, epochs_logged=1)
    alive = {**running, "pid": os.getpid()}
    make_run(root, "9", seed=6, loss="gamma_ce", summary=alive, epochs_logged=1)
    return root, values


def fmt(values: list[float], scale: float, decimals: int) -> str:
    a = np.array(values) * scale
    return f"{a.mean():.{decimals}f} ± {a.std(ddof=1):.{decimals}f}"


def test_sweep_groups_runs_that_differ_only_by_seed(sweep_dir, tmp_path):
    root, values = sweep_dir
    out = sweep_report([root], echo=False)
    assert out == root
    text = (root / "report.md").read_text()
    table = [
        line
        for line in text.splitlines()
        if line.startswith("| ce |") or line.startswith("| gamma_ce |")
    ]
    assert len(table) == 2  # +aug=none and thread counts do not split the ce group
    for line, loss in zip(table, ("ce", "gamma_ce")):
        runs = [values[(loss, s)] for s in range(3)]
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[0] == loss and cells[1] == "3"
        assert cells[2] == fmt([r["test"]["acc"] for r in runs], 100, 2)
        assert cells[3] == fmt([r["test"]["ece"] for r in runs], 100, 2)
        assert cells[4] == fmt([r["test_ts"]["ece"] for r in runs], 100, 2)
        assert cells[5] == fmt([r["test"]["nll"] for r in runs], 1, 4)
        assert cells[6] == fmt([r["retrieval"]["recall_at_1"] for r in runs], 100, 2)
        assert cells[7] == fmt([r["val"]["acc"] - r["test"]["acc"] for r in runs], 100, 2)
    # failed, killed and running runs are listed, with why
    ce_line, gamma_line = table
    assert ce_line.endswith("| 2 unfinished |") and gamma_line.endswith("| 1 failed, 1 running |")
    assert "## Runs not finished" in text
    assert "loss.gamma=2: must be in [0, 1]" in text
    assert "killed or still running; 2 epoch(s) in metrics.csv" in text  # no summary.json
    assert "killed: process" in text and "is gone; 1 epoch(s) in metrics.csv" in text
    assert f"running (pid {os.getpid()}); 1 epoch(s) in metrics.csv" in text


def test_runs_reached_through_links_are_found_once_and_a_link_loop_ends(tmp_path):
    from regx.report.runs import find_run_dirs

    elsewhere = tmp_path / "elsewhere"
    for seed in range(3):
        make_run(elsewhere, f"sweep/{seed}", seed=seed, summary=finished(0.9, 0.1, 0.05, 0.3, 0.9))
    root = tmp_path / "root"
    make_run(root, "own", seed=7)
    (root / "nested").mkdir()
    (root / "nested" / "linked_sweep").symlink_to(elsewhere / "sweep")
    (root / "nested" / "again").symlink_to(elsewhere / "sweep")  # the same runs twice
    (root / "nested" / "loop").symlink_to(root)
    found = find_run_dirs([root])
    assert sorted(p.resolve() for p in found) == sorted(
        [(root / "own").resolve(), *((elsewhere / "sweep" / str(s)).resolve() for s in range(3))]
    )


def test_runs_csv_has_one_row_per_run_with_every_digit(sweep_dir):
    root, values = sweep_dir
    sweep_report([root], echo=False, plot=False)
    with open(root / "runs.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 10
    assert sorted(r["status"] for r in rows).count("finished") == 6
    by_run = {r["run"]: r for r in rows}
    assert by_run["nested/7"]["status"] == "unfinished" and by_run["6"]["status"] == "failed"
    assert by_run["8"]["status"] == "unfinished" and by_run["9"]["status"] == "running"
    first = values[("ce", 0)]
    assert float(by_run["0"]["test.acc"]) == first["test"]["acc"]
    assert by_run["0"]["label.loss"] == "ce" and by_run["3"]["label.loss"] == "gamma_ce"
    assert by_run["2"]["overrides"] == "loss=ce seed=2 +aug=none"


def test_compare_plot_is_written(sweep_dir):
    root, _ = sweep_dir
    sweep_report([root], echo=False)
    width, height = png_size(root / "compare.png")
    assert width == 760 and height > 420


def test_sort_and_where(sweep_dir, capsys):
    root, values = sweep_dir

    def mean_ece(loss):
        return np.mean([values[(loss, s)]["test"]["ece"] for s in range(3)])

    order = sorted(("ce", "gamma_ce"), key=mean_ece)
    sweep_report([root], echo=False, sort="test.ece", plot=False)
    rows = [
        ln.split("|")[1].strip()
        for ln in (root / "report.md").read_text().splitlines()
        if ln.startswith("| ce") or ln.startswith("| gamma_ce")
    ]
    assert rows == order
    sweep_report([root], echo=False, sort="test.ece", descending=True, plot=False)
    rows = [
        ln.split("|")[1].strip()
        for ln in (root / "report.md").read_text().splitlines()
        if ln.startswith("| ce") or ln.startswith("| gamma_ce")
    ]
    assert rows == order[::-1]

    sweep_report([root], echo=False, where=["loss=gamma_ce"], plot=False)
    with open(root / "runs.csv") as f:
        assert {r["run"] for r in csv.DictReader(f)} == {"3", "4", "5", "6", "9"}
    sweep_report([root], echo=False, where=["aug=none", "status=finished"], plot=False)
    with open(root / "runs.csv") as f:
        assert len(list(csv.DictReader(f))) == 6  # `+aug=none` and no aug both match aug=none
    sweep_report([root], echo=False, where=["trainer.epochs=2e0"], plot=False)  # 2e0 = 2.0 = 2
    with open(root / "runs.csv") as f:
        assert len(list(csv.DictReader(f))) == 10
    with pytest.raises(UserError, match="no run has a key 'lose'"):
        sweep_report([root], echo=False, where=["lose=ce"])
    with pytest.raises(UserError, match="no runs match"):
        sweep_report([root], echo=False, where=["loss=focal"])
    with pytest.raises(UserError, match=r"--sort test\.eec: not a numeric summary field"):
        sweep_report([root], echo=False, sort="test.eec")
    with pytest.raises(UserError, match=r"--sort test\.eec: not a numeric summary field"):
        sweep_report([root], echo=False, sort=["test.ece", "test.eec"])


def test_labels_name_the_option_and_keys_that_vary_within_it(tmp_path):
    root = tmp_path / "s"
    m = finished(0.9, 0.05, 0.02, 0.3, 0.91)
    make_run(root, "a", seed=0, loss="ce", summary=m)
    make_run(root, "b", seed=0, loss="gamma_ce", gamma=0.5, summary=m)
    make_run(root, "c", seed=0, loss="gamma_ce", gamma=0.9, summary=m)
    make_run(root, "d", seed=1, loss="gamma_ce", gamma=0.9, summary=m)
    groups = group_runs([read_run(root / d) for d in "abcd"])
    assert [g.label for g in groups] == [
        {"loss": "ce", "loss.gamma": "—"},
        {"loss": "gamma_ce", "loss.gamma": "0.5"},
        {"loss": "gamma_ce", "loss.gamma": "0.9"},
    ]
    assert [len(g.runs) for g in groups] == [1, 1, 2]
    # a single group has nothing to label; with n = 1 there is no std, and none is printed
    single = group_runs([read_run(root / "a")])
    assert single[0].label == {} and single[0].name == "all runs"
    mean, std, n = single[0].stats("test.acc")
    assert (mean, n) == (0.9, 1) and math.isnan(std)
    sweep_report([root / "a"], out=tmp_path / "one", echo=False, plot=False)
    assert (
        "| all runs | 1 | 90.00 | 5.00 | 2.00 | 0.3000 | 90.00 | 1.00 |"
        in (tmp_path / "one" / "report.md").read_text()
    )


def test_report_cli_errors_are_one_line(cli, tmp_path, sweep_dir):
    root, _ = sweep_dir
    for args, message in (
        (["report", str(tmp_path / "missing")], "no such file or directory"),
        (["report", str(tmp_path / "sweep" / "0" / ".hydra")], "no regx runs under"),
        (["report", str(root), "--sort", "bogus"], "--sort bogus: not a numeric summary field"),
        (["report", str(root), "--where", "loss"], "expected KEY=VALUE"),
    ):
        result = cli(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


# -- a real sweep: 2 losses × 3 seeds, the end-of-multirun table, a killed run ---------------
SMALL = ["dataset.num_train=256", "dataset.num_test=128", "trainer.threads=1"]


@pytest.mark.slow
def test_multirun_prints_the_comparison_table_and_report_lists_a_killed_run(cli, tmp_path):
    env = {"OMP_NUM_THREADS": "1"}
    result = cli("train", "-m", "loss=ce,gamma_ce", "seed=0,1,2", *TINY, *SMALL, env=env)
    assert result.returncode == 0, result.stderr
    sweep = next((tmp_path / "outputs" / "multirun").glob("*/*"))
    # the Hydra callback's table: one row per loss, n = 3, with a std
    rows = [ln for ln in result.stdout.splitlines() if re.match(r"│ +\d+ │ (ce|gamma_ce) ", ln)]
    assert len(rows) == 2, result.stdout
    for row in rows:
        cells = [c.strip() for c in row.strip("│").split("│")][1:]
        assert cells[1] == "3" and all("±" in c for c in cells[2:6]), row
    with open(sweep / "runs.csv") as f:
        assert len(list(csv.DictReader(f))) == 6
    summaries = [json.loads((sweep / str(i) / "summary.json").read_text()) for i in range(6)]
    ce_acc = [100 * s["test"]["acc"] for s in summaries[:3]]
    assert f"{np.mean(ce_acc):.2f} ± {np.std(ce_acc, ddof=1):.2f}" in rows[0]

    # a run killed mid-training in the same folder
    killed = sweep / "killed"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "regx",
            "train",
            f"hydra.run.dir={killed}",
            *TINY,
            "trainer.epochs=500",
            *SMALL,
        ],
        cwd=tmp_path,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 240
        while not (killed / "metrics.csv").is_file():
            assert proc.poll() is None and time.monotonic() < deadline, (
                "the run to kill did not start"
            )
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    result = cli("report", str(sweep))
    assert result.returncode == 0, result.stderr
    assert "1 unfinished" in result.stdout and str(killed) in result.stdout
    with open(sweep / "runs.csv") as f:
        rows = {r["run"]: r for r in csv.DictReader(f)}
    assert len(rows) == 7 and rows["killed"]["status"] == "unfinished"
    assert float(rows["0"]["test.acc"]) == summaries[0]["test"]["acc"]


def test_a_run_given_twice_under_two_names_is_warned_about(tmp_path, capsys):
    root = tmp_path / "runs"
    summary = {**finished(0.9, 0.1, 0.05, 0.3, 0.9), "config_hash": "abc"}
    make_run(root, "a/0", seed=0, summary=summary)
    make_run(root, "b/0", seed=0, summary=summary)  # a copy of a/0
    make_run(root, "a/1", seed=1, summary={**summary, "config_hash": "def"})
    sweep_report([root], echo=False, plot=False)
    assert capsys.readouterr().err == (
        f"warning: 1 run(s) repeat the config and seed of another ({root / 'b' / '0'} repeats "
        f"{root / 'a' / '0'}): each counts in its group's mean ± std\n"
    )
    (root / "b" / "0" / "summary.json").write_text(json.dumps({**summary, "config_hash": "xyz"}))
    sweep_report([root], echo=False, plot=False)
    assert capsys.readouterr().err == ""
