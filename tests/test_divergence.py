"""NaN/Inf losses and gradients: one line, a non-zero exit, and nothing already written lost."""

from __future__ import annotations

import math
import re
from pathlib import Path

import torch

from fault_helpers import error_line, hydra_in_process, metric_rows, read_summary

# synthetic data: 512 images, 52 validate, 460 train = 7 steps of 64 per epoch
SMALL = ["dataset=synthetic", "trainer.epochs=4", "trainer.batch_size=64"]
STEPS_PER_EPOCH = 7


def test_nan_loss_in_epoch_3_keeps_checkpoint_and_metrics(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    nan_step = 2 * STEPS_PER_EPOCH + 4  # epoch 3, step 4
    code, _, err = hydra_in_process(
        [
            *SMALL,
            "loss._target_=fault_plugins.NaNAtStep",
            f"+loss.step={nan_step}",
            f"hydra.run.dir={run_dir}",
        ]
    )
    line = error_line(err)
    assert code == 4, err
    match = re.fullmatch(
        r"error: training diverged: the loss became NaN/Inf at epoch 3, step 4 "
        r"\(last finite loss (\S+)\); lower trainer\.optimizer\.lr; "
        r"checkpoints/last\.pt and metrics\.csv of the 2 finished epoch\(s\) are kept",
        line,
    )
    assert match, line
    assert math.isfinite(float(match.group(1))) and 0 < float(match.group(1)) < 5

    summary = read_summary(run_dir)
    assert summary["status"] == "diverged"
    assert summary["message"] == line.removeprefix("error: ")
    assert summary["epochs_run"] == 2
    # metrics.csv: the two good epochs, untouched by the diverged third
    rows = metric_rows(run_dir)
    assert [row["epoch"] for row in rows] == ["1", "2"]
    assert all(math.isfinite(float(row["train_loss"])) for row in rows)
    # last.pt: end of epoch 2, finite weights; best.pt is one of the good epochs
    last = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)
    assert last["train_state"]["epoch"] == 2
    assert all(torch.isfinite(t).all() for t in last["model"].values() if t.is_floating_point())
    best = torch.load(run_dir / "checkpoints" / "best.pt", weights_only=False)
    assert best["epoch"] in (1, 2)


def test_nan_gradient_with_a_finite_loss_is_caught_before_the_checkpoint(tmp_path: Path) -> None:
    """The loss stays finite, the last step of epoch 2 poisons the weights: the epoch-end
    weight check stops the run before that epoch is checkpointed."""
    run_dir = tmp_path / "run"
    code, _, err = hydra_in_process(
        [
            *SMALL,
            "loss._target_=fault_plugins.NaNGradientAtStep",
            f"+loss.step={2 * STEPS_PER_EPOCH}",
            f"hydra.run.dir={run_dir}",
        ]
    )
    line = error_line(err)
    assert code == 4, err
    assert "the weights became NaN/Inf during epoch 2" in line
    assert "checkpoints/last.pt and metrics.csv of the 1 finished epoch(s) are kept" in line
    last = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)
    assert last["train_state"]["epoch"] == 1
    assert all(torch.isfinite(t).all() for t in last["model"].values() if t.is_floating_point())
    assert [row["epoch"] for row in metric_rows(run_dir)] == ["1"]
    assert read_summary(run_dir)["status"] == "diverged"


def test_huge_lr_diverges_in_its_job_and_the_sweep_goes_on(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    code, out, err = hydra_in_process(
        [
            "-m",
            "dataset=synthetic",
            "trainer=smoke",
            "trainer.optimizer.lr=1e6,0.05",
            f"hydra.sweep.dir={sweep_dir}",
        ]
    )
    assert code == 1, err  # the sweep ran both jobs; one did not finish
    job_line, sweep_line = err.strip().splitlines()  # only the diverged job complains
    assert sweep_line.startswith(f"error: 1 of 2 jobs did not finish ({sweep_dir / '0'} first")
    line = job_line
    assert line.startswith("error: training diverged: the loss became NaN/Inf at epoch 1, step ")
    assert "lower trainer.optimizer.lr" in line
    assert "no checkpoint to keep" in line
    diverged, finished = read_summary(sweep_dir / "0"), read_summary(sweep_dir / "1")
    assert diverged["status"] == "diverged" and diverged["epochs_run"] == 0
    assert finished["status"] == "finished"
    assert finished["test"]["acc"] > 0.5
    assert "Traceback" not in out + err
