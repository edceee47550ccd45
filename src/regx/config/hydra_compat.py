"""What differs between the Hydra and OmegaConf releases regx runs on.

regx supports hydra-core 1.3 and 1.4 (pip picks 1.4's release candidates as soon as a
Hydra plugin is installed, since the plugins ask for `hydra-core>=1.1.0.dev7`) and
omegaconf 2.3 and 2.4. Three things changed between them, all handled here:

- `version_base`: Hydra 1.3 warns when it is missing; 1.4 deprecates it and warns when it
  is given. `VERSION_BASE` holds the keyword arguments for `hydra.main` and
  `initialize_config_dir` that keep both quiet.
- Execution whitelist: Hydra 1.4 asks the calling code which `_target_`s a config may
  instantiate (a config could otherwise name any callable); it is given regx's trusted
  patterns (`regx.config.trust`, which regx checks itself on either release). Hydra 1.3
  has no whitelist.
- OmegaConf 2.4 renames `register_new_resolver` to `register_resolver`.

Hydra's private API is used here only: `apply_overrides`, `basic_sweep_size` and
`prefer_regx_plugin_configs` (which edits the ConfigStore's repo in place).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
import omegaconf
from omegaconf import OmegaConf

from regx.config.trust import never_message, trusted_targets, untrusted_message


def _major_minor(version: str) -> tuple[int, int]:
    major, minor = re.match(r"(\d+)\.(\d+)", version).groups()  # type: ignore[union-attr]
    return int(major), int(minor)


HAS_EXECUTION_WHITELIST = _major_minor(hydra.__version__) >= (1, 4)
VERSION_BASE: dict[str, Any] = {} if HAS_EXECUTION_WHITELIST else {"version_base": "1.3"}
# OmegaConf 2.3's `register_resolver` is the legacy string-argument API; 2.4 reuses the name
NEW_RESOLVER_API = _major_minor(omegaconf.__version__) >= (2, 4)


def main_kwargs() -> dict[str, Any]:
    """Keyword arguments for `hydra.main` (the whitelist also covers Hydra's callbacks)."""
    if HAS_EXECUTION_WHITELIST:
        return {"execution_whitelist": trusted_targets()}
    return dict(VERSION_BASE)


def instantiate_kwargs() -> dict[str, Any]:
    """Keyword arguments for `hydra.utils.instantiate` (also in joblib workers, which do not
    inherit `hydra.main`'s whitelist context)."""
    return {"_execution_whitelist_": trusted_targets()} if HAS_EXECUTION_WHITELIST else {}


def untrusted_target_message(error: str) -> str | None:
    """The one-line reason for Hydra's own refusal of a `_target_` (1.4's whitelist, or
    either release's list of targets that run commands) in the text of its error, or None
    for another error."""
    text = " ".join(error.split())
    never = re.search(r"Target '([^']+)' (cannot be authorized|is blocklisted)", text)
    if never:
        return never_message(never.group(1))
    found = re.search(r"Target '([^']+)' is not in the Hydra execution whitelist", text)
    return untrusted_message(found.group(1)) if found else None


def register_resolver(name: str, resolver: Callable[..., Any]) -> None:
    """Register a cached OmegaConf resolver once, under either OmegaConf's API."""
    if OmegaConf.has_resolver(name):
        return
    register = OmegaConf.register_resolver if NEW_RESOLVER_API else OmegaConf.register_new_resolver
    register(name, resolver, use_cache=True)


def apply_overrides(cfg: Any, parsed: list[Any]) -> None:
    """Apply parsed Hydra overrides to `cfg` in place, as Hydra's config loader does (its
    private API: the one place regx touches it)."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    ConfigLoaderImpl._apply_overrides_to_config(parsed, cfg)


BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def task_overrides(hydra_node: Any) -> list[str]:
    """The job's command-line overrides (`hydra.overrides.task`) as typed: iterating the
    node would resolve a `${…}` inside them, and fail on one that does not resolve, which
    the config check then reports with its key."""
    return [str(o) for o in OmegaConf.to_container(hydra_node.overrides.task, resolve=False)]


def basic_sweep_size(config: Any) -> int | None:
    """Jobs Hydra's basic sweeper expands `config` into (`hydra.sweeper.params` and the
    command line's overrides), counted by its own `split_arguments`; None if it cannot."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    params = OmegaConf.select(config, "hydra.sweeper.params", default=None) or {}
    arguments = [f"{k}={v}" for k, v in params.items()]
    arguments += task_overrides(config.hydra)
    hydra = GlobalHydra.instance()  # its config loader expands glob(…) over a group's options
    loader = hydra.config_loader() if hydra.is_initialized() else None
    try:
        parsed = OverridesParser.create(config_loader=loader).parse_overrides(arguments)
        return len(BasicSweeper.split_arguments(parsed, None)[0])
    except (HydraException, ValueError):
        return None  # the sweeper itself reports a bad override


def prefer_regx_plugin_configs(config_dir: Path) -> None:
    """Drop the plugins' ConfigStore entries that regx's conf/hydra/<group>/*.yaml replace."""
    from hydra.core.config_store import ConfigStore
    from hydra.core.plugins import Plugins

    Plugins.instance()  # imports the installed plugins, which register their configs
    repo = ConfigStore.instance().repo
    for group in ("launcher", "sweeper"):
        stored = repo.get("hydra", {}).get(group)
        if not isinstance(stored, dict):
            continue
        for path in (config_dir / "hydra" / group).glob("*.yaml"):
            stored.pop(path.name, None)
