"""scripts/bench.py: the contender-free quick path prints its table, missing contenders are
reported as not installed, the ratios are contender time / regx time, and (where the bench
extra is installed) the Lightning contender trains the steps it should and timm's mixup
loss is the same function as regx's, so the mixup step compares like with like."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

from benchlib.timing import Samples, Target, ratio

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def run_bench(args: list[str], env_extra: dict[str, str] | None = None) -> str:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", **(env_extra or {})}
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / "bench.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_quick_hand_loop_prints_its_rows() -> None:
    out = run_bench(["--quick", "--only", "hand", "--cases", "digits", "--repeats", "3"])
    assert "(a) training epoch: regx vs hand loop" in out
    # digits after the default split: 1295 training images, 20 full batches of 64
    assert "20 steps/epoch (1295 training images)" in out
    # every repeat shown: three ratios in brackets, in wall and in CPU time
    ratios = re.findall(r"^\s+(wall|cpu)\s+ratio \d+\.\d+ \[([^\]]*)\]", out, re.M)
    assert [m for m, _ in ratios] == ["wall", "cpu"]
    assert all(len(r.split(",")) == 3 for _, r in ratios)
    row = re.search(
        r"^\s+digits\s+hand loop\s+≥ 0\.97\s+\d+\.\d+ (PASS|MISS)\s+\d+\.\d+ (PASS|MISS)$",
        out,
        re.M,
    )
    assert row is not None, out
    assert "Lightning" not in out and "timm" not in out


def test_missing_contenders_are_reported_not_installed(tmp_path: Path) -> None:
    # packages that fail to import, ahead of any installed lightning/timm on the path
    for name in ("lightning", "timm"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text('raise ImportError("hidden by the test")\n')
    out = run_bench(
        ["--only", "lightning,timm", "--cases", "digits", "--repeats", "3"],
        {"PYTHONPATH": str(tmp_path)},
    )
    assert "lightning: not installed (hidden by the test;" in out
    assert "timm: not installed (hidden by the test;" in out
    assert "nothing measured" in out
    assert "targets (" not in out


def test_ratio_is_contender_time_over_regx_time_per_repeat() -> None:
    regx = Samples(wall=[1.0, 2.0, 2.0], cpu=[1.0, 1.0, 1.0])
    contender = Samples(wall=[2.0, 4.0, 7.0], cpu=[0.9, 1.2, 0.8])
    assert ratio(contender, regx, "wall").ratios == [2.0, 2.0, 3.5]
    assert ratio(contender, regx, "cpu").median == pytest.approx(0.9)
    t = Target("digits", "x", 1.3, ratio(contender, regx, "wall"), ratio(contender, regx, "cpu"))
    assert t.met("wall") and not t.met("cpu")


def test_lightning_contender_trains_every_step_and_times_rounds_after_warm_up() -> None:
    pytest.importorskip("lightning")
    from benchlib import lightning_loop
    from benchlib.cases import build_trainer
    from benchlib.hand import LoopInputs

    with tempfile.TemporaryDirectory() as tmp:
        # 256 synthetic 8×8 images: 3 batches of 64 after the validation split
        overrides = ["dataset=synthetic", "dataset.num_train=256", "trainer.epochs=3"]
        trainer = build_trainer(overrides, Path(tmp), 1)
        inputs = LoopInputs.from_trainer(trainer)
        before = [p.detach().clone() for p in inputs.model.parameters()]
        rounds_seen: list[int] = []
        # run_rounds raises unless Lightning took rounds × epochs × steps optimizer steps
        samples = lightning_loop.run_rounds(inputs, 3, 1, rounds_seen.append)
    assert inputs.steps == 3
    assert rounds_seen == [0, 1, 2]
    assert len(samples.wall) == len(samples.cpu) == 2  # round 0 is the untimed warm-up
    assert all(w > 0 for w in samples.wall)
    changed = [not torch.equal(b, p) for b, p in zip(before, inputs.model.parameters())]
    assert all(changed)


def test_timm_soft_target_loss_equals_regx_mixed_loss() -> None:
    pytest.importorskip("timm")
    from timm.data.mixup import mixup_target
    from timm.loss import SoftTargetCrossEntropy

    from regx.aug.base import MixedBatch
    from regx.losses.ce import CrossEntropy

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(8, 5, generator=g)
    y = torch.randint(0, 5, (8,), generator=g)
    lam = 0.3
    partners = torch.arange(7, -1, -1)  # timm's partner: the batch reversed
    mixed = MixedBatch(inputs=logits, lam=lam, partner_targets=y[partners])
    regx_loss = mixed.loss(CrossEntropy(), logits, y).mean()
    timm_loss = SoftTargetCrossEntropy()(logits, mixup_target(y, 5, lam, smoothing=0.0))
    # both: mean over i of −λ·log p_i[y_i] − (1 − λ)·log p_i[y_{7−i}]
    logp = logits.log_softmax(dim=1)
    expected = -(lam * logp[torch.arange(8), y] + (1 - lam) * logp[torch.arange(8), y[partners]])
    assert regx_loss.item() == pytest.approx(expected.mean().item(), rel=1e-6)
    assert timm_loss.item() == pytest.approx(expected.mean().item(), rel=1e-6)


@pytest.mark.parametrize(("start", "order"), [(0, "ABBAAB"), (1, "BAABBA")])
def test_interleaved_alternates_single_calls_and_sums_each_contenders_time(
    start: int, order: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from benchlib import timing

    calls: list[str] = []
    fns = {name: (lambda name=name: calls.append(name)) for name in "AB"}
    seconds = {"A": (1.0, 0.5), "B": (2.0, 0.25)}  # (wall, CPU) each call of A or B takes

    def timed(fn, device):
        fn()
        return seconds[calls[-1]]

    monkeypatch.setattr(timing, "timed", timed)
    totals = timing.interleaved(fns, 3, torch.device("cpu"), start=start)
    assert "".join(calls) == order
    assert totals == {"A": (3.0, 1.5), "B": (6.0, 0.75)}
