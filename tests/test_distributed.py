"""One run on two processes: `torchrun --nproc_per_node=2 -m regx train …` with DDP over gloo
on the CPU gives one run dir written by rank 0 alone, each epoch once, and the accuracy of a
single-process run of the same config within seed-to-seed noise."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import train_in_process
from regx.data.batches import DeviceBatches, HostBatches
from regx.data.types import Augment
from regx.engine.outputs import read_metrics_csv

RUN = ["trainer=smoke", "trainer.progress=false", "seed=0"]


@pytest.mark.parametrize("batches_cls", [DeviceBatches, HostBatches])
def test_two_ranks_split_each_global_batch_without_overlap(batches_cls):
    x = torch.zeros(40, 1, 4, 4, dtype=torch.uint8)
    y = torch.arange(40)
    common = dict(batch_size=8, device=torch.device("cpu"), augment=Augment(0, False), seed=3)
    if batches_cls is HostBatches:
        common["num_workers"] = 0
    single = batches_cls(x, y, **common)
    ranks = [batches_cls(x, y, **common, rank=r, world_size=2) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == len(single) == 5  # the same number of steps
    for step, (one, r0, r1) in enumerate(zip(single.epoch(1), *(b.epoch(1) for b in ranks))):
        whole, half0, half1 = one[1].tolist(), r0[1].tolist(), r1[1].tolist()
        assert len(half0) == len(half1) == 4, step
        assert sorted(half0 + half1) == sorted(whole), step  # together: the single-process batch
        assert not set(half0) & set(half1), step


def test_torchrun_two_processes_write_one_run_dir_like_one_process(tmp_path: Path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "CUDA_VISIBLE_DEVICES": ""}
    env.pop("HYDRA_FULL_ERROR", None)
    env.pop("REGX_DEBUG", None)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",  # a free local port: parallel test runs do not collide
            "--nproc_per_node=2",
            "-m",
            "regx",
            "train",
            *RUN,
            f"out_dir={out}",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    run_dirs = [p.parent for p in out.glob("runs/*/*/.hydra")]
    assert len(run_dirs) == 1, list(out.rglob("*"))
    (run_dir,) = run_dirs
    assert sorted(p.name for p in (out / "runs").glob("*/*")) == [run_dir.name]

    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished"
    assert summary["processes"] == 2
    rows = read_metrics_csv(run_dir / "metrics.csv")
    assert [row["epoch"] for row in rows] == [1, 2]  # each epoch once, not once per rank
    log_lines = [ln for ln in (run_dir / "train.log").read_text().splitlines() if "epoch" in ln]
    assert len(log_lines) == 2
    assert r.stdout.count("test acc") == 1  # rank 0 reports

    reference = train_in_process(RUN, tmp_path / "single")
    assert summary["processes"] != reference["processes"] == 1
    assert summary["dataset"] == reference["dataset"]  # the same split, sharded per step
    # DDP averages the two half-batch gradients: the same optimization up to BatchNorm
    # statistics and augmentation draws; seeds 0-3 of this run spread over ~3 points
    assert abs(summary["test"]["acc"] - reference["test"]["acc"]) <= 0.03
    reference_rows = read_metrics_csv(tmp_path / "single" / "metrics.csv")
    assert abs(rows[-1]["train_loss"] - reference_rows[-1]["train_loss"]) <= 0.1


def test_torchrun_refuses_a_sweep(cli):
    r = cli("train", "-m", "seed=0,1", env={"RANK": "0", "WORLD_SIZE": "2"})
    assert r.returncode == 2
    assert r.stderr.strip() == (
        "error: torchrun trains one run on several processes; launch sweeps (-m) without torchrun"
    )
