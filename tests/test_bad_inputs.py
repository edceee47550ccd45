"""Bad configs and CLI arguments: one line naming the key, the value and what is allowed;
exit code 2 (config) or 3 (data); no traceback; training never starts.

Most cases go through `run_hydra` in this process (the code behind `regx train`, with
Hydra's own pre-job errors condensed exactly as on the command line); a few run the real
`python -m regx` to show the same in a fresh process.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import compose_config
from fault_helpers import FAST, error_line, hydra_in_process, regx_process

BASE = ["dataset=synthetic", "trainer.epochs=1"]

# (overrides, exit code, the whole error line after "error: ")
CASES = [
    # trainer: types, ranges, choices
    (["trainer.epochs=0"], 2, "trainer.epochs=0: must be in [1, inf)"),
    (["trainer.epochs=abc"], 2, "trainer.epochs=abc: must be an integer"),
    (["trainer.optimizer.lr=-0.1"], 2, "trainer.optimizer.lr=-0.1: must be in (0, 3.40282e+38]"),
    # float32 overflows in the optimizer step: refused before training
    (["trainer.optimizer.lr=1e39"], 2, "trainer.optimizer.lr=1e+39: must be in (0, 3.40282e+38]"),
    (["trainer.optimizer.lr=inf"], 2, "trainer.optimizer.lr=inf: must be in (0, 3.40282e+38]"),
    (["loss=am_softmax", "loss.s=inf"], 2, "loss.s=inf: must be in (0, inf)"),  # ∞ is open
    (["trainer.optimizer.lr=fast"], 2, "trainer.optimizer.lr=fast: must be a number"),
    (
        ["trainer.optimizer.name=rmsprop"],
        2,
        "trainer.optimizer.name=rmsprop: must be one of sgd, adamw",
    ),
    (["trainer.optimizer.momentum=1.5"], 2, "trainer.optimizer.momentum=1.5: must be in [0, 1)"),
    (
        ["trainer.batch_size=1"],
        2,
        "trainer.batch_size=1: must be at least 2 (batch norm needs two images per training batch)",
    ),
    (
        ["trainer.scheduler.warmup_epochs=5"],
        2,
        "trainer.scheduler.warmup_epochs=5.0: must be in [0, 1]",
    ),
    (["trainer.device=gpu"], 2, "trainer.device=gpu: must be auto, cpu, mps, cuda or cuda:N"),
    (
        ["trainer.device=cuda"],
        2,
        "trainer.device=cuda: CUDA is not available on this machine; use auto or cpu",
    ),
    (
        ["trainer.precision=16"],
        2,
        "trainer.precision=16: float16 needs a CUDA device; use 32 or bf16",
    ),
    (["trainer.precision=8"], 2, "trainer.precision=8: must be one of 32, bf16, 16"),
    (
        ["trainer.monitor=val_f1"],
        2,
        "trainer.monitor=val_f1: must be one of val_acc, val_loss, val_ece",
    ),
    (["trainer.resume=maybe"], 2, "trainer.resume=maybe: must be one of auto, never"),
    (["trainer.grad_clip=0"], 2, "trainer.grad_clip=0.0: must be in (0, inf)"),
    (["trainer.early_stop=0"], 2, "trainer.early_stop=0: must be in [1, inf)"),
    (["trainer.num_workers=-1"], 2, "trainer.num_workers=-1: must be in [0, inf)"),
    # top level
    (["seed=-1"], 2, "seed=-1: must be a non-negative integer"),
    (["seed=abc"], 2, "seed=abc: must be a non-negative integer"),
    (["calibration.n_bins=0"], 2, "calibration.n_bins=0: must be a positive integer"),
    (["calibration.n_bins=true"], 2, "calibration.n_bins=True: must be a positive integer"),
    (
        ["calibration.bootstrap=1000000000000"],
        2,
        "calibration.bootstrap=1000000000000: must be at most 100000 (0: off)",
    ),
    # dataset
    (
        ["dataset.subset=100000"],
        2,
        "dataset.subset=100000: must be at most the 512 training images of synthetic",
    ),
    (
        ["dataset.subset=0"],
        2,
        "dataset.subset=0: must be a positive number of training images (or null)",
    ),
    (["dataset.channels=2"], 2, "dataset.channels=2: must be 1 or 3"),
    (["dataset.image_size=abc"], 2, "dataset.image_size=abc: must be an integer or null"),
    (
        ["dataset.std=[0.5]"],
        2,
        "dataset.mean=null: must be set together with std (one value per channel)",
    ),
    (
        ["dataset.mean=[0.5,0.5]", "dataset.std=[0.5,0.5]"],
        2,
        "dataset.mean=[0.5, 0.5]: must have one value per channel (1)",
    ),
    (
        ["+dataset.train_augment.rotate=5"],
        2,
        "dataset.train_augment=['rotate']: allowed keys: crop_padding, flip",
    ),
    (["dataset=imagefolder"], 2, "dataset.root=???: is required: pass dataset.root=VALUE"),
    (
        ["trainer.epochs=${nope}"],
        2,
        "trainer.epochs=${nope}: does not resolve (Interpolation key 'nope' not found)",
    ),
    (
        ["dataset=imagefolder", "dataset.root=${oc.env:REGX_TEST_UNSET_VARIABLE}"],
        2,
        "dataset.root=${oc.env:REGX_TEST_UNSET_VARIABLE}: does not resolve "
        "(Environment variable 'REGX_TEST_UNSET_VARIABLE' not found)",
    ),
    # split
    (["split.val_fraction=1.5"], 2, "split.val_fraction=1.5: must be in (0, 1)"),
    (["split.val_fraction=0"], 2, "split.val_fraction=0: must be in (0, 1)"),
    (["split=adversarial", "split.folds=1"], 2, "split.folds=1: must be an integer ≥ 2"),
    (
        ["split=adversarial", "dataset.num_test=1"],
        2,
        "split.folds=5: needs at least that many train and test images (have 512 and 1)",
    ),
    # loss and aug: the articles' parameter ranges
    (["loss=gamma_ce", "loss.gamma=1.5"], 2, "loss.gamma=1.5: must be in [0, 1]"),
    (["loss=gamma_ce", "loss.gamma=abc"], 2, "loss.gamma=abc: must be a number"),
    (["loss=am_softmax", "loss.s=0"], 2, "loss.s=0: must be in (0, inf)"),
    (["loss=am_softmax", "loss.m=-0.1"], 2, "loss.m=-0.1: must be in [0, 2]"),
    (["loss=focal", "loss.gamma=-1"], 2, "loss.gamma=-1: must be in [0, inf)"),
    (["+aug=mixup", "aug.alpha=0"], 2, "aug.alpha=0: must be in (0, inf)"),
    (
        ["+aug.alpha=0.3"],  # a setting without an augmentation
        2,
        "aug={'alpha': 0.3}: names no aug: choose one first (+aug=NAME: cutmix, cutout, "
        "manifold_mixup, mixup, mixup_cutmix, none, samplepairing)",
    ),
    (["+aug=samplepairing", "aug.prob=2"], 2, "aug.prob=2: must be in [0, 1]"),
    (["+aug=cutout", "aug.holes=0"], 2, "aug.holes=0: must be an integer ≥ 1"),
    (
        ["loss=am_softmax", "loss.margin_warmup=-1"],
        2,
        "loss.margin_warmup=-1: must be an integer ≥ 0 (epochs)",
    ),
    # data: the constructor's declared ranges
    (["dataset.num_train=0"], 2, "dataset.num_train=0: must be in [1, inf)"),
    (["dataset.num_classes=1"], 2, "dataset.num_classes=1: must be in [2, inf)"),
    # model: constructor ranges and annotation types
    (["model.dropout=1.0"], 2, "model.dropout=1.0: must be in [0, 1)"),
    (["model.widths=abc"], 2, "model.widths=abc: must be a list of integers"),
    (["model=wrn", "model.depth=abc"], 2, "model.depth=abc: must be an integer"),
    (["model=resnet", "model.depth=20"], 2, "model.depth=20: must be one of 10, 18, 34"),
    (["model=resnet", "model.width=0"], 2, "model.width=0: must be in [1, inf)"),
    (
        ["+model.foo=1"],
        2,
        "model.foo=1: unknown key for SmallCNN; allowed: convs_per_stage, dropout, widths",
    ),
    # Hydra's own errors, as one line with the closest name or what exists
    (["loss=nonexistent"], 2, "loss=nonexistent: no such option; options of loss: "),
    (["loss=gama_ce"], 2, "loss=gama_ce: no such option; did you mean loss=gamma_ce? "),
    (["losss=gamma_ce"], 2, "losss=gamma_ce: unknown key; did you mean loss=gamma_ce?"),
    (["trainer.epochz=3"], 2, "trainer.epochz=3: unknown key; did you mean trainer.epochs=3?"),
    (["los.gamma=1"], 2, "los.gamma=1: unknown key; did you mean loss.gamma=1?"),
    (["trainer.foo=1"], 2, "trainer.foo=1: unknown key; keys of trainer: "),
    (["trainer.lr=0.1"], 2, "trainer.lr=0.1: unknown key; did you mean trainer.optimizer.lr=0.1?"),
    (["lr=0.1"], 2, "lr=0.1: unknown key; did you mean trainer.optimizer.lr=0.1?"),
    (
        ["+aug=[mixup, cutmix]"],
        2,
        "aug=[mixup, cutmix]: takes one option; a list merges them all into one aug node. "
        "To compare them, sweep: regx train -m +aug=mixup,cutmix",
    ),
    (
        ["loss.gamma=0.5"],
        2,
        "loss.gamma=0.5: loss=ce has no key 'gamma'; options of loss with one: focal, "
        "gamma_ce (e.g. loss=focal loss.gamma=0.5)",
    ),
    (
        ["+losss=gamma_ce"],
        2,
        "losss=gamma_ce: unknown top-level key (nothing reads it); did you mean loss=gamma_ce?",
    ),
    (
        ["+model.dropuot=0.1"],
        2,
        "model.dropuot=0.1: unknown key for SmallCNN; did you mean model.dropout? "
        "allowed: convs_per_stage, dropout, widths",
    ),
    (
        ["hydra/launcher=jobliib"],
        2,
        "hydra/launcher=jobliib: no such option; did you mean hydra/launcher=joblib? ",
    ),
    (
        ["out_dir=résultats"],
        2,
        "cannot read the override out_dir=résultats: unquoted values may hold only ASCII "
        "letters, digits and _-./:@; quote the value: out_dir='résultats'",
    ),
    (["seed=4294967296"], 2, "seed=4294967296: must be below 2**32 (4294967296)"),
    (
        ["loss._target_=fault_plugins.NaNAtStep"],  # a trusted class its config cannot build
        2,
        "loss._target_=fault_plugins.NaNAtStep: could not be built (NaNAtStep.__init__() "
        "missing 1 required positional argument: 'step')",
    ),
    (["out_dir="], 2, "out_dir=: must name a folder (empty would put runs under /runs)"),
    (
        ["trainer.epochs"],
        2,
        "Error parsing override 'trainer.epochs'; missing EQUAL at '<EOF>'; See "
        "https://hydra.cc/docs/1.2/advanced/override_grammar/basic for details",
    ),
    (
        ["hydra.run.dir=/proc/regx-run"],
        2,
        "hydra.run.dir=/proc/regx-run: cannot create the folder /proc/regx-run (No such file "
        "or directory); set hydra.run.dir to a folder you can write",
    ),
]


@pytest.mark.parametrize(
    ("overrides", "code", "message"), CASES, ids=[" ".join(c[0]) for c in CASES]
)
def test_bad_config_fails_in_one_line(
    overrides: list[str], code: int, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    got, out, err = hydra_in_process([*BASE, *overrides])
    line = error_line(err)
    assert got == code, err
    if message.endswith((": ", "? ")):  # a list that grows as groups gain options
        assert line.startswith(f"error: {message}"), line
    else:
        assert line == f"error: {message}"
    assert "Traceback" not in out
    # nothing trained, and nothing left behind: no run dir, not even an empty outputs/
    assert sorted(tmp_path.rglob("*")) == []


def test_missing_data_from_an_unset_environment_variable_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """scale=cifar reads its folder from REGX_CIFAR10; unset, the error says to set it (and
    with it set to a wrong folder, only the folder is named)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REGX_CIFAR10", raising=False)
    got, _, err = hydra_in_process(["scale=cifar", "trainer=smoke"])
    assert got == 3, err
    assert error_line(err) == (
        "error: data/cifar10-jpg/train does not exist: an ImageFolder root needs "
        "train/<class>/ and test/<class>/ subfolders (set dataset.root=DIR); REGX_CIFAR10 is "
        "not set, so dataset.root took its fallback: set REGX_CIFAR10=DIR"
    )
    monkeypatch.setenv("REGX_CIFAR10", str(tmp_path / "elsewhere"))
    got, _, err = hydra_in_process(["scale=cifar", "trainer=smoke"])
    assert got == 3 and "REGX_CIFAR10" not in error_line(err)
    assert error_line(err).startswith(f"error: {tmp_path / 'elsewhere' / 'train'} does not exist")
    assert sorted(tmp_path.rglob("*")) == []  # no run folder left behind


def test_resume_of_a_folder_that_is_no_run(tmp_path: Path) -> None:
    from regx.app.hydra_task import run_hydra

    code = run_hydra([], resume=tmp_path)
    assert code == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["train", "loss.gamma=0.5"],
            "error: loss.gamma=0.5: loss=ce has no key 'gamma'; options of loss with one: "
            "focal, gamma_ce (e.g. loss=focal loss.gamma=0.5)",
        ),
        (
            ["train", "dataset=synthetic", "trainer.optimizer.lr=-1"],
            "error: trainer.optimizer.lr=-1.0: must be in (0, 3.40282e+38]",
        ),
        (
            ["train", "--resume", "not-a-run"],
            "error: --resume not-a-run: no such folder; pass the run's directory",
        ),
        (
            ["train", "-m", "seed=0,1", "--cfg", "job"],
            "error: -m and --cfg cannot be combined: Hydra runs one of them; to see a sweep "
            "job's config, drop -m: regx train --cfg job OVERRIDES",
        ),
        pytest.param(
            ["train", "-m", "hydra/launcher=submitit_slurm", "seed=0,1", "trainer=smoke"],
            "error: hydra/launcher=submitit_slurm: this machine has no srun (not a SLURM "
            "cluster); run from a SLURM login node, or use hydra/launcher=submitit_local or "
            "hydra/launcher=joblib",
            marks=pytest.mark.skipif(shutil.which("srun") is not None, reason="srun is here"),
        ),
    ],
    ids=["hydra-struct", "lr-range", "resume-not-a-run", "two-hydra-modes", "no-slurm"],
)
def test_cli_process_prints_one_line_and_exits_2(
    args: list[str], message: str, tmp_path: Path
) -> None:
    proc = regx_process(args, cwd=tmp_path)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, err
    assert error_line(err) == message
    assert "Traceback" not in out + err


def test_resume_option_without_a_folder_is_a_usage_error() -> None:
    from regx.cli import app

    result = CliRunner().invoke(app, ["train", "--resume"])
    assert result.exit_code == 2
    assert "Option '--resume' requires an argument" in result.output


def test_bf16_on_a_cpu_without_native_support_is_explained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Not an error: torch emulates bfloat16 on such CPUs; the run says it will be slow."""
    import regx.engine.trainer as trainer_module
    from regx.config.build import build_spec

    monkeypatch.setattr(trainer_module, "cpu_has_bf16", lambda: False)
    spec = build_spec(compose_config([*BASE, *FAST, "trainer.precision=bf16"]))
    with caplog.at_level(logging.WARNING, logger="regx"):
        trainer = trainer_module.Trainer(spec, tmp_path / "run")
    assert str(trainer.device) == "cpu"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        m.startswith("trainer.precision=bf16: this CPU has no native bfloat16") for m in warnings
    ), warnings
