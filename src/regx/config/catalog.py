"""`regx list`: what each config group offers, read from the YAML files (no torch import)."""

from __future__ import annotations

from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from regx.config.paths import config_dir

GROUPS = (
    "dataset",
    "model",
    "aug",
    "loss",
    "split",
    "trainer",
    "experiment",
    "logger",
    "hparams_search",
    "hydra/launcher",
    "hydra/sweeper",
)


def _flatten(node: Any, prefix: str = "") -> list[str]:
    if not isinstance(node, dict):
        return [f"{prefix}={node}"]
    items: list[str] = []
    for key, value in node.items():
        if key in ("defaults", "_target_") or str(key).startswith("#"):
            continue
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            items.extend(_flatten(value, name))
        else:
            items.append(f"{name}={value}")
    return items


def catalog() -> dict[str, dict[str, dict[str, Any]]]:
    """group -> option -> {'target': …, 'params': [key=value, …]}."""
    root = config_dir()
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for group in GROUPS:
        folder = root / group
        if not folder.is_dir():
            continue
        options = {}
        for path in sorted(folder.glob("*.yaml")):
            data = yaml.safe_load(path.read_text()) or {}
            target = data.get("_target_", "") if isinstance(data, dict) else ""
            options[path.stem] = {"target": target, "params": _flatten(data)}
        out[group] = options
    return out


def print_catalog(group: str | None = None) -> int:
    console = Console()
    cat = catalog()
    if group is not None and group not in cat:
        console.print(f"error: no config group '{group}'; groups: {', '.join(cat)}", style="red")
        return 2
    for name, options in cat.items():
        if group is not None and name != group:
            continue
        table = Table(title=f"{name}", title_justify="left", show_lines=False)
        table.add_column("option", style="bold cyan")
        table.add_column("class")
        table.add_column("parameters (defaults)")
        for option, info in options.items():
            table.add_row(option, info["target"].rpartition(".")[2], "  ".join(info["params"]))
        console.print(table)
    return 0
