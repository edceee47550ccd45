"""Damaged inputs and the messages they give: failures before training leave no run dir,
divergence lines name the step and the last finite loss, `regx report` lists damaged runs
and reports the rest, `regx evaluate` and resumes name the damaged file and the fix. Each
case: the exit code, exactly one `error:` line, no traceback.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from fault_helpers import error_line, hydra_in_process, read_summary, regx_process
from run_dir_helpers import TINY, cli, copy_run, make_finished_run, resume_in_process, tree


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_finished_run(tmp_path_factory)


# -- failures before training leave nothing --------------------------------------------------------
def test_offline_dataset_leaves_no_run_dir_and_its_line_is_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    empty = tmp_path / "data"
    code, _, err = hydra_in_process(
        [*TINY, "dataset=mnist", f"dataset.root={empty}", "dataset.download=false"]
    )
    assert code == 3
    assert error_line(err).startswith("error: mnist is missing and dataset.download=false (")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no outputs/, no data/


def test_a_long_download_error_is_cut_at_a_word(monkeypatch: pytest.MonkeyPatch) -> None:
    from regx.data.torchvision_sets import MNIST
    from regx.errors import DataError

    words = "Error downloading train-images-idx3-ubyte.gz: Tried https://example.org/mnist/, got: "
    message = words + "<urlopen error [Errno -3] Temporary failure in name resolution> " * 4

    def offline(self: MNIST, train: bool) -> None:
        raise RuntimeError(message)

    monkeypatch.setattr(MNIST, "_torchvision_dataset", offline)
    with pytest.raises(DataError) as caught:
        MNIST(root="/nonexistent")._load_raw()
    reason = str(caught.value).split(" (", 1)[1].split("); put the files", 1)[0]
    assert reason.endswith(" …") and len(reason) <= 162
    assert message.startswith(reason.removesuffix(" …"))
    assert message[len(reason) - 2] == " "  # the cut is between two words


def test_a_sweep_job_that_fails_before_training_keeps_its_folder(tmp_path: Path) -> None:
    """Decided: in a sweep, every job's folder stays (its report lists the job as failed)."""
    sweep = tmp_path / "sweep"
    code, _, err = hydra_in_process(
        ["-m", *TINY, "trainer.epochs=-1,0", f"hydra.sweep.dir={sweep}"]
    )
    assert code == 1  # both jobs ran (and failed): the sweep did not succeed
    assert err.count("error: trainer.epochs=") == 2
    assert err.strip().splitlines()[-1].startswith("error: 2 of 2 jobs did not finish")
    assert [read_summary(sweep / j)["status"] for j in ("0", "1")] == ["failed", "failed"]


def test_a_folder_under_a_regular_file_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "f").write_text("")
    for key, name in (("out_dir", "f/sub"), ("hydra.sweep.dir", "f/sweep")):
        mode = ["-m"] if key == "hydra.sweep.dir" else []
        code, _, err = hydra_in_process([*mode, *TINY, f"{key}={name}"])
        line = error_line(err)
        assert code == 2
        assert line.startswith(f"error: {key}={name}: cannot create the folder f/"), line
        assert line.endswith(f": f is a file, not a folder; choose another {key}"), line
    assert tree(tmp_path) == {"f": b""}


def test_an_untrusted_callback_of_a_config_dir_is_one_line(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    for name, target in (("shell", "os.system"), ("mine", "mylab.Callback")):
        (conf / f"{name}.yaml").write_text(
            f"defaults:\n  - config\n  - _self_\nhydra:\n  callbacks:\n    x:\n      _target_: {target}\n"
        )
    code, _, err = hydra_in_process(["-cd", str(conf), "-cn", "shell", *TINY])
    assert code == 2
    assert error_line(err) == (
        "error: hydra.callbacks.x._target_=os.system is refused: a config may not call what "
        "runs commands or code; point _target_ at a class of your own"
    )
    code, _, err = hydra_in_process(["-cd", str(conf), "-cn", "mine", *TINY])
    assert code == 2
    from regx.config.hydra_compat import HAS_EXECUTION_WHITELIST

    if HAS_EXECUTION_WHITELIST:  # Hydra 1.4 refuses it before importing
        expected = (
            "error: hydra.callbacks.x._target_=mylab.Callback is not trusted (regx instantiates "
            "regx.*, hydra_plugins.*); to use your own class, export "
            "REGX_TRUSTED_TARGETS='mylab.*'"
        )
    else:  # Hydra 1.3 has no whitelist: it imports the target, which does not exist
        expected = (
            "error: _target_=mylab.Callback cannot be imported: fix the name, or install the "
            "package that holds it"
        )
    assert error_line(err) == expected


def test_hydra_full_error_0_means_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HYDRA_FULL_ERROR", "0")
    code, _, err = hydra_in_process([*TINY, "trainer.epochs=-1"])
    assert code == 2
    assert error_line(err) == "error: trainer.epochs=-1: must be in [1, inf)"


# -- divergence lines ---------------------------------------------------------------------------
def test_nan_at_the_first_step_of_an_epoch_names_the_last_finite_loss(tmp_path: Path) -> None:
    """synthetic: 460 training images = 7 steps of 64; step 8 is epoch 2's first."""
    code, _, err = hydra_in_process(
        [
            *TINY,
            "trainer.epochs=3",
            "loss._target_=fault_plugins.NaNAtStep",
            "+loss.step=8",
            f"hydra.run.dir={tmp_path / 'r'}",
        ]
    )
    line = error_line(err)
    assert code == 4
    assert "the loss became NaN/Inf at epoch 2, step 1 (last finite loss " in line, line
    last = float(line.split("(last finite loss ")[1].split(")")[0])
    assert 0 < last < 5


def test_nan_weights_name_the_step_and_the_last_finite_loss(tmp_path: Path) -> None:
    code, _, err = hydra_in_process(
        [
            *TINY,
            "loss._target_=fault_plugins.NaNGradientAtStep",
            "+loss.step=7",
            f"hydra.run.dir={tmp_path / 'r'}",
        ]
    )
    line = error_line(err)
    assert code == 4
    assert (
        "the weights became NaN/Inf during epoch 1, at its last step 7 (a NaN/Inf gradient; "
        in line
    )
    last = float(line.split("last finite loss ")[1].split(")")[0])
    assert 0 < last < 5


# -- regx report --------------------------------------------------------------------------------------
DAMAGE = {
    "summary-list": (
        "summary.json",
        "[1, 2, 3]\n",
        "summary.json: holds a JSON list, not an object",
    ),
    "summary-bytes": ("summary.json", b"\xff\xfe{", "summary.json: not UTF-8 text"),
    "overrides-yaml": (
        ".hydra/overrides.yaml",
        "a: [b\n",
        ".hydra/overrides.yaml: not valid YAML (",
    ),
    "hydra-yaml": (".hydra/hydra.yaml", ": : :\n", ".hydra/hydra.yaml: not valid YAML ("),
    "config-list": (
        ".hydra/config.yaml",
        "- a\n- b\n",
        ".hydra/config.yaml: holds a list, not a mapping",
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_report_lists_a_damaged_run_and_reports_the_rest(
    finished: Path, tmp_path: Path, damage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "40")  # narrower than the line: it must not be broken
    name, content, why = DAMAGE[damage]
    root = tmp_path / "runs"
    copy_run(finished, root / "good")
    bad = copy_run(finished, root / "bad")
    path = bad / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    before = tree(root)
    code, out, err = cli("report", str(root), "--out", str(tmp_path / "report"))
    assert code == 0, err
    assert err == ""
    assert f"unreadable: {bad}: {why}" in out
    text = (tmp_path / "report" / "report.md").read_text()
    assert "1 found, 1 finished" in text and "1 unreadable" in text
    assert f"- unreadable: `{bad}`: {why}" in text
    assert tree(root) == before


@pytest.mark.parametrize(
    ("key", "value", "shown"),
    [("test.acc", "abc", '"abc"'), ("between.linearity_gap.0.5", [0.1], "[0.1]"),
     ("val.acc", True, "true")],
)  # fmt: skip
def test_report_lists_a_finished_run_with_a_non_number_metric_as_unreadable(
    finished: Path, tmp_path: Path, key: str, value: object, shown: str
) -> None:
    """Counted as finished, the run would enter its group's n but not its mean."""
    root = tmp_path / "runs"
    copy_run(finished, root / "good")
    bad = copy_run(finished, root / "bad")
    summary = json.loads((bad / "summary.json").read_text())
    *parents, last = key.split(".", 2) if key.startswith("between") else key.split(".")
    node = summary
    for part in parents:
        node = node[part]
    node[last] = value
    (bad / "summary.json").write_text(json.dumps(summary))
    code, out, err = cli("report", str(root), "--out", str(tmp_path / "report"))
    assert code == 0, err
    why = f"summary.json: {key} is {shown}, not a number"
    assert f"unreadable: {bad}: {why}" in out
    text = (tmp_path / "report" / "report.md").read_text()
    assert "1 found, 1 finished" in text and "1 unreadable" in text


def test_report_of_only_damaged_runs_is_one_line(finished: Path, tmp_path: Path) -> None:
    bad = copy_run(finished, tmp_path / "bad")
    (bad / "summary.json").write_text("[]")
    code, _, err = cli("report", str(bad), "--out", str(tmp_path / "o"))
    assert code == 2
    assert error_line(err) == (
        f"error: no readable regx runs under {bad}: unreadable: {bad}: summary.json: holds a "
        "JSON list, not an object"
    )


def test_report_out_that_cannot_be_written_is_one_line(finished: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    code, _, err = cli("report", str(finished), "--out", str(tmp_path / "file" / "r"))
    assert code == 2
    assert error_line(err) == (
        f"error: --out {tmp_path / 'file' / 'r'}: cannot write the report there (Not a "
        "directory); pass --out a folder you can write"
    )
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    readonly.chmod(0o555)
    target = (
        readonly / "r" if os.geteuid() != 0 else Path("/sys/regx-report")
    )  # root writes anywhere
    code, _, err = cli("report", str(finished), "--out", str(target))
    assert code == 2
    assert error_line(err).startswith(f"error: --out {target}: cannot write the report there (")


def test_report_out_as_a_dangling_link_names_where_it_points(
    finished: Path, tmp_path: Path
) -> None:
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "gone")
    code, _, err = cli("report", str(finished), "--out", str(link))
    assert code == 2
    assert error_line(err) == (
        f"error: --out {link} is a link to {tmp_path / 'gone'}, which does not exist: create "
        "that folder, or pass another"
    )


def test_report_never_writes_into_a_run(finished: Path, tmp_path: Path) -> None:
    run_dir = copy_run(finished, tmp_path / "run")
    before = tree(run_dir)
    code, _, err = cli("report", str(finished), "--out", str(run_dir))
    assert code == 2
    assert error_line(err) == (
        f"error: --out {run_dir} is a run directory; the report would replace its report.md: "
        "pass --out another folder"
    )
    assert tree(run_dir) == before


# -- regx evaluate ------------------------------------------------------------------------------------
def test_evaluate_with_a_corrupt_best_pt_gives_evaluate_fixes(
    finished: Path, tmp_path: Path
) -> None:
    run_dir = copy_run(finished, tmp_path / "run")
    best = run_dir / "checkpoints" / "best.pt"
    best.write_bytes(best.read_bytes()[:1000])
    proc = regx_process(["evaluate", str(run_dir)], cwd=tmp_path)
    out, err = proc.communicate(timeout=300)
    line = error_line(err)
    assert proc.returncode == 3
    # torch's reason, cut after its first sentence (not mid-word)
    assert line.startswith(
        f"error: checkpoint {best} is unreadable (PytorchStreamReader failed reading zip "
        "archive: failed finding central directory): "
    ), line
    assert line.endswith(
        "delete it to use the best weights checkpoints/last.pt keeps, or re-train the run"
    )
    assert "trainer.resume" not in line and "Traceback" not in out + err
    (run_dir / "checkpoints" / "last.pt").unlink()
    code, _, err = cli("evaluate", str(run_dir))
    assert code == 3
    assert error_line(err).endswith(
        "the run's weights are lost: re-train the run (its overrides: .hydra/overrides.yaml)"
    )


def test_evaluate_with_damaged_run_files_is_one_line(finished: Path, tmp_path: Path) -> None:
    run_dir = copy_run(finished, tmp_path / "run")
    torch.save({"epoch": 1}, run_dir / "checkpoints" / "best.pt")  # no weights in it
    code, _, err = cli("evaluate", str(run_dir))
    assert code == 3
    assert "best.pt holds no model weights (no 'model')" in error_line(err)

    shutil.copy(finished / "checkpoints" / "best.pt", run_dir / "checkpoints" / "best.pt")
    config = run_dir / ".hydra" / "config.yaml"
    config.write_text("a: [\n")
    code, _, err = cli("evaluate", str(run_dir))
    assert code == 1
    assert error_line(err) == (
        f"error: {config} is unreadable (expected the node content, but found '<stream end>'); "
        f"regx rebuilds the run from it: copy back {run_dir / '.hydra' / 'kept' / 'config.yaml'}, "
        "the run's own"
    )
    shutil.copy(finished / ".hydra" / "config.yaml", config)
    (run_dir / "eval").write_text("")  # a file where the evaluations go
    code, _, err = cli("evaluate", str(run_dir))
    assert code == 1
    assert error_line(err).startswith(f"error: cannot write the evaluation: {run_dir / 'eval'}/")


# -- resuming damaged checkpoints and run files -----------------------------------------------------
def test_resume_from_a_checkpoint_without_training_state_is_one_line(
    finished: Path, tmp_path: Path
) -> None:
    run_dir = copy_run(finished, tmp_path / "run", status="interrupted")
    last = run_dir / "checkpoints" / "last.pt"
    torch.save({"model": {}}, last)
    code, _, err = resume_in_process(run_dir)
    assert code == 3
    assert error_line(err) == (
        f"error: checkpoint {last} is no regx training checkpoint (it lacks optimizer, "
        "scheduler, scaler, loss, train_state, rng): delete it to start the run over, or pass "
        "trainer.resume=never"
    )


def test_a_folder_where_a_run_file_belongs_is_one_line(finished: Path, tmp_path: Path) -> None:
    run_dir = copy_run(finished, tmp_path / "run", status="interrupted")
    (run_dir / "predictions.npz").unlink()
    (run_dir / "predictions.npz").mkdir()
    code, _, err = resume_in_process(run_dir)
    line = error_line(err)
    assert code == 1
    assert line.startswith("error: Is a directory (IsADirectoryError): ")
    assert line.endswith(f"then continue with: regx train --resume {run_dir}")
    assert read_summary(run_dir)["status"] == "failed"
