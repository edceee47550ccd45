"""Config values that fell back to their default because an environment variable is unset.

`dataset.root: ${oc.env:REGX_CIFAR10,data/cifar10-jpg}` (scale=cifar) reads the data folder
from REGX_CIFAR10; when that is unset the run looks in the fallback folder, and an error
about that folder should say which variable to set.
"""

from __future__ import annotations

import os
import re

from omegaconf import DictConfig, OmegaConf

ENV_WITH_DEFAULT = re.compile(r"\$\{oc\.env:([A-Za-z_][A-Za-z0-9_]*)\s*,")


def unset_env_fallback(cfg: DictConfig, key: str) -> str | None:
    """The unset environment variable whose `${oc.env:NAME,default}` gave `key` its value,
    or None (the key is set directly, or its variable is set)."""
    node, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(cfg, node) if node else cfg
    if not isinstance(parent, DictConfig) or leaf not in parent:
        return None
    typed = OmegaConf.to_container(parent, resolve=False)[leaf]  # as written, unresolved
    for name in ENV_WITH_DEFAULT.findall(str(typed)):
        if name not in os.environ:
            return name
    return None
