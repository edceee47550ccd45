"""The real config (conf/) composes with the SPEC's defaults and every option instantiates."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from regx.config.build import build_spec, instantiate_group
from regx.config.paths import config_dir
from regx.errors import ConfigError

CONF = config_dir()


def test_defaults_match_the_spec(compose_cfg):
    cfg = compose_cfg()
    assert cfg.dataset._target_.endswith("digits.Digits")
    assert cfg.model._target_.endswith("cnn.SmallCNN")
    assert cfg.loss._target_.endswith("ce.CrossEntropy")
    assert cfg.split._target_.endswith("random.RandomSplit")
    assert cfg.trainer.epochs == 25
    assert cfg.aug is None
    assert cfg.seed == 0 and cfg.out_dir == "outputs"


def test_smoke_trainer_overrides_only_length(compose_cfg):
    default, smoke = (
        OmegaConf.to_container(compose_cfg(over)["trainer"]) for over in ([], ["trainer=smoke"])
    )
    assert smoke.pop("epochs") == 2 < default.pop("epochs")
    assert smoke.pop("batch_size") == default.pop("batch_size") == 64  # stated, not changed
    assert smoke == default  # optimizer, schedule, precision, checkpoints: all the default's


@pytest.mark.parametrize("group", ["dataset", "model", "loss", "split", "aug"])
def test_every_option_of_a_group_builds(group, compose_cfg):
    """Each YAML's _target_ imports and its keys match the constructor (no data loaded)."""
    options = sorted(p.stem for p in (CONF / group).glob("*.yaml"))
    assert options, f"no options in conf/{group}"
    for option in options:
        prefix = "+" if group == "aug" else ""
        overrides = [f"{prefix}{group}={option}"]
        if option == "imagefolder":
            overrides.append("dataset.root=/nonexistent")
        cfg = compose_cfg(overrides)
        node = cfg.get(group)
        if node is None:  # aug=none
            continue
        kwargs = {"_partial_": True} if group == "model" else {}
        built = instantiate_group(group, node, **kwargs)
        assert built is not None, option


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.epochs=-1", "trainer.epochs=-1: must be in [1, inf)"),
        ("trainer.optimizer.lr=0", "trainer.optimizer.lr=0.0: must be in (0, 3.40282e+38]"),
        ("trainer.precision=64", "trainer.precision=64: must be one of 32, bf16, 16"),
        ("trainer.device=gpu", "trainer.device=gpu: must be auto, cpu, mps, cuda or cuda:N"),
        ("split.val_fraction=1.5", "split.val_fraction=1.5: must be in (0, 1)"),
        ("+model.depth_x=3", "model.depth_x=3: unknown key for SmallCNN"),
        ("dataset.subset=0", "dataset.subset=0: must be a positive number of training images"),
    ],
)
def test_bad_values_fail_before_training_with_one_line(override, message, compose_cfg):
    cfg = compose_cfg([override])
    with pytest.raises(ConfigError) as err:
        spec = build_spec(cfg)
        spec.model_factory(num_classes=10, in_channels=1, image_size=8)
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_every_group_folder_is_listed_by_regx_list():
    from regx.config.catalog import catalog

    cat = catalog()
    for group in ("dataset", "model", "loss", "split", "trainer", "aug", "logger"):
        assert group in cat
    assert {
        "digits",
        "mnist",
        "fashion_mnist",
        "cifar10",
        "cifar100",
        "svhn",
        "imagefolder",
        "synthetic",
    } <= set(cat["dataset"])
    assert {"mlp", "cnn", "resnet", "wrn", "torchvision"} <= set(cat["model"])
    assert {"default", "smoke"} <= set(cat["trainer"])


def test_config_dir_is_the_repository_conf():
    assert (Path(__file__).parent.parent / "conf").resolve() == CONF.resolve()


def test_trainer_interpolations_see_the_whole_config(compose_cfg):
    from regx.config.build import build_spec

    spec = build_spec(compose_cfg(["trainer.epochs=${seed}", "seed=3"]))
    assert spec.trainer.epochs == 3
