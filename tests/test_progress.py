"""Progress a user sees during long work: the training bar (running loss, images/s, few host
reads), `regx evaluate`'s corruption and attack sweeps, and `regx report` over many runs.

A terminal is simulated by making `regx.progress.stderr_is_terminal` report one (as
tests/test_imagefolder.py does); off a terminal the work logs two lines (regx.progress.WorkProgress)."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from regx import progress as work_progress
from regx.engine import progress as engine_progress
from regx.engine import trainer as trainer_module
from regx.engine.robustness import RobustnessRequest, attack_sweep, corruption_sweep, counted
from regx.metrics.attacks import attack_accuracy
from regx.metrics.robustness import corruption_table
from regx.progress import WorkProgress
from regx.report.runs import PROGRESS_FROM_RUNS, read_runs

TINY = [
    "dataset=synthetic",
    "model=mlp",
    "model.hidden=[16]",
    "trainer=smoke",
    "trainer.batch_size=4",
    "trainer.checkpoint=false",
]
TICK = 1 / 128  # seconds the fake clock moves per reading: a bar read every 64 steps


@pytest.fixture
def terminal(monkeypatch):
    monkeypatch.setattr(work_progress, "stderr_is_terminal", lambda: True)


def messages(caplog) -> list[str]:
    """The log lines, without the measured part (` in 1.2 s (…/s)`)."""
    return [r.getMessage().split(" in ")[0] for r in caplog.records if r.name == "regx"]


# -- the training bar -------------------------------------------------------------------------
def _trainer(tmp_path: Path, overrides: list[str]):
    from conftest import FAST, compose_config
    from regx.config.build import build_spec

    spec = build_spec(compose_config([*FAST, *overrides]), overrides)
    return trainer_module.Trainer(spec, tmp_path / "run")


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += TICK
        return self.now


def test_the_bar_shows_the_running_mean_loss_and_images_per_s_reading_rarely(
    terminal, monkeypatch, tmp_path
):
    bars: list[engine_progress.EpochProgress] = []
    reads: list[tuple[int, float]] = []  # (steps done in the epoch, loss shown) at each read

    class Recorded(engine_progress.EpochProgress):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.clock = FakeClock()  # each step 1/128 s later (exact in binary)
            bars.append(self)

        def refresh(self, sums, now) -> None:
            super().refresh(sums, now)
            reads.append((len(sums.step_sizes), self.progress.tasks[-1].fields["loss"]))

    monkeypatch.setattr(trainer_module, "EpochProgress", Recorded)
    trainer = _trainer(tmp_path, [*TINY, "trainer.progress=true"])
    step_losses: list[tuple[float, int]] = []  # every step's mean loss and batch size
    trainer.loss_fn.register_forward_hook(
        lambda mod, args, out: step_losses.append((float(out.detach().mean()), len(out)))
    )
    trainer.fit()
    (bar,) = bars
    steps, epochs = len(trainer.batches), trainer.s.epochs
    assert steps > 100 and epochs == 2 and len(step_losses) == epochs * steps
    # reads: after steps 64, 128, … of each epoch, and at its last step
    per_epoch = [*range(64, steps, 64), steps]
    assert [n for n, _ in reads] == per_epoch * epochs
    assert bar.reads == len(reads) == epochs * math.ceil(steps / 64)  # vs. 2·steps steps
    for i, (n, loss) in enumerate(reads):
        epoch = 0 if i < len(per_epoch) else 1
        done = step_losses[epoch * steps : epoch * steps + n]
        expected = sum(m * k for m, k in done) / sum(k for _, k in done)
        assert loss == pytest.approx(expected, rel=1e-5)
    task = bar.progress.tasks[-1]
    assert task.completed == steps and task.fields["epoch"] == 2
    assert task.fields["loss"] == pytest.approx(trainer.state.history[-1]["train_loss"], abs=1e-6)
    images = sum(k for _, k in step_losses[steps:])
    # the clock's ticks of the second epoch: its start, then one per step
    assert task.fields["images_per_s"] == pytest.approx(images / (steps * TICK), rel=1e-9)
    assert task.fields["shown"].startswith(f"loss {task.fields['loss']:.4f}  ")


def test_no_bar_and_no_read_off_a_terminal(monkeypatch, tmp_path):
    bars: list[engine_progress.EpochProgress] = []

    class Recorded(engine_progress.EpochProgress):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            bars.append(self)

    monkeypatch.setattr(trainer_module, "EpochProgress", Recorded)
    trainer = _trainer(tmp_path, [*TINY, "trainer.progress=true", "trainer.epochs=1"])
    trainer.fit()
    assert not bars[0].enabled and bars[0].task is None and bars[0].reads == 0


# -- regx evaluate's sweeps -------------------------------------------------------------------
@pytest.fixture(scope="module")
def linear():
    """A linear classifier on the synthetic images (fit for a few steps) and its inputs."""
    from conftest import FAST, compose_config
    from regx.config.build import build_spec
    from regx.data.augment import Normalize

    trained = build_spec(compose_config([*FAST, *TINY]), TINY)
    data = trained.dataset.load(seed=trained.seed)
    normalize = Normalize(data.mean, data.std, torch.device("cpu"))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(data.test_x[0].numel(), len(data.classes)))
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    x = normalize(data.train_x)
    for _ in range(30):
        loss = nn.functional.cross_entropy(model(x), data.train_y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()

    def predict(images: torch.Tensor, features: bool = False):
        with torch.no_grad():
            return model(normalize(images)), None

    ev = SimpleNamespace(
        model=model, normalize=normalize, device=torch.device("cpu"), batch_size=50,
        test_x=data.test_x, test_y=data.test_y, predict=predict, n_bins=15,
    )  # fmt: skip
    return ev, trained, data


def test_counted_advances_once_each_cell_is_done():
    with WorkProgress(3, "cells", "doing", "done") as progress:
        seen = [(cell, progress.done) for cell in counted("abc", progress)]
    assert seen == [("a", 0), ("b", 1), ("c", 2)] and progress.done == 3


def test_the_corruption_sweep_logs_its_cells_and_scores_as_without_progress(linear, caplog):
    from regx.data.shift import corrupted_copies

    caplog.set_level(logging.INFO, logger="regx")
    ev, trained, data = linear
    req = RobustnessRequest(corruptions="noise,blur", severities="1,3")
    section = corruption_sweep(req, ev, trained, 1.5)
    assert messages(caplog) == [
        "evaluating 4 corruption × severity cells",
        "evaluated 4 corruption × severity cells",
    ]
    cells = corrupted_copies(data.test_x, ["noise", "blur"], [1, 3], trained.seed)
    plain = corruption_table(lambda x: ev.predict(x)[0], data.test_x, data.test_y, cells, 1.5)
    assert section == {**plain.as_dict(), "seed": trained.seed}


def test_the_attack_sweep_is_one_cell_per_attack_and_eps(linear, caplog, terminal, monkeypatch):
    bars: list[WorkProgress] = []

    class Recorded(WorkProgress):
        def __exit__(self, *exc) -> None:
            bars.append(self)
            super().__exit__(*exc)

    monkeypatch.setattr("regx.engine.robustness.WorkProgress", Recorded)
    caplog.set_level(logging.INFO, logger="regx")
    ev, _, _ = linear
    eps = ["0", "4/255", "16/255"]
    req = RobustnessRequest(attack="fgsm,pgd", eps=",".join(eps), steps=3)
    found = attack_sweep(req, ev, seed=0)
    (bar,) = bars
    assert bar.doing == "evaluating 6 attack × ε cells (3 PGD steps)"
    assert bar.bar.tasks[0].completed == bar.bar.tasks[0].total == 6
    assert messages(caplog) == ["evaluated 6 attack × ε cells (3 PGD steps)"]  # no start line
    args = (ev.model, ev.test_x, ev.test_y, ev.normalize)
    kwargs = dict(steps=3, batch_size=50, seed=0)
    fgsm = attack_accuracy(*args, eps, ("fgsm",), **kwargs)
    assert found["clean"] == fgsm["clean"] == found["fgsm"]["0"] == found["pgd"]["0"]
    assert found["fgsm"] == fgsm["fgsm"]
    for e in eps:  # each PGD cell as asked for alone
        assert found["pgd"][e] == attack_accuracy(*args, [e], ("pgd",), **kwargs)["pgd"][e]
    assert found["fgsm"]["16/255"] < found["clean"] - 0.1  # the attack bites
    assert list(found) == ["clean", "fgsm", "pgd", "steps", "step_size", "seed"]
    assert (found["steps"], found["step_size"], found["seed"]) == (3, "eps/4", 0)


# -- regx report over many runs -----------------------------------------------------------------
def _fake_runs(root: Path, n: int) -> list[Path]:
    dirs = []
    for i in range(n):
        run = root / str(i)
        (run / ".hydra").mkdir(parents=True)
        (run / ".hydra" / "config.yaml").write_text(f"seed: {i}\n")
        (run / "summary.json").write_text(json.dumps({"status": "finished", "seed": i}))
        dirs.append(run)
    return dirs


def test_reading_many_runs_shows_progress_and_few_stay_quiet(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="regx")
    few = read_runs(_fake_runs(tmp_path / "few", PROGRESS_FROM_RUNS - 1))
    assert len(few) == 19 and all(r.finished for r in few)
    assert messages(caplog) == []
    many = read_runs(_fake_runs(tmp_path / "many", PROGRESS_FROM_RUNS))
    assert [r.seed for r in many] == list(range(20)) and all(r.finished for r in many)
    assert messages(caplog) == ["reading 20 runs", "read 20 runs"]
