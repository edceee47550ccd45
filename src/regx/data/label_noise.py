"""Label noise in the training pool (`dataset.label_noise`), the protocol of the noisy-label
literature (Co-teaching; Zhang & Sabuncu 2018; Zhang et al. 2017).

With N training-pool images, n_c of class c, K classes and rate r ∈ [0, 1):

- `symmetric`: exactly M = round(r·N) labels change. Class c gives m_c of them, the
  largest-remainder rounding of n_c·M/N (so Σ m_c = M and each class flips its share);
  the m_c images are drawn uniformly from class c, and each gets a class drawn uniformly
  from the K − 1 *other* classes (a flip always changes the label).
- `pairflip`: as symmetric, but class c becomes (c + 1) mod K.
- `asymmetric`: a map source → target (`class_map`, or a `preset`). Exactly
  M = round(r·N_S) labels change, N_S the images of the mapped (source) classes: class c
  flips m_c of its images to map[c], the largest-remainder rounding of n_c·M/N_S (so each
  source class flips floor or ceil of r·n_c); unmapped classes keep their labels. A map
  of every class flips exactly round(r·N), as the symmetric kinds do.
  Presets: `cifar10` truck→automobile, bird→airplane, deer→horse, cat↔dog (Patrini et
  al. 2017); `mnist` 2→7, 3→8, 5↔6, 7→1. The images to flip are drawn per source class
  from the labels before any flip, so cat↔dog swaps two disjoint sets.

Classes in a map are indices or names (see `regx.data.class_refs`). The draws use their
own stream, seeded with (seed + seed_offset, NOISE_STREAM), so the subset, split and shift
random streams are the same with and without noise. A split stratified by class uses the
noisy labels, as a practitioner's would (their true labels are unknown to them), so its
validation images differ from the clean run's; the test set never changes. rate = 0 leaves
the data untouched (`train_clean_y` stays None).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from regx.data.class_refs import is_class_ref, resolve_class
from regx.data.quota import largest_remainder
from regx.data.types import ImageData
from regx.errors import ConfigError, check, check_choice, check_range

log = logging.getLogger("regx")

KINDS = ("symmetric", "pairflip", "asymmetric")
PRESETS: dict[str, dict[Any, Any]] = {
    "cifar10": {
        "truck": "automobile",
        "bird": "airplane",
        "deer": "horse",
        "cat": "dog",
        "dog": "cat",
    },
    "mnist": {2: 7, 3: 8, 5: 6, 6: 5, 7: 1},
}
KEYS = ("rate", "kind", "class_map", "preset", "seed_offset")
# Mixed into the seed so the noise's draws are independent of the subset/split/shift draws.
NOISE_STREAM = 0x401CE
# Errors raised while loading carry the full key: nothing above load() adds the prefix.
LOAD_PREFIX = "dataset.label_noise"


@dataclass(frozen=True)
class LabelNoise:
    """The validated `dataset.label_noise` settings."""

    rate: float = 0.0
    kind: str = "symmetric"
    class_map: dict[Any, Any] | None = None
    preset: str | None = None
    seed_offset: int = 0

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def source_map(self) -> dict[Any, Any]:
        """The configured map (class references, not yet resolved); {} unless asymmetric."""
        if self.kind != "asymmetric":
            return {}
        return dict(PRESETS[self.preset] if self.preset else self.class_map or {})


def parse_label_noise(node: dict[str, Any] | None) -> LabelNoise:
    """Validate the `label_noise` node (keys relative to the dataset: `label_noise.rate`)."""
    node = dict(node or {})
    unknown = sorted(set(map(str, node)) - set(KEYS))
    check(not unknown, "label_noise", unknown, "allowed keys: " + ", ".join(KEYS))
    noise = LabelNoise(**node)
    check_range("label_noise.rate", noise.rate, 0, 1, hi_open=True)
    check_choice("label_noise.kind", noise.kind, KINDS)
    offset = noise.seed_offset
    check(
        isinstance(offset, int) and not isinstance(offset, bool) and offset >= 0,
        "label_noise.seed_offset",
        offset,
        "must be a non-negative integer",
    )
    if noise.preset is not None:
        check_choice("label_noise.preset", noise.preset, tuple(PRESETS))
    if noise.kind != "asymmetric":
        for key in ("class_map", "preset"):
            value = getattr(noise, key)
            check(value is None, f"label_noise.{key}", value, "only applies to kind=asymmetric")
        return replace(noise, rate=float(noise.rate))
    _check_map_form(noise)
    return replace(noise, rate=float(noise.rate))


def _check_map_form(noise: LabelNoise) -> None:
    """The checks an asymmetric map allows before the class names are known."""
    if noise.class_map is None:
        check(
            noise.preset is not None,
            "label_noise.class_map",
            None,
            "kind=asymmetric needs a class_map {source: target} or a preset ("
            + ", ".join(PRESETS)
            + ")",
        )
        return
    check(
        noise.preset is None,
        "label_noise.preset",
        noise.preset,
        "give either a preset or a class_map, not both",
    )
    cmap = noise.class_map
    check(
        isinstance(cmap, dict) and len(cmap) > 0,
        "label_noise.class_map",
        cmap,
        "must be a non-empty mapping {source class: target class}",
    )
    shown = show_map(cmap)
    for source, target in cmap.items():
        check(
            is_class_ref(source) and is_class_ref(target),
            "label_noise.class_map",
            shown,
            "must map class indices or names to class indices or names",
        )
        check(
            str(source) != str(target),
            "label_noise.class_map",
            shown,
            f"maps class {source} to itself; a flip must change the label",
        )


def show_map(cmap: dict[Any, Any]) -> str:
    """A class map as the user writes it: {cat: dog, dog: cat}."""
    return "{" + ", ".join(f"{s}: {t}" for s, t in cmap.items()) + "}"


def resolve_map(
    noise: LabelNoise, classes: list[str], all_classes: list[str] | None = None
) -> dict[int, int]:
    """The asymmetric map as indices of `classes` (the kept classes under holdout).

    References are read against `all_classes` (the dataset's own class list, before any
    holdout re-indexed the labels), so an index in the map means the same class with and
    without held-out classes; a class the map names must then be one of `classes`.
    """
    key = f"{LOAD_PREFIX}.{'preset' if noise.preset else 'class_map'}"
    ref_classes = all_classes if all_classes is not None else classes
    if noise.preset:
        _check_preset_classes(noise.preset, noise.source_map(), ref_classes)
    resolved: dict[int, int] = {}
    for source, target in noise.source_map().items():
        pair = [ref_classes[resolve_class(ref, ref_classes, key)] for ref in (source, target)]
        if pair[0] == pair[1]:
            raise ConfigError(
                key,
                show_map({source: target}),
                f"maps class {pair[0]} to itself; a flip must change the label",
            )
        for name in pair:
            check(
                name in classes,
                key,
                name,
                "is a held-out class (dataset.holdout_classes): map only the kept classes",
            )
        s, t = classes.index(pair[0]), classes.index(pair[1])
        check(s not in resolved, key, source, "names the same source class twice")
        resolved[s] = t
    return resolved


def _check_preset_classes(preset: str, mapping: dict, classes: list[str]) -> None:
    """A preset names its dataset's classes: each must be a class of this data."""
    lacking = []
    for ref in dict.fromkeys([*mapping, *mapping.values()]):
        try:
            resolve_class(ref, classes, "")
        except ConfigError:
            lacking.append(str(ref))
    if lacking:
        raise ConfigError(
            f"{LOAD_PREFIX}.preset",
            preset,
            f"maps classes this data lacks ({', '.join(lacking)}); the preset is for "
            f"{preset}'s classes: for this data give a class_map {{source: target}}",
        )


def noisy_labels(
    labels: np.ndarray, num_classes: int, noise: LabelNoise, class_map: dict[int, int], seed: int
) -> np.ndarray:
    """`labels` with the configured share flipped (see the module docstring for the math)."""
    rng = np.random.default_rng([seed + noise.seed_offset, NOISE_STREAM])
    out = labels.copy()
    counts = np.bincount(labels, minlength=num_classes)
    sources = sorted(class_map) if noise.kind == "asymmetric" else list(range(num_classes))
    source_counts = np.zeros_like(counts)
    source_counts[sources] = counts[sources]
    quota = largest_remainder(source_counts, round(noise.rate * int(source_counts.sum())))
    flips = {c: int(quota[c]) for c in sources}
    for c, m in flips.items():
        chosen = rng.choice(np.flatnonzero(labels == c), size=m, replace=False)
        if noise.kind == "symmetric":
            # c + U{1..K−1} mod K: uniform over the other classes
            out[chosen] = (c + rng.integers(1, num_classes, size=m)) % num_classes
        elif noise.kind == "pairflip":
            out[chosen] = (c + 1) % num_classes
        else:
            out[chosen] = class_map[c]
    return out


def apply_label_noise(
    data: ImageData, noise: LabelNoise, seed: int, all_classes: list[str] | None = None
) -> ImageData:
    """`data` with noisy `train_y` and the true labels in `train_clean_y` (unchanged if off).

    `all_classes`: the dataset's class list before holdout (see `resolve_map`).
    """
    if not noise.enabled:
        return data
    class_map = resolve_map(noise, data.classes, all_classes) if noise.kind == "asymmetric" else {}
    clean = data.train_y.numpy().astype(np.int64)
    given = noisy_labels(clean, data.num_classes, noise, class_map, seed)
    flipped = given != clean
    if not flipped.any():
        log.warning(
            "dataset.label_noise.rate=%g changes no label of the %d training images (the "
            "rate rounds to 0 flips): the run trains on clean labels",
            noise.rate, len(clean),
        )  # fmt: skip
    record: dict[str, Any] = {
        "kind": noise.kind,
        "configured_rate": noise.rate,
        "realized_rate": float(flipped.mean()) if len(clean) else 0.0,
        "flipped": int(flipped.sum()),
        "train_pool": len(clean),
        "flipped_per_class": np.bincount(clean[flipped], minlength=data.num_classes).tolist(),
        "seed_offset": noise.seed_offset,
    }
    if class_map:
        record["class_map"] = {data.classes[s]: data.classes[t] for s, t in class_map.items()}
    return replace(
        data,
        train_y=torch.from_numpy(given),
        train_clean_y=data.train_y.clone(),
        info={**data.info, "label_noise": record},
    )
