"""Held-out classes for open-set retrieval (`dataset.holdout_classes`).

The protocol of Musgrave et al. (ECCV 2020): train on some classes, retrieve on others.
`holdout_classes` is null (off), a list of classes (indices or names, see
`regx.data.class_refs`), or an integer k meaning the last k classes of the dataset's
class list. With H held-out and K' = K − H kept classes:

- every image of a held-out class leaves the training pool (and so validation) and the
  classification test set;
- the kept classes are re-indexed 0..K'−1 in their original order (the model has K'
  outputs) and `classes` lists their names;
- the held-out classes' *test* images become the open-set retrieval set: `open_x`,
  `open_y` re-indexed 0..H−1 in original class order, `open_classes` their names.

Held-out training images are dropped (the protocol never trains or retrieves on them).
At least 2 classes on each side: one class can neither be classified nor retrieved
against another. So at least 2 held-out classes must have test images (an empty open set
measures nothing, and one class in it makes every retrieval trivially right).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from regx.data.class_refs import is_class_ref, resolve_class
from regx.data.types import ImageData
from regx.errors import ConfigError, check

KEY = "dataset.holdout_classes"
SHAPE = "must be null, an integer k ≥ 2 (the last k classes), or a list of ≥ 2 classes"


def parse_holdout(value: Any) -> int | list[int | str] | None:
    """Check the form of `holdout_classes` (key relative to the dataset); classes are
    checked against the data in `held_out_indices`."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        check(value >= 2, "holdout_classes", value, SHAPE)
        return value
    check(isinstance(value, (list, tuple)), "holdout_classes", value, SHAPE)
    refs = list(value)
    check(all(is_class_ref(r) for r in refs), "holdout_classes", refs, SHAPE)
    check(len(refs) >= 2, "holdout_classes", refs, SHAPE)
    check(
        len({str(r) for r in refs}) == len(refs),
        "holdout_classes",
        refs,
        "names a class twice",
    )
    return refs


def held_out_indices(spec: int | list[int | str], classes: list[str]) -> list[int]:
    """The sorted class indices `spec` holds out of `classes` (full keys in errors)."""
    k = len(classes)
    if isinstance(spec, int):
        check(spec <= k - 2, KEY, spec, f"must leave at least 2 of the {k} classes to train on")
        return list(range(k - spec, k))
    held = [resolve_class(ref, classes, KEY) for ref in spec]
    check(len(set(held)) == len(held), KEY, list(spec), "names a class twice")
    check(
        len(held) <= k - 2,
        KEY,
        list(spec),
        f"must leave at least 2 of the {k} classes to train on",
    )
    return sorted(held)


def apply_holdout(data: ImageData, spec: int | list[int | str] | None) -> ImageData:
    """`data` without the held-out classes, whose test images form the open set."""
    if spec is None:
        return data
    held = held_out_indices(spec, data.classes)
    kept = [c for c in range(data.num_classes) if c not in held]
    new_label = torch.full((data.num_classes,), -1, dtype=torch.int64)
    new_label[kept] = torch.arange(len(kept))
    new_label[held] = torch.arange(len(held))
    is_kept = torch.zeros(data.num_classes, dtype=torch.bool)
    is_kept[kept] = True
    train_in, test_in = is_kept[data.train_y], is_kept[data.test_y]
    train_idx, test_idx = train_in.nonzero().flatten(), test_in.nonzero().flatten()
    open_idx = (~test_in).nonzero().flatten()
    _check_open_set(data, held, open_idx, spec)
    record = {
        "classes": [data.classes[c] for c in held],
        "indices": held,
        "kept_classes": [data.classes[c] for c in kept],
        "open_size": len(open_idx),
        "dropped_train_images": len(data.train_y) - len(train_idx),
    }
    return replace(
        data,
        train_x=data.train_x[train_idx],
        train_y=new_label[data.train_y[train_idx]],
        test_x=data.test_x[test_idx],
        test_y=new_label[data.test_y[test_idx]],
        classes=[data.classes[c] for c in kept],
        open_x=data.test_x[open_idx],
        open_y=new_label[data.test_y[open_idx]],
        open_classes=[data.classes[c] for c in held],
        info={**data.info, "holdout": record},
    )


def _check_open_set(
    data: ImageData, held: list[int], open_idx: torch.Tensor, spec: int | list[int | str]
) -> None:
    """At least 2 held-out classes with test images: the open set needs 2 to retrieve."""
    with_images = set(data.test_y[open_idx].tolist())
    if len(with_images) >= 2:
        return
    empty = [data.classes[c] for c in held if c not in with_images]
    raise ConfigError(
        KEY,
        spec if isinstance(spec, int) else list(spec),
        f"only {len(with_images)} of the {len(held)} held-out classes have test images "
        f"(none for {', '.join(empty)}): open-set retrieval needs at least 2 held-out "
        f"classes with test images; hold out classes that have test images",
    )
