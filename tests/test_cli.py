"""The `regx` command: help without torch, Hydra pass-through, run dirs, one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TINY = ["dataset=synthetic", "trainer=smoke", "trainer.epochs=1", "trainer.progress=false"]


def test_help_does_not_import_torch_or_hydra():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from regx.cli import app\n"
        "r = CliRunner()\n"
        "assert r.invoke(app, ['--help']).exit_code == 0\n"
        "out = r.invoke(app, ['train', '--help'])\n"
        "assert out.exit_code == 0 and 'Hydra' in out.output, out.output\n"
        "print(sorted(m for m in ('torch', 'hydra', 'matplotlib', 'sklearn') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_bare_regx_prints_help(cli):
    result = cli()
    assert result.returncode == 0
    assert "Usage" in result.stdout and "train" in result.stdout


def _run_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.rglob(".hydra") if p.is_dir())


def test_single_run_prints_its_dir_and_writes_the_spec_files(cli, tmp_path):
    result = cli("train", *TINY, "+aug=mixup", "aug.prob=0")  # aug.prob=0: one warning
    assert result.returncode == 0, result.stderr
    (run_dir,) = _run_dirs(tmp_path / "outputs" / "runs")
    assert f"run dir: {run_dir}" in result.stdout
    # info on stdout, the warning on stderr only, both in train.log
    warning = "aug=mixup mixes no batch (aug.prob=0): the run trains without it"
    assert "epoch   1/1" in result.stdout and warning not in result.stdout
    assert f"warning: {warning}\n" in result.stderr
    assert f"[WARNING] {warning}\n" in (run_dir / "train.log").read_text()
    for name in (
        "metrics.csv",
        "summary.json",
        "predictions.npz",
        "report.md",
        "reliability.png",
        "confidence.png",
        "train.log",
        "checkpoints/last.pt",
        "checkpoints/best.pt",
        ".hydra/config.yaml",
        ".hydra/overrides.yaml",
    ):
        assert (run_dir / name).is_file(), name
    assert "epoch   1/1" in (run_dir / "train.log").read_text()


def test_multirun_writes_one_dir_per_job(cli, tmp_path):
    result = cli("train", "-m", "seed=0,1", *TINY)
    assert result.returncode == 0, result.stderr
    dirs = _run_dirs(tmp_path / "outputs" / "multirun")
    assert [d.name for d in dirs] == ["0", "1"]
    for d in dirs:
        assert (d / "summary.json").is_file() and (d / "predictions.npz").is_file()
    assert "seed=1" in (dirs[1] / ".hydra" / "overrides.yaml").read_text()


def test_hydra_flags_pass_through(cli, tmp_path):
    result = cli("train", "--cfg", "job", "loss=ce", "seed=5")
    assert result.returncode == 0, result.stderr
    assert "seed: 5" in result.stdout and "_target_: regx.losses.ce.CrossEntropy" in result.stdout
    assert not (tmp_path / "outputs").exists()  # printing the config trains nothing
    info = cli("train", "--info", "defaults")
    assert info.returncode == 0 and "dataset/digits" in info.stdout


def test_config_errors_are_one_line_exit_2(cli):
    for args, expected in [
        (["loss.nope=1"], "loss.nope=1: unknown key; loss=ce takes no keys"),
        (["trainer.epochs=-1"], "trainer.epochs=-1: must be in [1, inf)"),
        (
            ["dataset=nope"],
            "dataset=nope: no such option; options of dataset: cifar10, cifar100, digits",
        ),
    ]:
        result = cli("train", *args)
        assert result.returncode == 2, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], (args, result.stderr)
        assert "Traceback" not in result.stderr + result.stdout


def test_offline_torchvision_dataset_fails_in_one_line(cli, tmp_path):
    result = cli(
        "train", "dataset=cifar10", f"dataset.root={tmp_path}/c10", "dataset.download=false"
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cifar-10-batches-py" in lines[0], result.stderr


# -- discoverability: --version, completion, regx list ---------------------------------------
def test_version_is_the_package_version_and_imports_no_torch():
    import tomllib

    root = Path(__file__).resolve().parent.parent
    version = tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from regx.cli import app\n"
        "out = CliRunner().invoke(app, ['--version'])\n"
        "print(out.exit_code, repr(out.output), 'torch' in sys.modules, 'hydra' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"0 'regx {version}\\n' False False"


def test_shell_completion_completes_the_commands(tmp_path):
    # what `regx --install-completion` installs: the shell calls the `regx` script this way
    script = Path(sys.executable).parent / "regx"
    env = {"_REGX_COMPLETE": "complete_bash", "COMP_WORDS": "regx re", "COMP_CWORD": "1"}
    result = subprocess.run(
        [str(script)], env={**os.environ, **env}, capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0 and result.stdout.split() == ["report"]


def _table_rows(text: str, key_prefix: str) -> dict[str, list[str]]:
    """The rows of rich tables in `text` whose first cell starts with `key_prefix`."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if line.startswith("│") and cells[0].startswith(key_prefix):
            rows[cells[0]] = cells[1:]
    return rows


def test_list_group_shows_each_parameter_with_type_default_and_comment(capsys, monkeypatch):
    import typing

    from regx.config.catalog import print_catalog
    from regx.losses.gamma_ce import GammaCrossEntropy

    monkeypatch.setenv("COLUMNS", "250")  # one line per row
    assert print_catalog("loss") == 0
    text = capsys.readouterr().out
    rows = _table_rows(text, "loss.")
    # the YAML's trailing comments, read here on their own
    yaml_lines = (Path(__file__).parent.parent / "conf/loss/gamma_ce.yaml").read_text()
    comment = {
        ln.split(":")[0]: ln.split("#", 1)[1].strip() for ln in yaml_lines.splitlines() if "#" in ln
    }
    # the type with the range the constructor checks (its `Range` annotation)
    assert rows["loss.gamma"] == ["a number in [0, 1]", "0.1", comment["gamma"]]
    assert rows["loss.s"][:2] == ["a number in (0, ∞)", "30.0"]  # am_softmax
    assert rows["loss.margin_every"][:2] == ["an integer ≥ 1 (epochs)", "5"]
    schedules = typing.get_args(typing.get_type_hints(GammaCrossEntropy.__init__)["schedule"])
    assert rows["loss.schedule"][:2] == ["one of " + ", ".join(schedules), "constant"]
    assert rows["loss.gamma_end"][:2] == ["a number in [0, 1] or null", "null"]
    assert rows["loss.epsilon"][:2] == ["a number in [0, 1)", "0.1"]  # label_smoothing
    # each option: its class, then the first sentence of the class's (or module's) docstring
    lines = text.splitlines()
    head = lines.index("loss=gamma_ce  (GammaCrossEntropy)")
    assert lines[head + 1].startswith("γ-cross-entropy")
    assert "loss=ce  (CrossEntropy)" in lines and "(no parameters)" in text


def test_list_reads_settings_classes_and_nested_tracker_nodes(capsys, monkeypatch):
    from regx.config.catalog import print_catalog

    monkeypatch.setenv("COLUMNS", "250")
    assert print_catalog("trainer") == 0
    rows = _table_rows(capsys.readouterr().out, "trainer.")
    # trainer has no _target_: its types and comments come from TrainerSettings
    # and their limits from regx.config.schema.TRAINER_LIMITS, which validate_trainer checks
    assert rows["trainer.optimizer.momentum"] == [
        "a number in [0, 1)",
        "0.9",
        "SGD momentum; AdamW's beta1",
    ]
    assert rows["trainer.threads"] == ["an integer ≥ 1 or null", "null", "null: all cores"]
    assert rows["trainer.monitor"][:2] == ["one of val_acc, val_loss, val_ece", "val_acc"]
    assert rows["trainer.scheduler.milestones"][:2] == ["a list of numbers", "[0.5, 0.75]"]
    assert print_catalog("logger") == 0
    rows = _table_rows(capsys.readouterr().out, "logger.")
    assert rows["logger.mlflow.store_dir"][:2] == ["a string", "${out_dir}"]
    assert rows["logger.mlflow.tracking_uri"][:2] == ["a string or null", "null"]


def test_list_overview_imports_no_torch():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from regx.cli import app\n"
        "out = CliRunner(env={'COLUMNS': '250'}).invoke(app, ['list'])\n"
        "assert out.exit_code == 0, out.output\n"
        "print('torch' in sys.modules)\n"
        "print(out.output)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    first, _, listing = out.stdout.partition("\n")
    assert first == "False"
    rows = _table_rows(listing, "gamma_ce")
    assert rows["gamma_ce"][0] == "GammaCrossEntropy"
    assert rows["gamma_ce"][1].startswith("γ-cross-entropy: L = −log(γ + (1−γ)·p_y) / (1−γ)")


def test_list_unknown_group_names_the_closest(cli):
    result = cli("list", "los")
    assert result.returncode == 2
    assert result.stderr.startswith("error: no config group 'los'; did you mean loss? groups: ")
    assert result.stderr.count("\n") == 1


def test_yaml_comments_describe_keys():
    from regx.config.catalog import header_comment, yaml_comments

    text = (
        "# @package _global_\n"
        "# The file. Its second sentence.\n"
        "top: 1\n"
        "node:\n"
        "  # Above the key. More.\n"
        "  inner: 2\n"
        "  tagged: 'a # b'   # after the value\n"
        "\n"
        "plain: 3\n"
    )
    assert header_comment(text) == "The file."
    assert yaml_comments(text) == {"node.inner": "Above the key.", "node.tagged": "after the value"}
    # a lead-in to the example commands below it ends the description with a period
    for lead_in, described in (
        ("at one scale (conf/scale/):", "at one scale (conf/scale/)."),
        ("from the login node; e.g.", "from the login node."),
    ):
        example = f"# A preset {lead_in}\n#   regx train -m experiment=x\nseed: 0\n"
        assert header_comment(example) == f"A preset {described}"


SMOKE_RUN = ["train", "trainer=smoke", "trainer.threads=1"]


def _regx(args: list[str], cwd: Path, **popen: object) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("REGX_DEBUG", "HYDRA_FULL_ERROR")}
    return subprocess.Popen([sys.executable, "-m", "regx", *args], cwd=cwd, env=env, **popen)


def test_a_reader_that_goes_away_does_not_fail_the_run(tmp_path):
    """`regx train … | head -c 10`: the run finishes and saves, no traceback, exit 0."""
    run_dir = tmp_path / "run"
    proc = _regx(
        [*SMOKE_RUN, f"hydra.run.dir={run_dir}"],
        tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout.read(10)
    proc.stdout.close()  # the reader is gone: every later write hits a closed pipe
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 0, err
    assert "Traceback" not in err and "Logging error" not in err
    assert '"status": "finished"' in (run_dir / "summary.json").read_text()


def test_closed_stderr_or_an_ascii_terminal_still_train(tmp_path):
    # stderr closed outright (2>&-): the process has no descriptor 2 at all
    r = subprocess.run(
        f"{sys.executable} -m regx {' '.join(SMOKE_RUN)} hydra.run.dir={tmp_path}/closed2 2>&-",
        shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout
    assert '"status": "finished"' in (tmp_path / "closed2" / "summary.json").read_text()
    from conftest import run_cli

    r = run_cli(
        [*SMOKE_RUN, f"hydra.run.dir='{tmp_path}/asc_ü'"], tmp_path, {"PYTHONIOENCODING": "ascii"}
    )
    assert r.returncode == 0, r.stderr
    assert f"run dir: {tmp_path}/asc_\\xfc" in r.stdout


def test_a_deleted_working_directory_is_named(tmp_path):
    gone = tmp_path / "gone"
    gone.mkdir()
    r = subprocess.run(
        f"cd {gone} && rmdir {gone} && {sys.executable} -m regx train trainer=smoke",
        shell=True, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == (
        "error: the current folder no longer exists: cd to one that does"
    )


def test_an_empty_path_argument_is_refused_not_read_as_the_current_folder(cli, tmp_path):
    """`regx report "$SWEEP"` with SWEEP unset must not report (and write into) the cwd."""
    for args, name in (
        (["report", ""], "PATHS"),
        (["report", str(tmp_path), "--out", ""], "--out"),
        (["evaluate", ""], "RUN_DIR"),
        (["train", "--resume", ""], "--resume"),
    ):
        r = cli(*args)
        assert r.returncode == 2, (args, r.stderr)
        assert r.stderr.strip().splitlines()[-1] == (
            f"Error: Invalid value for '{name}': empty: name a folder (an unset shell variable?)"
        )
    assert list(tmp_path.iterdir()) == []


def test_train_help_names_every_config_group() -> None:
    from regx.cli import TRAIN_HELP
    from regx.config.completion import complete_group

    named = TRAIN_HELP.split("Config groups: ")[1].split(" (")[0].split(", ")
    assert named == complete_group("")  # the groups that have options, in `regx list`'s order


def test_debug_mode_adds_the_traceback_and_changes_nothing_else(tmp_path: Path) -> None:
    env = {**os.environ, "REGX_DEBUG": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        [sys.executable, "-m", "regx", "train", "trainer.epochs=-1"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2
    assert "Traceback (most recent call last)" in done.stderr
    assert done.stderr.splitlines()[-1] == "error: trainer.epochs=-1: must be in [1, inf)"
    assert list(tmp_path.iterdir()) == []  # no run dir left, as without REGX_DEBUG
