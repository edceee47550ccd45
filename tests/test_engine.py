"""A real (tiny) training run writes every SPEC §3 file with consistent contents."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from regx.engine.optim import lr_factor
from regx.engine.settings import SchedulerSettings

SMOKE = ["dataset=synthetic", "trainer=smoke", "trainer.epochs=3"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    from conftest import train_in_process

    run_dir = tmp_path_factory.mktemp("run")
    summary = train_in_process(SMOKE, run_dir)
    return run_dir, summary


def test_run_writes_every_file(finished_run):
    run_dir, _ = finished_run
    for name in (
        "metrics.csv",
        "summary.json",
        "predictions.npz",
        "report.md",
        "reliability.png",
        "confidence.png",
        "checkpoints/last.pt",
        "checkpoints/best.pt",
    ):
        assert (run_dir / name).is_file(), name
    assert not list(run_dir.rglob("*.tmp"))  # atomic writes leave no temp files


def test_metrics_csv_has_one_row_per_epoch(finished_run):
    run_dir, summary = finished_run
    with open(run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    for col in ("lr", "train_loss", "train_acc", "val_loss", "val_acc", "val_ece", "seconds"):
        assert all(r[col] != "" for r in rows), col
    best = max(rows, key=lambda r: (float(r["val_acc"]), -float(r["val_loss"])))
    assert int(best["epoch"]) == summary["best_epoch"]


def test_predictions_reproduce_the_summary(finished_run):
    run_dir, summary = finished_run
    with np.load(run_dir / "predictions.npz") as npz:
        probs, labels = npz["probs"], npz["labels"]
        val_probs, val_labels = npz["val_probs"], npz["val_labels"]
    assert probs.dtype == np.float32 and probs.shape == (256, 4)
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert summary["test"]["acc"] == pytest.approx((probs.argmax(1) == labels).mean(), abs=1e-12)
    nll = -np.log(
        np.clip(probs[np.arange(len(labels)), labels].astype(np.float64), 1e-12, None)
    ).mean()
    assert summary["test"]["nll"] == pytest.approx(nll, abs=1e-5)
    assert summary["val"]["acc"] == pytest.approx((val_probs.argmax(1) == val_labels).mean())
    assert len(val_labels) == summary["dataset"]["val_size"]


def test_summary_has_the_spec_fields(finished_run):
    run_dir, _ = finished_run
    on_disk = json.loads((run_dir / "summary.json").read_text())
    assert on_disk["status"] == "finished"
    for key in ("acc", "nll", "brier", "ece", "mean_confidence"):
        assert key in on_disk["test"] and key in on_disk["test_ts"]
    assert on_disk["temperature"] > 0
    assert set(on_disk["retrieval"]) >= {"recall_at_1", "map_at_r"}
    assert len(on_disk["config_hash"]) == 12
    assert on_disk["versions"]["torch"] == torch.__version__
    assert on_disk["device"].startswith("cpu")
    # the whole run holds its training and its scoring
    assert on_disk["wall_time_s"] >= on_disk["train_time_s"] + on_disk["eval_time_s"]
    assert on_disk["test"]["acc"] > 0.9  # the synthetic classes are easy


def test_checkpoints_hold_the_training_state(finished_run):
    run_dir, summary = finished_run
    last = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)
    assert {"model", "optimizer", "scheduler", "rng", "train_state"} <= set(last)
    assert last["train_state"]["epoch"] == 3
    assert len(last["train_state"]["history"]) == 3
    best = torch.load(run_dir / "checkpoints" / "best.pt", weights_only=False)
    assert best["epoch"] == summary["best_epoch"]


def test_lr_schedules_follow_their_formulas():
    cosine = SchedulerSettings(name="cosine", warmup_epochs=1)
    # 10 steps/epoch, 5 epochs: 10 warm-up steps, then half a cosine over 40 steps
    assert lr_factor(0, 50, 10, cosine) == pytest.approx(0.1)
    assert lr_factor(9, 50, 10, cosine) == pytest.approx(1.0)
    assert lr_factor(30, 50, 10, cosine) == pytest.approx(0.5)
    assert lr_factor(50, 50, 10, cosine) == pytest.approx(0.0, abs=1e-12)
    steps = SchedulerSettings(name="multistep", warmup_epochs=0, milestones=[0.5, 4], gamma=0.1)
    assert [lr_factor(s, 50, 10, steps) for s in (0, 24, 25, 39, 40)] == pytest.approx(
        [1, 1, 0.1, 0.1, 0.01]
    )
    flat = SchedulerSettings(name="none", warmup_epochs=0)
    assert lr_factor(33, 50, 10, flat) == 1.0


@pytest.mark.parametrize("name", ["sgd", "adamw"])
def test_fused_optimizer_updates_as_the_per_tensor_one(name: str) -> None:
    """On a CPU with torch ≥ 2.4 regx's optimizer is torch's fused one, and its updates are
    those of the per-tensor loop (to float rounding) over 30 steps, weight decay on the
    matrices only; below 2.4 or on other devices it is the default one."""
    from regx.engine import optim
    from regx.engine.settings import OptimizerSettings

    settings = OptimizerSettings(name=name, lr=0.05, momentum=0.9, weight_decay=1e-2)
    gen = torch.Generator().manual_seed(0)
    shapes = [(8, 4, 3, 3), (8,), (10, 8), (10,)]
    start = [torch.randn(s, generator=gen) for s in shapes]
    ours = [p.clone().requires_grad_() for p in start]
    loop = [p.clone().requires_grad_() for p in start]
    fused = optim.build_optimizer(ours, settings)
    assert fused.defaults.get("fused") is (True if optim.torch_version() >= (2, 4) else None)
    reference = optim.build_optimizer(loop, settings)
    for group in reference.param_groups:
        group["fused"], group["foreach"] = None, False
    for _ in range(30):
        grads = [torch.randn(s, generator=gen) for s in shapes]
        for p, q, g in zip(ours, loop, grads):
            p.grad, q.grad = g.clone(), g.clone()
        fused.step()
        reference.step()
    for p, q, p0 in zip(ours, loop, start):
        torch.testing.assert_close(p, q, atol=1e-5, rtol=1e-5)
        assert (p - p0).abs().max() > 1e-2  # the steps moved the weights
    assert not optim.can_fuse([torch.zeros(3, dtype=torch.long)])
    assert not optim.can_fuse([])


def test_a_checkpoints_optimizer_state_keeps_this_machines_implementation() -> None:
    """A state saved by a fused optimizer loads into a per-tensor one (another machine, an
    older torch) with its momentum buffers, and the loading optimizer stays per-tensor."""
    from regx.engine import optim
    from regx.engine.settings import OptimizerSettings

    settings = OptimizerSettings(name="sgd", lr=0.1, momentum=0.9, weight_decay=0.0)
    saved_params = [torch.ones(4, 3, requires_grad=True), torch.ones(3, requires_grad=True)]
    saved = optim.build_optimizer(saved_params, settings)
    for group in saved.param_groups:
        group["fused"] = True  # as a fused machine writes it, whatever this torch does
    for p in saved_params:
        p.grad = torch.full_like(p, 2.0)
    saved.step()
    params = [torch.zeros(4, 3, requires_grad=True), torch.zeros(3, requires_grad=True)]
    loading = optim.build_optimizer(params, settings)
    for group in loading.param_groups:
        group["fused"], group["foreach"] = None, False  # this machine: the per-tensor loop
    optim.load_optimizer_state(loading, saved.state_dict())
    assert [(g["fused"], g["foreach"]) for g in loading.param_groups] == [(None, False)] * 2
    buffers = [loading.state[p]["momentum_buffer"] for p in params]
    assert all(torch.equal(b, torch.full_like(b, 2.0)) for b in buffers)
