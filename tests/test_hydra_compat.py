"""regx on Hydra 1.3 and 1.4: one-line errors stay one line, a user's own class plugs in."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from regx.config import hydra_compat, trust
from regx.config.build import instantiate_group
from regx.errors import UserError

USER_LOSS = "fault_plugins.NaNAtStep"  # a class outside regx, like a user's own loss


def test_trusted_targets_are_regx_plugins_and_the_users_packages(monkeypatch):
    monkeypatch.setenv("REGX_TRUSTED_TARGETS", " mylab.* , other.losses.MyLoss")
    assert trust.trusted_targets() == [
        "regx.*",
        "hydra_plugins.*",
        "mylab.*",
        "other.losses.MyLoss",
    ]


@pytest.mark.parametrize("bad", ["*", "mylab.*.losses", "my-lab.*", ".x"])
def test_a_malformed_trusted_target_is_a_user_error_naming_the_variable(monkeypatch, bad):
    monkeypatch.setenv("REGX_TRUSTED_TARGETS", bad)
    with pytest.raises(UserError, match=r"^REGX_TRUSTED_TARGETS=.*is not a dotted name"):
        trust.trusted_targets()


def test_version_keywords_match_the_installed_hydra():
    import hydra

    major, minor = (int(p) for p in hydra.__version__.split(".")[:2])
    is_1_4 = (major, minor) >= (1, 4)
    assert is_1_4 is hydra_compat.HAS_EXECUTION_WHITELIST
    assert ("version_base" in hydra_compat.VERSION_BASE) is not is_1_4
    assert ("execution_whitelist" in hydra_compat.main_kwargs()) is is_1_4


def test_resolver_is_registered_once_and_cached():
    calls = []
    hydra_compat.register_resolver("regx_test_counter", lambda: calls.append(1) or len(calls))
    hydra_compat.register_resolver("regx_test_counter", lambda: -1)  # ignored: already there
    cfg = OmegaConf.create({"a": "${regx_test_counter:}", "b": "${regx_test_counter:}"})
    assert (cfg.a, cfg.b) == (1, 1)


def test_an_untrusted_user_class_is_refused_in_one_line_naming_the_fix(monkeypatch):
    """regx's own check, before the target is imported: the same on Hydra 1.3 and 1.4."""
    monkeypatch.delenv("REGX_TRUSTED_TARGETS")
    node = OmegaConf.create({"_target_": USER_LOSS, "step": 3})
    with pytest.raises(UserError) as refused:
        instantiate_group("loss", node)
    assert str(refused.value) == (
        f"loss._target_={USER_LOSS} is not trusted (regx instantiates regx.*, "
        "hydra_plugins.*); to use your own class, export "
        "REGX_TRUSTED_TARGETS='fault_plugins.*'"
    )


def test_a_trusted_user_class_is_built(monkeypatch):
    monkeypatch.setenv("REGX_TRUSTED_TARGETS", "fault_plugins.*")
    loss = instantiate_group("loss", OmegaConf.create({"_target_": USER_LOSS, "step": 3}))
    assert type(loss).__module__ == "fault_plugins" and loss.step == 3


@pytest.mark.parametrize(
    ("node", "trusted", "expected"),
    [
        # nested targets are checked too, each named by its key
        (
            {"_target_": "regx.models.cnn.SmallCNN", "head": {"_target_": "mylab.Head"}},
            "",
            "model.head._target_=mylab.Head is not trusted (regx instantiates regx.*, "
            "hydra_plugins.*); to use your own class, export REGX_TRUSTED_TARGETS='mylab.*'",
        ),
        # what runs commands is refused even when the user trusts its package
        (
            {"_target_": "subprocess.run", "args": ["touch", "x"]},
            "subprocess.*",
            "model._target_=subprocess.run is refused: a config may not call what runs "
            "commands or code; point _target_ at a class of your own",
        ),
        # a pattern is a package prefix, not a string prefix
        ({"_target_": "regxtra.Model"}, "", "model._target_=regxtra.Model is not trusted"),
    ],
)
def test_untrusted_targets_are_refused_before_import(monkeypatch, node, trusted, expected):
    monkeypatch.setenv("REGX_TRUSTED_TARGETS", trusted)
    with pytest.raises(UserError) as refused:
        instantiate_group("model", OmegaConf.create(node), _partial_=True)
    assert str(refused.value).startswith(expected)
    assert "regxtra" not in __import__("sys").modules


def test_cli_prints_no_deprecation_warnings(cli):
    """Only regx's one error line on stderr, under whichever Hydra/OmegaConf is installed."""
    result = cli("train", "dataset=synthetic", "trainer.optimizer.lr=0")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: trainer.optimizer.lr=0.0: must be in (0, 3.40282e+38]"
    ]
