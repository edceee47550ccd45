"""Shell completion of the overrides of `regx train` and `regx evaluate` and of the group
of `regx list`, read from conf/.

Only YAML files are read (no torch, no Hydra composition), so a TAB answers at once. The
word being completed decides what is offered:

- `lo` → `logger=`, `loss=`: config groups and top-level keys (`seed=`, `calibration.n_bins=`);
- `loss=g` → `loss=gamma_ce`: the group's options (nested ones by path, `arm=mixing/cutmix`;
  after a comma the next option of a sweep, `loss=ce,gamma_ce`);
- `loss.` → `loss.gamma=`, …: the keys of the option chosen earlier on the line
  (`loss=gamma_ce`), else of the group's default (conf/config.yaml's defaults list);
- `+`, `++` and `~` in front are kept: `+aug=` → `+aug=cutmix`, `+aug=mixup`, ….

`regx list l` → `logger`, `loss`: the config groups (`complete_group`).

Bash splits words at `=` (COMP_WORDBREAKS): `loss=g` reaches regx as `loss`, `=`, `g`, and
the answer is then the part after the `=` (`gamma_ce`). For `loss=` alone click drops the `=`
word, so `bash_at_equals` reads it from bash's COMP_WORDS.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

import yaml

from regx.config.catalog import GROUPS, read_option
from regx.config.paths import config_dir


@cache
def group_options(group: str) -> tuple[str, ...]:
    """The options of a config group: its YAML files, nested ones by their path."""
    folder = config_dir() / group
    if not folder.is_dir():
        return ()
    return tuple(sorted(str(p.relative_to(folder).with_suffix("")) for p in folder.rglob("*.yaml")))


@cache
def _root_config() -> dict[str, Any]:
    data = yaml.safe_load((config_dir() / "config.yaml").read_text()) or {}
    return data if isinstance(data, dict) else {}


def default_options() -> dict[str, str]:
    """Group → the option conf/config.yaml's defaults list picks (groups set to null left out)."""
    defaults: dict[str, str] = {}
    for entry in _root_config().get("defaults") or []:
        if isinstance(entry, dict):
            for group, option in entry.items():
                if option is not None and not str(group).startswith("override "):
                    defaults[str(group)] = str(option)
    return defaults


@cache
def top_level_keys() -> tuple[str, ...]:
    """The keys of conf/config.yaml outside its defaults list, nested ones dotted."""
    return tuple(p.key for p in read_option("", config_dir() / "config.yaml").params)


@cache
def option_keys(group: str, option: str) -> tuple[str, ...]:
    """The dotted keys an option sets, as a user overrides them (`trainer.optimizer.lr`)."""
    path = config_dir() / group / f"{option}.yaml"
    if not path.is_file():
        return ()
    read = read_option(group, path)
    prefix = f"{read.package}." if read.package else ""
    return tuple(prefix + p.key for p in read.params) if prefix else ()


def _rejoin(words: Iterable[str]) -> list[str]:
    """Bash's `loss`, `=`, `ce` back into `loss=ce`."""
    out: list[str] = []
    after_equals = False
    for word in words:
        if out and (word == "=" or after_equals):
            out[-1] += word
            after_equals = word == "="
        else:
            out.append(word)
    return out


def _chosen_option(group: str, done: list[str]) -> str | None:
    """The option the line picks for `group` (its last `group=…`), else the default."""
    chosen = None
    for word in done:
        name, eq, value = word.lstrip("+~").partition("=")
        if eq and name == group and value:
            chosen = value.split(",")[0]
    return chosen or default_options().get(group)


def _names(body: str, done: list[str]) -> list[str]:
    """Completions of a word without `=`: group names, top-level keys, an option's keys."""
    found = [f"{g}=" for g in GROUPS if group_options(g)]
    found += [f"{k}=" for k in top_level_keys()]
    head = body.split(".")[0]
    if "." in body and head in GROUPS:
        option = _chosen_option(head, done)
        found += [f"{k}=" for k in option_keys(head, option)] if option else []
    return [n for n in dict.fromkeys(found) if n.startswith(body)]


def complete_word(word: str, done: list[str]) -> list[str]:
    """The completions of `word`, the words before it on the line being `done`."""
    body = word.lstrip("+~")
    prefix = word[: len(word) - len(body)]
    name, eq, value = body.partition("=")
    if not eq:
        return [prefix + n for n in _names(name, done)]
    if name not in GROUPS:
        return []  # a key's value: nothing to offer
    listed, _, last = value.rpartition(",")
    head = f"{prefix}{name}=" + (f"{listed}," if listed else "")
    return [head + o for o in group_options(name) if o.startswith(last)]


def complete_group(incomplete: str) -> list[str]:
    """What a TAB after `regx list` offers: the config groups that have options."""
    return [g for g in GROUPS if group_options(g) and g.startswith(incomplete)]


def bash_at_equals(environ: Mapping[str, str]) -> bool:
    """Whether bash is completing right after an `=` (its word COMP_CWORD is that `=`)."""
    words = environ.get("COMP_WORDS", "").split()
    cword = environ.get("COMP_CWORD", "")
    return cword.isdigit() and int(cword) < len(words) and words[int(cword)] == "="


def complete_override(done: list[str], incomplete: str) -> list[str]:
    """What a TAB after `regx train …done` offers for `incomplete`; see the module doc."""
    words = list(done)
    if len(words) >= 2 and words[-1] == "=":  # bash: `loss`, `=`, then the value
        whole = complete_word(f"{words[-2]}={incomplete}", _rejoin(words[:-2]))
        return [w.partition("=")[2] for w in whole]
    return complete_word(incomplete, _rejoin(words))
