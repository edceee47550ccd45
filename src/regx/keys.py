"""What each config key is for: one table from which every "is this the same run?" derives.

Roles:

- `experiment`: changes what the run trains (every key not listed below).
- `evaluation`: changes only how the trained model is scored (the test set's shift, the
  calibration bins, the between-sample, retrieval and memorization diagnostics);
  `regx evaluate` may change these.
- `replicate`: the seed: another seed is another run of the same experiment.
- `execution`: where and how fast the run goes, and what it logs; never a number.
- `io`: where inputs come from and outputs go; never a number.

Derived here: `config_hash` (summary.json, checkpoints, `sweep.skip_done`) and
`config_differences` (a resume's check) use experiment + evaluation + replicate keys;
`regx report` groups runs by `comparison_config` (experiment + evaluation keys, less those
that change no number of the run: `unused_keys`).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

Role = Literal["experiment", "evaluation", "replicate", "execution", "io"]

# A key's role is that of its longest listed prefix (`trainer.progress` before `trainer`);
# keys under no listed prefix are `experiment`.
KEY_ROLES: dict[str, Role] = {
    "seed": "replicate",
    # where things are
    "out_dir": "io",
    "hydra": "io",
    "dataset.root": "io",
    "dataset.cache_dir": "io",
    "dataset.download": "io",
    "dataset.max_pixels": "io",  # refuses huge images; never changes a number
    "outputs": "io",
    # how the run goes and what it logs
    "logger": "execution",
    "objective": "execution",
    "sweep": "execution",
    "track_test": "execution",
    "trainer.progress": "execution",
    "trainer.threads": "execution",
    "trainer.reuse_host_memory": "execution",
    "trainer.num_workers": "execution",
    "trainer.device": "execution",
    "trainer.data_on_device": "execution",
    "trainer.eval_batch_size": "execution",
    "trainer.compile": "execution",
    "trainer.channels_last": "execution",
    "trainer.deterministic": "execution",
    "trainer.resume": "execution",
    "trainer.checkpoint": "execution",
    "trainer.nan_check_every": "execution",
    # how the trained model is scored
    "dataset.test_shift": "evaluation",
    "shift": "evaluation",
    "calibration": "evaluation",
    "between": "evaluation",
    "retrieval": "evaluation",
    "noise": "evaluation",  # how often memorization is measured under label noise
}

IDENTITY_ROLES: frozenset[Role] = frozenset({"experiment", "evaluation", "replicate"})
COMPARISON_ROLES: frozenset[Role] = frozenset({"experiment", "evaluation"})


def keys_of_role(role: Role) -> list[str]:
    """The listed prefixes of `role`, in KEY_ROLES' order."""
    return [key for key, r in KEY_ROLES.items() if r == role]


def role_of(key: str) -> Role:
    """The role of a dotted config key (`trainer.optimizer.lr` → experiment)."""
    parts = key.split(".")
    for end in range(len(parts), 0, -1):
        role = KEY_ROLES.get(".".join(parts[:end]))
        if role is not None:
            return role
    return "experiment"


def flatten_config(config: Any, prefix: str = "") -> dict[str, Any]:
    """{"a.b.c": value} for every leaf of nested dicts (lists are leaves)."""
    if not isinstance(config, dict):
        return {prefix: config}
    flat: dict[str, Any] = {}
    for key, value in config.items():
        flat.update(flatten_config(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def keys_with_roles(config: dict[str, Any], roles: frozenset[Role]) -> dict[str, Any]:
    """The flattened config restricted to keys whose role is in `roles`."""
    return {k: v for k, v in flatten_config(config).items() if role_of(k) in roles}


def identity_config(config: dict[str, Any]) -> dict[str, Any]:
    """What makes a run this run: experiment, evaluation and seed keys."""
    return keys_with_roles(config, IDENTITY_ROLES)


# The `shift.*` keys each test shift reads (regx.data.shift); with test_shift=none, none.
SHIFT_MODE_KEYS: dict[str, tuple[str, ...]] = {
    "prior": ("strength",),
    "corrupt": ("kind", "severity"),
    "subpop": ("score", "tilt", "keep"),
}
NOISE = "dataset.label_noise"


def unused_keys(flat: dict[str, Any]) -> set[str]:
    """Keys of a flattened config that change no number of the run: the shift keys its test
    shift does not read, label-noise keys at rate 0, a class map or preset of non-asymmetric
    noise."""
    read = SHIFT_MODE_KEYS.get(str(flat.get("dataset.test_shift", "none")), ())
    unused = {k for k in flat if k.startswith("shift.") and k.split(".")[1] not in read}
    noise = {k for k in flat if k.startswith(f"{NOISE}.") and k != f"{NOISE}.rate"}
    if not flat.get(f"{NOISE}.rate"):
        unused |= noise
    elif flat.get(f"{NOISE}.kind") != "asymmetric":
        unused |= {k for k in noise if k.split(".")[2] in ("class_map", "preset")}
    return unused


def comparison_config(config: dict[str, Any]) -> dict[str, Any]:
    """What `regx report` compares: the experiment and evaluation keys (not the seed) that
    change a number of the run (`unused_keys` left out); a label-noise class map is one
    value, not one key per class."""
    compared = keys_with_roles(config, COMPARISON_ROLES)
    unused = unused_keys(compared)
    class_map = (config.get("dataset") or {}).get("label_noise", {}) or {}
    class_map = class_map.get("class_map") if isinstance(class_map, dict) else None
    out = {k: v for k, v in compared.items() if k not in unused}
    per_class = [k for k in out if k.startswith(f"{NOISE}.class_map.")]
    if isinstance(class_map, dict) and per_class:
        out = {k: v for k, v in out.items() if k not in per_class}
        out[f"{NOISE}.class_map"] = json.dumps(class_map, sort_keys=True, default=str)
    return out


def config_hash(config: dict[str, Any]) -> str:
    """A short hash of `identity_config(config)`: same hash = same run."""
    text = json.dumps(identity_config(config), sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """`key: saved → current` for each identity key that differs between two configs."""
    old, new = identity_config(saved), identity_config(current)
    missing = object()
    return [
        f"{key}: {_show(old.get(key, missing))} → {_show(new.get(key, missing))}"
        for key in sorted(set(old) | set(new))
        if old.get(key, missing) != new.get(key, missing)
    ]


def _show(value: Any) -> str:
    if not isinstance(value, (str, int, float, bool, list, type(None))):
        return "(absent)"
    return "null" if value is None else str(value)
