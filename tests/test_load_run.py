"""`regx.load_run` and the files it reads, given what a careless or hostile user passes: a
checkpoint or config that would run code, images of the wrong shape, devices this machine
lacks, damaged or edited run files. Each is one UserError saying what is wrong; the
caller's random streams are left as they were."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import regx
from fault_helpers import error_line, regx_process
from regx.engine.checkpoint import load_checkpoint, rng_state, set_rng_state
from regx.errors import DataError, UserError
from run_dir_helpers import copy_run, make_finished_run


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_finished_run(tmp_path_factory)


class RunsAShellCommand:
    """Unpickling this runs a command: what a hostile checkpoint would hide."""

    def __init__(self, mark: Path) -> None:
        self.mark = mark

    def __reduce__(self):
        return (subprocess.call, (["touch", str(self.mark)],))


def test_a_checkpoint_that_would_run_code_is_refused_unopened(finished, tmp_path) -> None:
    run_dir = copy_run(finished, tmp_path / "run")
    mark = tmp_path / "the command ran"
    best = run_dir / "checkpoints" / "best.pt"
    torch.save({"model": {}, "epoch": 1, "x": RunsAShellCommand(mark)}, best)
    with pytest.raises(DataError, match="holds objects other than tensors and plain values"):
        regx.load_run(run_dir)
    proc = regx_process(["evaluate", str(run_dir)], cwd=tmp_path)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 3
    assert error_line(err).startswith(f"error: checkpoint {best} holds objects other than")
    assert not mark.exists()


def test_checkpoints_store_plain_rng_states_and_read_earlier_numpy_ones(tmp_path) -> None:
    np.random.seed(5)
    np.random.normal()  # a cached gaussian is part of the state
    state = rng_state()
    assert isinstance(state["numpy"]["keys"], torch.Tensor)
    expected = (np.random.normal(), random.random(), torch.rand(3))
    set_rng_state(state)
    earlier = {**state, "numpy": np.random.get_state()}  # an array, as earlier versions kept it
    for name, rng in (("new.pt", state), ("earlier.pt", earlier)):
        torch.save({"model": {}, "rng": rng}, tmp_path / name)
        set_rng_state(load_checkpoint(tmp_path / name)["rng"])
        again = (np.random.normal(), random.random(), torch.rand(3))
        assert again[:2] == expected[:2] and torch.equal(again[2], expected[2])


def test_a_config_naming_a_command_is_refused_in_one_line(finished, tmp_path) -> None:
    run_dir = copy_run(finished, tmp_path / "run")
    config_file = run_dir / ".hydra" / "config.yaml"
    config = yaml.safe_load(config_file.read_text())
    config["model"] = {"_target_": "subprocess.call", "args": ["touch", str(tmp_path / "x")]}
    config_file.write_text(yaml.safe_dump(config))
    expected = (
        "model._target_=subprocess.call is refused: a config may not call what runs commands "
        "or code; point _target_ at a class of your own"
    )
    with pytest.raises(UserError) as refused:
        regx.load_run(run_dir)
    assert str(refused.value) == expected
    proc = regx_process(["evaluate", str(run_dir)], cwd=tmp_path)
    _, err = proc.communicate(timeout=300)
    assert (proc.returncode, error_line(err)) == (2, f"error: {expected}")
    assert not (tmp_path / "x").exists()


def test_images_must_have_the_trained_shape(finished) -> None:
    run = regx.load_run(finished)
    c, h, w = run.image_shape
    good = torch.randint(0, 256, (3, c, h, w), dtype=torch.uint8)
    assert run.predict(good).shape == (3, len(run.classes))
    assert run.embed(good.numpy()).shape[0] == 3  # numpy arrays are taken as they are
    cases = [
        (good.permute(0, 2, 3, 1), "; channels last? pass images.permute(0, 3, 1, 2)"),
        (good.repeat(1, 3, 1, 1), ": convert or resize them first"),
        (good[:, :, :-1, :-1], ": convert or resize them first"),
        (good[:0].repeat(1, 2, 1, 1), ": convert or resize them first"),  # N = 0 too
    ]
    for images, hint in cases:
        with pytest.raises(UserError) as wrong:
            run.predict(images)
        assert str(wrong.value) == (
            f"images must be (N, {c}, {h}, {w}), the shape the run trained on, got "
            f"{tuple(images.shape)}{hint}"
        )
    with pytest.raises(UserError, match=r"^images must be a uint8 tensor or array .* NoneType"):
        run.predict(None)


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("nonsense", "device='nonsense' is not a device: pass 'cpu', 'cuda', 'cuda:N', 'mps'"),
        (None, "device=None is not a device"),
        ("meta", "device='meta' is not a device"),
    ],
)
def test_a_device_this_machine_lacks_is_one_error_naming_the_argument(
    finished, device, message
) -> None:
    with pytest.raises(UserError) as wrong:
        regx.load_run(finished, device=device)
    assert str(wrong.value).startswith(message)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_names_the_device_argument(finished) -> None:
    with pytest.raises(UserError, match=r"^device='cuda': CUDA is not available"):
        regx.load_run(finished, device="cuda")


def test_load_run_leaves_the_callers_random_streams_alone(finished) -> None:
    torch.manual_seed(11)
    before = torch.get_rng_state()
    regx.load_run(finished)
    assert torch.equal(torch.get_rng_state(), before)


@pytest.mark.parametrize(
    ("text", "why"),
    [("model: [unclosed\n", "expected ',' or ']', but got '<stream end>'"), ("", "it is empty")],
)
def test_an_unreadable_config_names_the_file_and_the_kept_copy(
    finished, tmp_path, text, why
) -> None:
    run_dir = copy_run(finished, tmp_path / "run")
    (run_dir / ".hydra" / "config.yaml").write_text(text)
    with pytest.raises(UserError) as unreadable:
        regx.load_run(run_dir)
    assert str(unreadable.value) == (
        f"{run_dir / '.hydra' / 'config.yaml'} is unreadable ({why}); regx rebuilds the run "
        f"from it: copy back {run_dir / '.hydra' / 'kept' / 'config.yaml'}, the run's own"
    )


def test_weights_that_do_not_fit_the_edited_config_name_the_mismatch(finished, tmp_path) -> None:
    run_dir = copy_run(finished, tmp_path / "run")
    config_file = run_dir / ".hydra" / "config.yaml"
    config = yaml.safe_load(config_file.read_text())
    config["model"]["hidden"] = [2 * h for h in config["model"]["hidden"]]
    config_file.write_text(yaml.safe_dump(config))
    with pytest.raises(UserError) as wrong:
        regx.load_run(run_dir)
    message = str(wrong.value)
    assert message.startswith(
        "checkpoints/best.pt does not fit the model .hydra/config.yaml describes (size "
        "mismatch for "
    )
    assert message.endswith("was the config edited? copy back .hydra/kept/config.yaml")


def test_an_unfinished_run_loads_with_a_warning(finished, tmp_path) -> None:
    run_dir = copy_run(finished, tmp_path / "run", status="interrupted")
    with pytest.warns(UserWarning, match=r"did not finish \(summary.json: status interrupted\)"):
        regx.load_run(run_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        regx.load_run(finished)


def test_a_run_that_diverged_before_its_first_checkpoint_says_so(finished, tmp_path) -> None:
    run_dir = copy_run(finished, tmp_path / "run", status="diverged")
    shutil.rmtree(run_dir / "checkpoints")
    with pytest.raises(UserError, match=r"\(it ended diverged before its first checkpoint\)$"):
        regx.load_run(run_dir)


def test_paths_are_taken_as_a_user_writes_them(finished, tmp_path, monkeypatch) -> None:
    home = tmp_path / "home"
    sweep = home / "sweep"
    for job in ("0", "1"):
        copy_run(finished, sweep / job)
    monkeypatch.setenv("HOME", str(home))
    assert regx.load_run("~/sweep/1").run_dir == sweep / "1"
    assert regx.load_run(os.fsencode(sweep / "0")).run_dir == sweep / "0"
    with pytest.raises(UserError) as wrong:
        regx.load_run(sweep)
    assert str(wrong.value) == (
        f"{sweep} is a sweep of 2 runs, not a run: pass one of them "
        f"(e.g. regx.load_run('{sweep / '0'}'))"
    )
    with pytest.raises(UserError, match=r"^run_dir must be a path \(str or Path\), got NoneType"):
        regx.load_run(None)


def test_a_record_whose_classes_do_not_match_the_model_is_not_trusted(finished, tmp_path) -> None:
    run_dir = copy_run(finished, tmp_path / "run")
    summary = json.loads((run_dir / "summary.json").read_text())
    true_classes = summary["dataset"]["classes"]
    summary["dataset"]["classes"] = ["a", "b"]  # fewer names than the model has outputs
    (run_dir / "summary.json").write_text(json.dumps(summary))
    assert regx.load_run(run_dir).classes == true_classes  # from the data instead


@pytest.mark.parametrize("std", [[0.0], [-1.0], [float("nan")], [float("inf")]])
def test_a_record_whose_normalization_could_not_have_been_trained_with_is_not_trusted(
    finished, tmp_path, std
) -> None:
    run_dir = copy_run(finished, tmp_path / "run")
    summary = json.loads((run_dir / "summary.json").read_text())
    true_std = summary["dataset"]["std"]
    summary["dataset"]["std"] = std  # json writes nan and inf as NaN and Infinity
    (run_dir / "summary.json").write_text(json.dumps(summary))
    run = regx.load_run(run_dir)
    expected_scale = 1.0 / (255.0 * torch.tensor(true_std))  # from the data instead
    torch.testing.assert_close(run.normalize.scale.flatten(), expected_scale)


def test_putting_back_a_run_s_hydra_files_never_unpickles_code(tmp_path) -> None:
    from regx.app.run_dirs import kept_hydra_files

    (tmp_path / "checkpoints").mkdir()
    last = tmp_path / "checkpoints" / "last.pt"
    torch.save({"model": {}, "hydra_files": {"config.yaml": "seed: 3\n"}}, last)
    assert kept_hydra_files(tmp_path) == {"config.yaml": "seed: 3\n"}  # no .hydra/kept/
    mark = tmp_path / "the command ran"
    torch.save({"model": {}, "hydra_files": {}, "x": RunsAShellCommand(mark)}, last)
    assert kept_hydra_files(tmp_path) == {}
    assert not mark.exists()
