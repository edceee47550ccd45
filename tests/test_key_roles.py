"""One table of config-key roles (regx.keys) decides what is "the same run": a resume and a
skip-done sweep accept a change of an execution or io key, and refuse an experiment key."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image

from fault_helpers import FAST, read_summary, regx_process, wait_for
from regx.app.sweeps import finished_run
from regx.errors import UserError
from regx.keys import comparison_config, config_differences, config_hash, role_of


def test_roles_of_keys_follow_the_longest_listed_prefix() -> None:
    assert role_of("trainer.threads") == "execution"
    assert role_of("trainer.epochs") == "experiment"
    assert role_of("trainer.optimizer.lr") == "experiment"
    assert role_of("dataset.cache_dir") == "io"
    assert role_of("dataset.subset") == "experiment"
    assert role_of("dataset.test_shift") == "evaluation"
    assert role_of("shift.severity") == "evaluation"
    assert role_of("seed") == "replicate"
    assert role_of("a_key_nobody_listed") == "experiment"


def test_hash_differences_and_comparison_derive_from_the_roles() -> None:
    base = {"seed": 0, "trainer": {"threads": None, "epochs": 5}, "dataset": {"cache_dir": "a"}}
    execution = {**base, "trainer": {"threads": 2, "epochs": 5}, "dataset": {"cache_dir": "b"}}
    experiment = {**base, "trainer": {"threads": None, "epochs": 6}}
    assert config_hash(base) == config_hash(execution)
    assert config_differences(base, execution) == []
    assert config_hash(base) != config_hash(experiment)
    assert config_differences(base, experiment) == ["trainer.epochs: 5 → 6"]
    # another seed: another run, but the same comparison group
    reseeded = {**base, "seed": 1}
    assert config_hash(base) != config_hash(reseeded)
    assert comparison_config(base) == comparison_config(reseeded) == {"trainer.epochs": 5}


def _skip_done_cfg(**top: object) -> object:
    base = {"seed": 0, "loss": {"gamma": 0.5}, "trainer": {"threads": None}}
    return OmegaConf.create({**base, "sweep": {"skip_done": True}, **top})


def test_skip_done_accepts_a_job_that_differs_only_by_an_execution_key(tmp_path: Path) -> None:
    done = OmegaConf.to_container(_skip_done_cfg(), resolve=True)
    summary = {"status": "finished", "config_hash": config_hash(done), "val": {"acc": 0.9}}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    relaunched = _skip_done_cfg(trainer={"threads": 2}, logger={"csv": {}})
    assert finished_run(relaunched, tmp_path) == summary
    with pytest.raises(UserError, match="holds a finished run of another config"):
        finished_run(_skip_done_cfg(loss={"gamma": 0.7}), tmp_path)


def _tiny_image_folder(root: Path) -> None:
    rng = np.random.default_rng(0)
    for split, n in (("train", 40), ("test", 10)):
        for c, name in enumerate(("ants", "bees")):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 120, (8, 8, 3)) + 120 * c
                Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i}.png")


def test_a_resume_with_another_cache_dir_and_thread_count_continues_the_run(
    tmp_path: Path,
) -> None:
    """`REGX_CACHE=cache-a regx train …`, killed after its first checkpoint; then
    `REGX_CACHE=cache-b regx train --resume R trainer.threads=1` resumes and finishes."""
    _tiny_image_folder(tmp_path / "images")
    run_dir = tmp_path / "run"
    args = [
        "dataset=imagefolder",
        f"dataset.root={tmp_path / 'images'}",
        "model=mlp",
        "trainer.epochs=40",
        "trainer.batch_size=16",
    ]
    first = regx_process(
        ["train", *args, *FAST, f"hydra.run.dir={run_dir}"],
        cwd=tmp_path,
        env={"REGX_CACHE": str(tmp_path / "cache-a")},
    )
    wait_for((run_dir / "checkpoints" / "last.pt").exists, first, "the first checkpoint")
    first.send_signal(signal.SIGKILL)
    first.communicate()
    assert read_summary(run_dir)["status"] == "running"
    second = regx_process(
        ["train", "--resume", str(run_dir), "trainer.threads=1"],
        cwd=tmp_path,
        env={"REGX_CACHE": str(tmp_path / "cache-b")},
    )
    out, err = second.communicate(timeout=600)
    assert second.returncode == 0, err
    assert "resumed" in out + err
    summary = read_summary(run_dir)
    assert summary["status"] == "finished" and summary["epochs_run"] == 40
    assert (tmp_path / "cache-b").is_dir()  # the resumed run read its data from the new cache


def test_report_comparison_leaves_out_keys_that_change_no_number() -> None:
    """shift.* keys the test shift does not read, label-noise keys at rate 0, a class map of
    symmetric noise: two runs that differ only there are one experiment; the hash (resume,
    skip_done) still sees every key."""
    from regx.keys import comparison_config, config_hash

    def cfg(shift_mode: str, strength: float, rate: float, kind: str = "symmetric") -> dict:
        noise = {"rate": rate, "kind": kind, "class_map": {"1": 2}, "preset": None}
        return {
            "seed": 0,
            "dataset": {"test_shift": shift_mode, "label_noise": noise},
            "shift": {"strength": strength, "tilt": 2.0, "severity": 3},
        }

    assert comparison_config(cfg("none", 0.5, 0.0)) == comparison_config(cfg("none", 0.8, 0.0))
    assert config_hash(cfg("none", 0.5, 0.0)) != config_hash(cfg("none", 0.8, 0.0))
    assert comparison_config(cfg("none", 0.5, 0.0)) == {
        "dataset.test_shift": "none",
        "dataset.label_noise.rate": 0.0,
    }
    prior = comparison_config(cfg("prior", 0.5, 0.2))
    assert prior["shift.strength"] == 0.5 and "shift.tilt" not in prior
    assert "dataset.label_noise.class_map" not in prior and prior["dataset.label_noise.kind"]
    asym = comparison_config(cfg("corrupt", 0.5, 0.2, "asymmetric"))
    assert asym["dataset.label_noise.class_map"] == '{"1": 2}'
    assert not [k for k in asym if k.startswith("dataset.label_noise.class_map.")]
    assert {k for k in asym if k.startswith("shift.")} == {"shift.severity"}
