"""Robustness evaluation: the corruption sweep (regx.metrics.robustness), FGSM/PGD accuracy
(regx.metrics.attacks), and their report parts (regx.report.robustness)."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from conftest import torch_threads
from regx.data.augment import Normalize
from regx.data.corruptions import KINDS, parse_kinds, parse_severities
from regx.data.shift import corrupted_copies
from regx.errors import ConfigError
from regx.metrics.attacks import _pgd, attack_accuracy, parse_eps
from regx.metrics.calibration import calibration_metrics
from regx.metrics.robustness import corruption_table
from regx.report.robustness import (
    attack_section,
    corruption_section,
    interval_section,
    plot_corruptions,
)

TINY = ["dataset=synthetic", "model=mlp", "trainer=smoke", "trainer.epochs=3"]
EPS = ["0", "2/255", "4/255", "8/255", "16/255", "32/255", "64/255"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """conftest's, for the whole module (its fixtures are module-scoped)."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def digits_linear(one_thread):
    """A linear classifier trained on the digits in well under a second, and its inputs."""
    from regx.data.digits import Digits

    data = Digits().load()
    normalize = Normalize(data.mean, data.std, torch.device("cpu"))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    x = normalize(data.train_x)
    for _ in range(150):
        loss = nn.functional.cross_entropy(model(x), data.train_y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), normalize, data


# -- attacks ----------------------------------------------------------------------------------
def test_eps_zero_is_the_clean_accuracy_and_accuracy_falls_with_eps(digits_linear):
    model, normalize, data = digits_linear
    x, y = data.test_x, data.test_y
    out = attack_accuracy(model, x, y, normalize, EPS, ("fgsm", "pgd"), steps=10, batch_size=100)
    with torch.no_grad():
        clean = (model(normalize(x)).argmax(dim=1) == y).double().mean().item()
    assert clean > 0.9
    assert out["clean"] == out["fgsm"]["0"] == out["pgd"]["0"] == clean  # exactly
    assert list(out["fgsm"]) == EPS and list(out["pgd"]) == EPS  # the strings as given
    fgsm, pgd = [out["fgsm"][e] for e in EPS], [out["pgd"][e] for e in EPS]
    assert all(b <= a for a, b in itertools.pairwise(fgsm))
    assert all(p <= f for p, f in zip(pgd, fgsm))
    assert fgsm[4] < clean - 0.2 and fgsm[-1] < 0.05  # the attack does bite
    assert any(p < f for p, f in zip(pgd, fgsm))  # and PGD more than FGSM
    assert (out["steps"], out["step_size"], out["seed"]) == (10, "eps/4", 0)


def test_pgd_is_seeded_and_stays_in_the_eps_ball(digits_linear):
    model, normalize, data = digits_linear
    x = data.test_x[:64].float()
    y = data.test_y[:64]
    radius = 8.0  # 8/255 in 0–255 units
    a = _pgd(model, normalize, x, y, radius, 5, torch.Generator().manual_seed(3))
    b = _pgd(model, normalize, x, y, radius, 5, torch.Generator().manual_seed(3))
    c = _pgd(model, normalize, x, y, radius, 5, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert (a - x).abs().max().item() <= radius + 1e-4
    assert a.min().item() >= 0.0 and a.max().item() <= 255.0


def test_attack_accuracy_counts_match_a_direct_fgsm(digits_linear):
    model, normalize, data = digits_linear
    x, y = data.test_x[:50].float().requires_grad_(True), data.test_y[:50]
    nn.functional.cross_entropy(model(normalize(x)), y).backward()
    adv = (x + 16.0 * x.grad.sign()).clamp(0, 255).detach()
    with torch.no_grad():
        expected = (model(normalize(adv)).argmax(dim=1) == y).double().mean().item()
    out = attack_accuracy(model, data.test_x[:50], y, normalize, ["16/255"], batch_size=7)
    assert out["fgsm"]["16/255"] == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    ("text", "value"), [("8/255", 8 / 255), ("0.03", 0.03), ("0", 0.0), (" 1 ", 1.0)]
)
def test_parse_eps(text, value):
    assert parse_eps(text) == pytest.approx(value, abs=1e-15)


@pytest.mark.parametrize("text", ["2", "-1/255", "a/b", "1/0", ""])
def test_parse_eps_rejects_bad_values(text):
    with pytest.raises(ConfigError, match="must be a number or a fraction like 8/255, in"):
        parse_eps(text)


# -- corruption sweep -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A finished synthetic run with the .hydra/ files Hydra writes (config, overrides)."""
    from conftest import FAST, compose_config, train_in_process

    run_dir = tmp_path_factory.mktemp("run")
    summary = train_in_process(TINY, run_dir)
    (run_dir / ".hydra").mkdir()
    OmegaConf.save(compose_config([*FAST, *TINY]), run_dir / ".hydra" / "config.yaml")
    OmegaConf.save(OmegaConf.create(TINY), run_dir / ".hydra" / "overrides.yaml")
    return run_dir, summary


def test_a_sweep_cell_equals_evaluate_with_that_corruption_alone(tiny_run):
    import regx
    from conftest import FAST, compose_config
    from regx.app.evaluate import evaluate
    from regx.config.build import build_spec

    run_dir, trained = tiny_run
    _, alone = evaluate(
        run_dir, ["dataset.test_shift=corrupt", "shift.kind=noise", "shift.severity=2"]
    )
    spec = build_spec(compose_config([*FAST, *TINY]))
    data = spec.dataset.load(seed=spec.seed)  # the clean test set, as the run loads it
    run = regx.load_run(run_dir)
    cells = corrupted_copies(data.test_x, ["noise", "blur"], [2], spec.seed)
    table = corruption_table(
        run.predict, data.test_x, data.test_y, cells, trained["temperature"], 15
    )
    noise = table.rows[0]
    assert (noise.kind, noise.severity) == ("noise", 2)
    assert (noise.acc, noise.nll, noise.ece) == tuple(
        alone["test"][k] for k in ("acc", "nll", "ece")
    )
    assert noise.ece_ts == alone["test_ts"]["ece"]
    assert table.clean.acc == trained["test"]["acc"] and table.clean.ece == trained["test"]["ece"]


def test_mean_corruption_errors(digits_linear):
    model, normalize, data = digits_linear

    def predict(images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(normalize(images))

    kinds, severities = ("brightness", "blur", "pixelate"), (1, 3, 5)
    cells = corrupted_copies(data.test_x, kinds, severities, seed=0)
    table = corruption_table(predict, data.test_x, data.test_y, cells, 1.5, 15)
    assert [(r.kind, r.severity) for r in table.rows] == list(itertools.product(kinds, severities))
    errors = np.array([1.0 - r.acc for r in table.rows])
    assert table.mean_corruption_error == pytest.approx(errors.mean())
    clean_error = 1.0 - table.clean.acc
    assert table.relative_mean_corruption_error == pytest.approx((errors - clean_error).mean())
    blur5 = table.rows[5]
    logits = predict(next(corrupted_copies(data.test_x, ["blur"], [5], seed=0))[2])
    scaled = calibration_metrics((logits / 1.5).softmax(dim=1), data.test_y)
    assert blur5.ece_ts == scaled["ece"]
    record = table.as_dict()
    assert len(record["rows"]) == 9 and record["clean"]["kind"] == "clean"
    assert record["mean_corruption_error"] > clean_error


def test_parse_kinds_and_severities():
    assert parse_kinds("all") == KINDS and parse_kinds("kinds=noise,jpeg") == ("noise", "jpeg")
    assert parse_severities("1,3,5") == (1, 3, 5) and parse_severities("all") == (1, 2, 3, 4, 5)
    with pytest.raises(ConfigError, match="corruptions=fog: must be all or kinds from"):
        parse_kinds("noise,fog")
    with pytest.raises(ConfigError, match=r"severities=0,6: must be integers in \[1, 5\]"):
        parse_severities("0,6")


# -- report parts ------------------------------------------------------------------------------
def test_corruption_report_parts(tmp_path: Path, digits_linear):
    model, normalize, data = digits_linear

    def predict(images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(normalize(images))

    cells = corrupted_copies(data.test_x, KINDS, (1, 2, 3, 4, 5), seed=0)
    record = corruption_table(predict, data.test_x, data.test_y, cells, 1.0, 15).as_dict()
    plot_corruptions(tmp_path / "corruptions.png", record)
    png = (tmp_path / "corruptions.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    lines = corruption_section(record)
    assert lines[0] == "## Corruptions"
    rows = [line for line in lines if line.startswith("| ") and "---" not in line]
    assert len(rows) == 1 + 1 + 30  # header, clean, 6 kinds × 5 severities
    jpeg5 = next(r for r in record["rows"] if (r["kind"], r["severity"]) == ("jpeg", 5))
    assert f"| jpeg | 5 | {100 * jpeg5['acc']:.2f} |" in "\n".join(lines)
    assert f"**{100 * record['mean_corruption_error']:.2f}%**" in "\n".join(lines)
    assert "![accuracy under corruption](corruptions.png)" in lines


def test_attack_and_interval_sections():
    attacks = {"clean": 0.95, "fgsm": {"1/255": 0.9, "8/255": 0.5}, "pgd": {"1/255": 0.88}}
    attacks.update(steps=10, step_size="eps/4", seed=0)
    lines = attack_section(attacks)
    assert "| attack | ε = 1/255 | ε = 8/255 |" in lines
    assert "| FGSM accuracy (%) | 90.00 | 50.00 |" in lines
    assert "| PGD accuracy (%) | 88.00 | — |" in lines
    assert attack_section({}) == []
    ci = {
        "resamples": 1000,
        "test": {"acc": [0.9, 0.95], "ece": [0.01, 0.03]},
        "val": {"acc": [0.8, 0.9], "ece": [0.02, 0.05]},
        "val_test_gap": [-0.02, 0.07],
    }
    text = "\n".join(interval_section(ci))
    assert "| accuracy | [80.00, 90.00] | [90.00, 95.00] |" in text
    assert "validation acc − test acc: [-2.00, 7.00] pt" in text


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"corruptions": "blur,blur"}, "--corruptions=blur,blur: repeats blur; give each value"),
        ({"corruptions": "blur", "severities": "3,1,3"}, "--severities=3,1,3: repeats 3;"),
        ({"attack": "fgsm", "eps": "8/255,8/255"}, "--eps=8/255,8/255: repeats 8/255;"),
        (
            {"attack": "fgsm", "eps": "1/255,0.0039215686274509803"},
            "repeats 0.0039215686274509803 (= 1/255); give each value once",
        ),
        ({"attack": "fgsm,fgsm"}, "--attack=fgsm,fgsm: repeats fgsm;"),
        ({"attack": "fgsm", "eps": "8/255,"}, "eps=: must be a number or a fraction"),
        ({"attack": "pgd", "steps": 0}, "--steps=0: must be an integer ≥ 1"),
        ({"corruptions": "all", "attack": "fgsm", "eps": "1/255,abc"}, "eps=abc: must be"),
    ],
)
def test_evaluate_options_are_checked_before_any_cell_runs(options, message):
    """A repeated cell would be scored twice and weigh twice in mCE; every option is checked
    up front, so a bad last option does not throw away the sweeps before it."""
    from regx.engine.robustness import RobustnessRequest

    with pytest.raises(ConfigError, match=re.escape(message)):
        RobustnessRequest(**options).check()


def test_options_without_their_flag_are_named_as_ignored_and_a_gallery_needs_pairs(tmp_path):
    from PIL import Image

    from regx.engine.robustness import RobustnessRequest
    from regx.errors import DataError

    assert RobustnessRequest(attack="pgd", steps=3, eps="1/255").check() == []
    assert RobustnessRequest(steps=5, eps="1/255", severities="1,2").check() == [
        "--severities applies to --corruptions, which is not given: ignored",
        "--eps applies to --attack, which is not given: ignored",
        "--steps applies to --attack pgd, which is not given: ignored",
    ]
    assert RobustnessRequest(attack="fgsm", steps=3).check() == [
        "--steps applies to --attack pgd, which is not given: ignored"
    ]
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        Image.new("RGB", (4, 4)).save(tmp_path / name / "0.png")
    with pytest.raises(DataError, match="every class folder holds one image"):
        RobustnessRequest(retrieval=tmp_path).check()
    Image.new("RGB", (4, 4)).save(tmp_path / "a" / "1.png")
    assert RobustnessRequest(retrieval=tmp_path).check() == []
