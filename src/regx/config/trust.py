"""Which `_target_`s a config may instantiate, checked by regx before anything is imported.

A config names the classes a run builds (`_target_: regx.losses.ce.CrossEntropy`); one that
comes with a run dir someone else made (`regx evaluate RUN`, `regx.load_run`, `--resume`)
could name any callable. regx builds only targets that match a trusted pattern: its own
package and Hydra's plugins, plus the patterns a user puts in the environment variable
`REGX_TRUSTED_TARGETS` (`mylab.*` for a package, or one dotted name; comma-separated), which
trusted code reads, never the config. Targets in the packages that run commands or code
(`os`, `subprocess`, `builtins`, …) are refused even when trusted, as Hydra 1.4 does.

The check is the same on Hydra 1.3 (no whitelist of its own) and 1.4 (which is also given
the patterns, see `regx.config.hydra_compat`).
"""

from __future__ import annotations

import os
import re
from typing import Any

from regx.errors import RefusedTargetError, UserError

TRUST_ENV = "REGX_TRUSTED_TARGETS"
BUILTIN_TRUSTED = ("regx.*", "hydra_plugins.*")
_PATTERN = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*(\.\*)?$")
# Packages whose callables run commands, code or system calls: never a config's target.
NEVER = frozenset(
    {"os", "posix", "nt", "subprocess", "builtins", "sys", "importlib", "runpy", "code"}
    | {"codeop", "pty", "ctypes", "shutil", "pickle", "marshal", "multiprocessing", "socket"}
    | {"webbrowser", "signal"}
)


def trusted_targets() -> list[str]:
    """The `_target_` patterns regx lets a config instantiate (a trailing `.*`: a package)."""
    extra = [p.strip() for p in os.environ.get(TRUST_ENV, "").split(",") if p.strip()]
    for pattern in extra:
        if not _PATTERN.match(pattern):
            raise UserError(
                f"{TRUST_ENV}={os.environ[TRUST_ENV]}: {pattern!r} is not a dotted name or a "
                "package prefix ending in '.*' (e.g. mylab.* or mylab.losses.MyLoss)"
            )
    return [*BUILTIN_TRUSTED, *extra]


def never_message(target: str) -> str:
    return (
        f"_target_={target} is refused: a config may not call what runs commands or code; "
        "point _target_ at a class of your own"
    )


def untrusted_message(target: str) -> str:
    package = target.split(".")[0]
    return (
        f"_target_={target} is not trusted (regx instantiates {', '.join(BUILTIN_TRUSTED)}); "
        f"to use your own class, export {TRUST_ENV}='{package}.*'"
    )


def refusal(target: str) -> str | None:
    """Why `target` may not be instantiated, or None when it may."""
    if target.split(".")[0] in NEVER:
        return never_message(target)
    for pattern in trusted_targets():
        if (pattern.endswith(".*") and target.startswith(pattern[:-1])) or target == pattern:
            return None
    return untrusted_message(target)


def check_targets(group: str, node: Any) -> None:
    """Every `_target_` in the config node (nested ones too) is trusted, else a UserError
    naming its key (`loss._target_=…`) and the fix."""
    for key, target in _targets(node, group):
        why = refusal(str(target))
        if why:
            raise RefusedTargetError(f"{key}.{why}" if key else why)


def _targets(node: Any, key: str) -> list[tuple[str, Any]]:
    """(dotted key of the node holding it, value) for each `_target_` under `node`."""
    found: list[tuple[str, Any]] = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "_target_":
                found.append((key, v))
            else:
                found += _targets(v, f"{key}.{k}" if key else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            found += _targets(v, f"{key}[{i}]")
    return found
