"""Hydra's errors before a job starts, as one line that names the cause and the fix.

Hydra prints several lines (or a traceback) for a bad command line. `error_line` condenses
them to one, then rewrites the common ones in regx's `key=value: what is wrong` form:

- an unknown key (`trainer.epochz=3`, `losss=gamma_ce`, `los.gamma=1`): the closest known
  name (regx.config.suggest), else the keys that exist, and for a key another option of
  the group has (`loss.gamma=0.5` with `loss=ce`), those options;
- an unknown option of a group (`loss=gama_ce`): the closest option and the list;
- a `_target_` Hydra will not instantiate (a `-cd` config's callback, say): which key,
  and what to do;
- a run or sweep folder that cannot be created (under a regular file, on a read-only
  file system): which path, and which setting moves it;
- an override Hydra's grammar cannot read (spaces, non-ASCII letters): how to quote it.
"""

from __future__ import annotations

import errno
import os
import re
import shlex
from pathlib import Path
from typing import Any

from regx.config.suggest import closest, listed
from regx.errors import DataError, UserError

_SKIP = (
    "Set the environment variable HYDRA_FULL_ERROR",
    "full_key:",
    "object_type=",
    "reference_type=",
)
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit)\b:?")


def condense(text: str) -> str:
    """Hydra's multi-line message as one line (a traceback reduced to its exception)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith(_SKIP[0])]
    if any(ln.startswith("Traceback") for ln in lines):
        starts = [i for i, ln in enumerate(lines) if _EXCEPTION_LINE.match(ln)]
        lines = lines[starts[-1] :] if starts else lines[-1:]
        lines[0] = re.sub(r"^(hydra\.errors\.|omegaconf\.errors\.)", "", lines[0])
    if "Config search path:" in lines:  # the search path helps Hydra developers, not users
        lines = lines[: lines.index("Config search path:")]
    out = ""
    listing = False  # inside "Available options in 'group':": join the options with commas
    for ln in lines:
        if ln.startswith(_SKIP):
            continue
        if listing and " " not in ln:
            out += ("" if out.endswith(":") else ",") + " " + ln
            continue
        listing = ln.startswith("Available options")
        if out and not out.endswith((".", ":", ";")):
            out += ";"
        out += (" " if out else "") + ln
    # Hydra 1.4 prefixes a bad override's error with the whole command line; the error names it
    return re.sub(r"^Error when parsing index: \d+, string: .* out of \[.*\]\. ", "", out)


def error_line(held: str, args: list[str]) -> str:
    """The one line (without "error: ") for Hydra's pre-job output `held`."""
    line = condense(held)
    rewrites = (_unknown_key, _unknown_option, _refused_target, _unimportable_target)
    for rewrite in (*rewrites, _folder_error, _grammar, _no_slurm):
        better = rewrite(held, line, args)
        if better:
            return better
    return line


# -- unknown keys and options -------------------------------------------------------------------
def _argument(args: list[str], key: str) -> tuple[str, str]:
    """(the override naming `key` as typed, its value)."""
    for arg in reversed(args):
        name, _, value = arg.partition("=")
        if name.lstrip("+~") == key:
            return arg.lstrip("+~") if "=" in arg else arg, value
    return key, ""


def _composed(args: list[str], without: str) -> Any:
    """The config the other overrides give (None if they do not compose either)."""
    from regx.config import compose_config

    others = [
        a
        for a in args
        if "=" in a and not a.startswith("-") and a.partition("=")[0].lstrip("+~") != without
    ]
    for overrides in (others, []):
        try:
            return compose_config(overrides, return_hydra_config=True)
        except Exception:  # another bad override: try the defaults
            continue
    return None


def _group_names() -> set[str]:
    from regx.config.paths import config_dir

    return {p.name for p in config_dir().iterdir() if p.is_dir() and p.name != "hydra"}


def _options_with_key(group: str, key: str) -> list[str]:
    """The options of config group `group` whose YAML has top-level key `key`."""
    import yaml

    from regx.config.paths import config_dir

    found = []
    for path in sorted((config_dir() / group).glob("*.yaml")):
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(data, dict) and key in data:
            found.append(path.stem)
    return found


def _nested_paths(node: Any, leaf: str, limit: int = 3) -> list[str]:
    """Dotted paths below `node` (not its own keys) of keys named `leaf`, shallowest first."""
    from omegaconf import DictConfig

    found: list[str] = []
    level = [(str(k), v) for k, v in node.items_ex(resolve=False) if k != "hydra"]
    while level and len(found) < limit:
        below = []
        for path, child in level:
            if isinstance(child, DictConfig):
                for k, v in child.items_ex(resolve=False):
                    below.append((f"{path}.{k}", v))
                    if str(k) == leaf:
                        found.append(f"{path}.{k}")
        level = below
    return found[:limit]


def _unknown_key(held: str, line: str, args: list[str]) -> str | None:
    found = re.search(r"Could not override '([^']+)'.*is not in struct", held, re.S)
    if not found:
        return None
    from omegaconf import DictConfig, OmegaConf

    key = found.group(1)
    shown, value = _argument(args, key)
    cfg = _composed(args, key)
    if cfg is None:
        return None
    groups = _group_names()
    top = {str(k) for k in cfg if k != "hydra"} | groups
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    if not isinstance(node, DictConfig):  # the first part is mistyped: `los.gamma=1`
        head, _, rest = key.partition(".")
        meant = closest(head, top)
        if meant:
            return f"{shown}: unknown key; did you mean {meant}.{rest}={value}?"
        return f"{shown}: unknown key '{head}'; top-level keys and groups: {listed(top)}"
    keys = {str(k) for k in node if not str(k).startswith("_") and k != "hydra"}
    meant = closest(leaf, keys | (groups if not parent else set()))
    if meant:
        return (
            f"{shown}: unknown key; did you mean {parent + '.' if parent else ''}{meant}={value}?"
        )
    deeper = _nested_paths(node, leaf)
    if deeper:  # `trainer.lr=0.1` where the key is trainer.optimizer.lr
        prefix = parent + "." if parent else ""
        return f"{shown}: unknown key; did you mean {prefix}{deeper[0]}={value}?" + (
            f" (or {', '.join(prefix + p for p in deeper[1:])})" if len(deeper) > 1 else ""
        )
    choice = OmegaConf.select(cfg, f"hydra.runtime.choices.{parent}") if parent in groups else None
    if choice is not None:
        others = [o for o in _options_with_key(parent, leaf) if o != choice]
        if others:
            return (
                f"{shown}: {parent}={choice} has no key '{leaf}'; options of {parent} with one: "
                f"{', '.join(others)} (e.g. {parent}={others[0]} {shown})"
            )
        if not keys:
            return f"{shown}: unknown key; {parent}={choice} takes no keys"
    where = parent or "the config"
    return f"{shown}: unknown key; keys of {where}: {listed(keys) or '(none)'}"


def _unknown_option(held: str, line: str, args: list[str]) -> str | None:
    found = re.search(r"Could not find '((?:[^'/]+/)*[^'/]+)/([^'/]+)'", held)
    listing = re.search(r"Available options in '([^']+)':\s*\n((?:\t[^\n]*\n?)*)", held)
    if not found or not listing:
        return None
    group, option = found.group(1), found.group(2)
    options = [o.strip() for o in listing.group(2).splitlines() if o.strip()]
    meant = closest(option, options)
    hint = f"did you mean {group}={meant}? " if meant else ""
    return f"{group}={option}: no such option; {hint}options of {group}: {', '.join(options)}"


# -- targets, folders, grammar ----------------------------------------------------------------
def _refused_target(held: str, line: str, args: list[str]) -> str | None:
    from regx.config import hydra_compat

    why = hydra_compat.untrusted_target_message(held)
    if why is None:
        return None
    full_key = re.search(r"full_key: (\S+)", held)
    return f"{full_key.group(1)}.{why}" if full_key else why


def _unimportable_target(held: str, line: str, args: list[str]) -> str | None:
    """Hydra 1.3 (no execution whitelist) imports a callback's `_target_` and fails."""
    found = re.search(r"Error locating target '([^']+)'", held)
    if not found:
        return None
    return (
        f"_target_={found.group(1)} cannot be imported: fix the name, or install the package "
        "that holds it"
    )


_OS_ERROR = re.compile(r"(\w+Error): \[Errno (\d+)\] ([^:]+): '([^']+)'")


def _folder_error(held: str, line: str, args: list[str]) -> str | None:
    found = _OS_ERROR.search(line)
    if not found or "mkdir" not in held:  # Hydra creating the run or sweep folder
        return None
    code, reason, path = int(found.group(2)), found.group(3), Path(found.group(4))
    given = [k for k in ("hydra.run.dir", "hydra.sweep.dir", "out_dir") if _argument(args, k)[1]]
    setting = f"{given[0]}={_argument(args, given[0])[1]}" if given else "out_dir"
    if code in (errno.ENOTDIR, errno.EEXIST):
        blocker = next((p for p in (path, *path.parents) if p.is_file()), None)
        if blocker is not None:
            return (
                f"{setting}: cannot create the folder {path}: {blocker} is a file, not a folder; "
                f"choose another {setting.partition('=')[0]}"
            )
    what = os.strerror(code) if code else reason
    return (
        f"{setting}: cannot create the folder {path} ({what}); "
        f"set {setting.partition('=')[0]} to a folder you can write"
    )


def _grammar(held: str, line: str, args: list[str]) -> str | None:
    if "LexerNoViableAltException" not in line and "mismatched input" not in line:
        return None
    # Hydra 1.4 names the override ("string: … out of [...]"), 1.3 starts its message with it
    found = re.search(r"string: (.*?) out of \[", held) or re.search(
        r"LexerNoViableAltException: (\S+)", held
    )
    bad = found.group(1) if found else None
    if bad is None or "=" not in bad:
        return None
    key, _, value = bad.partition("=")
    return (
        f"cannot read the override {bad}: unquoted values may hold only ASCII letters, digits "
        f"and _-./:@; quote the value: {key}='{value}'"
    )


def _no_slurm(held: str, line: str, args: list[str]) -> str | None:
    if 'Could not detect "srun"' not in line:
        return None
    return (
        "hydra/launcher=submitit_slurm: this machine has no srun (not a SLURM cluster); run "
        "from a SLURM login node, or use hydra/launcher=submitit_local or hydra/launcher=joblib"
    )


def with_env_hint(cfg: Any, error: UserError) -> UserError:
    """A data error whose folder came from an unset environment variable's fallback (the
    `${oc.env:REGX_CIFAR10,…}` of scale=cifar) also names the variable to set."""
    from regx.config.env_fallback import unset_env_fallback

    name = unset_env_fallback(cfg, "dataset.root") if isinstance(error, DataError) else None
    if name is None:
        return error
    return DataError(
        f"{error}; {name} is not set, so dataset.root took its fallback: set {name}=DIR"
    )


def job_os_error_message(e: OSError, guard: Any, run_dir: Path) -> str:
    """An OSError during a job as one line: the reason, the path, the fix, how to go on."""
    where = "" if e.filename is None else f": {e.filename}"
    where += f" -> {e.filename2}" if e.filename2 else ""
    resumable = guard is not None and guard.training_started()
    then = (
        f"then continue with: regx train --resume {shlex.quote(str(run_dir))}"
        if resumable and (run_dir / "checkpoints" / "last.pt").is_file()
        else "then run the command again"
    )
    return (
        f"{e.strerror or e} ({type(e).__name__}){where}; fix the cause (disk space, "
        f"permissions, a folder where a file belongs), {then}"
    )
