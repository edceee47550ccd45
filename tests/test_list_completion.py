"""Shell completion of `regx train` / `regx evaluate` overrides and `regx list`'s group, from
conf/ (no torch)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from regx.config.catalog import GROUPS
from regx.config.completion import bash_at_equals, complete_override
from regx.config.paths import config_dir

CONF = config_dir()


def _stems(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_the_listed_groups_are_the_folders_of_conf() -> None:
    folders = {p.name for p in CONF.iterdir() if p.is_dir() and p.name != "hydra"}
    assert set(GROUPS) == folders | {"hydra/launcher", "hydra/sweeper"}
    assert len(GROUPS) == len(set(GROUPS))


def test_a_group_completes_to_its_options() -> None:
    losses = _stems("loss")
    assert {"ce", "gamma_ce", "am_softmax"} <= set(losses)
    assert complete_override([], "loss=") == [f"loss={o}" for o in losses]
    assert complete_override([], "loss=g") == ["loss=gamma_ce"]
    mixers = [o for o in _stems("aug") if o.startswith("m")]
    assert complete_override(["loss=ce"], "+aug=m") == [f"+aug={o}" for o in mixers]
    # the next option of a sweep, after a comma
    assert complete_override([], "loss=ce,gam") == ["loss=ce,gamma_ce"]
    # nested options by their path, Hydra groups with a slash
    arms = sorted(
        str(p.relative_to(CONF / "arm").with_suffix("")) for p in (CONF / "arm").rglob("*.yaml")
    )
    assert complete_override([], "arm=") == [f"arm={a}" for a in arms]
    assert "hydra/launcher=joblib" in complete_override([], "hydra/launcher=")
    assert complete_override([], "loss.gamma=") == []  # a value: nothing to offer


def test_a_name_completes_to_groups_and_top_level_keys() -> None:
    assert complete_override([], "lo") == ["loss=", "logger="]
    assert complete_override([], "+au") == ["+aug="]
    assert "seed=" in complete_override([], "se")
    assert complete_override([], "calibration.") == [
        "calibration.n_bins=",
        "calibration.bootstrap=",
    ]


def test_keys_come_from_the_option_on_the_line_else_the_default() -> None:
    assert complete_override(["loss=gamma_ce"], "loss.") == [
        "loss.gamma=",
        "loss.schedule=",
        "loss.gamma_start=",
        "loss.gamma_end=",
        "loss.threshold=",
    ]
    assert complete_override(["++loss=focal", "seed=1"], "loss.") == ["loss.gamma="]
    assert complete_override([], "loss.") == []  # the default, ce, has no keys
    # trainer=default (conf/config.yaml's defaults), nested keys dotted
    assert complete_override([], "trainer.optimizer.l") == ["trainer.optimizer.lr="]
    assert complete_override(["+aug=cutout"], "aug.h") == ["aug.holes="]


def test_bash_words_split_at_equals() -> None:
    # bash passes `loss=g` as `loss`, `=`, `g`: the answer replaces only the `g`
    assert complete_override(["loss", "="], "g") == ["gamma_ce"]
    assert complete_override(["loss", "=", "gamma_ce", "loss.gamma", "="], "") == []
    assert complete_override(["loss", "=", "gamma_ce"], "loss.gamma_") == [
        "loss.gamma_start=",
        "loss.gamma_end=",
    ]
    assert bash_at_equals({"COMP_WORDS": "regx train loss =", "COMP_CWORD": "3"})
    assert not bash_at_equals({"COMP_WORDS": "regx train loss= ", "COMP_CWORD": "2"})
    assert not bash_at_equals({})


def _complete(line: str, cword: int, cwd: Path) -> subprocess.CompletedProcess:
    """What the script `regx --install-completion` installs for bash runs on a TAB."""
    script = Path(sys.executable).parent / "regx"
    env = {"_REGX_COMPLETE": "complete_bash", "COMP_WORDS": line, "COMP_CWORD": str(cword)}
    return subprocess.run(
        [str(script)], env={**os.environ, **env}, capture_output=True, text=True, cwd=cwd
    )


@pytest.mark.parametrize(
    ("line", "cword", "expected"),
    [
        ("regx train loss=", 2, [f"loss={o}" for o in _stems("loss")]),
        ("regx train +aug=cut", 2, ["+aug=cutmix", "+aug=cutout"]),
        ("regx train loss = g", 4, ["gamma_ce"]),  # bash's own word split
        ("regx train loss =", 3, _stems("loss")),
        ("regx evaluate outputs/run loss=gamma_ce loss.sch", 4, ["loss.schedule="]),
        ("regx train --res", 2, ["--resume"]),
        ("regx list l", 2, ["loss", "logger"]),  # the groups, in `regx list`'s order
        ("regx list ", 2, [g for g in GROUPS if any((CONF / g).rglob("*.yaml"))]),
    ],
)
def test_completion_through_the_shell_protocol(line, cword, expected, tmp_path) -> None:
    result = _complete(line, cword, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == expected


def test_completion_imports_no_torch(tmp_path) -> None:
    code = (
        "import os, sys\n"
        "os.environ.update(_REGX_COMPLETE='complete_bash', COMP_WORDS='regx train loss=g', "
        "COMP_CWORD='2')\n"
        "from regx.cli import app\n"
        "try:\n"
        "    app(prog_name='regx')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert out.stdout.split() == ["loss=gamma_ce", "False"]
