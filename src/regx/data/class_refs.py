"""Class references in configs: a class is named by its index or by its name.

A reference that is a class *name* means that class: a string, and also an integer whose
decimal form is a name (folders `0`…`11` sort as `0, 1, 10, 11, 2, …`, and `10` means the
folder `10`, not the class at position 10). Otherwise an integer, or a string that reads
as one, is an index into the dataset's class list (0..K−1, the dataset's own order): so
`2` works for MNIST, whose classes are named `2 - two`, and on the command line, where
Hydra may hand an index over as text.
"""

from __future__ import annotations

from typing import Any

from regx.errors import ConfigError


def is_class_ref(ref: Any) -> bool:
    """Whether `ref` has the form of a class reference (an integer or a non-empty string)."""
    if isinstance(ref, bool):
        return False
    return isinstance(ref, int) or (isinstance(ref, str) and ref != "")


def resolve_class(ref: Any, classes: list[str], key: str) -> int:
    """The index of the class `ref` names in `classes` (a name first, then an index);
    ConfigError(`key`) if there is none."""
    name = str(ref) if isinstance(ref, int) and not isinstance(ref, bool) else ref
    if isinstance(name, str) and name in classes:
        return classes.index(name)
    index = ref if isinstance(ref, int) and not isinstance(ref, bool) else _as_int(ref)
    if index is not None and 0 <= index < len(classes):
        return index
    shown = ", ".join(classes[:12]) + (", …" if len(classes) > 12 else "")
    raise ConfigError(
        key,
        ref,
        f"names no class of the data: use an index 0..{len(classes) - 1} or a name ({shown})",
    )


def _as_int(ref: Any) -> int | None:
    if isinstance(ref, str) and ref.strip().lstrip("-").isdigit():
        return int(ref)
    return None
