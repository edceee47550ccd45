"""Hydra composition (`compose_config`), resolvers, target trust and structured-config
validation: from a composed config to the typed `RunSpec` the engine runs."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # importing the package (e.g. for shell completion) must not load Hydra
    from omegaconf import DictConfig


def register_resolvers() -> None:
    """The OmegaConf resolvers regx's configs use (idempotent).

    `regx_pid`: in hydra.run.dir / hydra.sweep.dir, so that two runs started in the same
    microsecond from two shells still get two directories. Cached, so every job of a sweep
    (also in joblib workers, which receive the resolver cache with the config) sees the
    launcher's pid.
    """
    from regx.config.hydra_compat import register_resolver

    register_resolver("regx_pid", lambda: os.getpid())


def compose_config(overrides: Sequence[str] = (), return_hydra_config: bool = False) -> DictConfig:
    """regx's config composed with `overrides`, as `regx train OVERRIDES` sees it, run nowhere
    (scripts, tests, torchrun's run-dir lookup); with `hydra.*` if `return_hydra_config`."""
    from hydra import compose, initialize_config_dir

    from regx.config.hydra_compat import VERSION_BASE
    from regx.config.paths import config_dir

    register_resolvers()
    with initialize_config_dir(config_dir=str(config_dir()), **VERSION_BASE):
        return compose(
            config_name="config",
            overrides=list(overrides),
            return_hydra_config=return_hydra_config,
        )
