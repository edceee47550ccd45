"""Structured-config validation: types via OmegaConf against the dataclass schema, then ranges.

Every failure becomes one `ConfigError` line: `trainer.epochs=-1: must be in [1, inf)`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError

from regx.engine.settings import MONITORS, AnalysisSettings, TrainerSettings
from regx.errors import ConfigError, check, check_choice, check_range
from regx.params import Choice, Limit, Range

_TYPE_WORDS = {
    "Integer": "must be an integer",
    "Float": "must be a number",
    "Boolean": "must be true or false",
    "String": "must be a string",
}
DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def _typed(schema_cls: type, node: Any, prefix: str) -> Any:
    """Merge `node` into the dataclass schema and return the dataclass instance.

    The node is resolved first, inside its own config: merged detached, an interpolation
    such as `trainer.epochs=${seed}` could not see the rest of the config."""
    values = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema_cls), values)
        return OmegaConf.to_object(merged)
    except ConfigKeyError as e:
        key = f"{prefix}.{e.full_key}" if e.full_key else prefix
        allowed = ", ".join(f.name for f in schema_cls.__dataclass_fields__.values())
        raise ConfigError(key, "?", f"unknown key; allowed keys of {prefix}: {allowed}") from None
    except ValidationError as e:
        value = OmegaConf.select(node, str(e.full_key), default="?") if e.full_key else "?"
        words = next(
            (w for t, w in _TYPE_WORDS.items() if t in str(e.msg)), str(e.msg).split("\n")[0]
        )
        raise ConfigError(f"{prefix}.{e.full_key}", value, words) from None


# The optimizer steps in float32: a larger factor overflows there before training starts.
FLOAT32_MAX = 3.4028234663852886e38

# What each trainer key allows, by its dotted name below `trainer`: validate_trainer checks
# these and `regx list trainer` shows them (a null passes where the field allows one).
TRAINER_LIMITS: dict[str, Limit] = {
    "epochs": Range(1),
    "eval_batch_size": Range(1),
    "optimizer.name": Choice(("sgd", "adamw")),
    "optimizer.lr": Range(0, FLOAT32_MAX, lo_open=True),
    "optimizer.momentum": Range(0, 1, hi_open=True),
    "optimizer.weight_decay": Range(0, FLOAT32_MAX),
    "scheduler.name": Choice(("cosine", "multistep", "onecycle", "none")),
    "scheduler.gamma": Range(0, 1, lo_open=True),
    "scheduler.min_lr_ratio": Range(0, 1),
    "precision": Choice(("32", "bf16", "16")),
    "num_workers": Range(0),
    "data_on_device": Choice(("auto", "always", "never")),
    "threads": Range(1),
    "monitor": Choice(MONITORS),
    "early_stop": Range(1),
    "resume": Choice(("auto", "never")),
    "grad_clip": Range(0, lo_open=True),
    "nan_check_every": Range(1),
}


def _field(settings: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        settings = getattr(settings, part)
    return settings


def validate_trainer(node: DictConfig | dict) -> TrainerSettings:
    s: TrainerSettings = _typed(TrainerSettings, node, "trainer")
    p = "trainer"
    for key, limit in TRAINER_LIMITS.items():
        value = _field(s, key)
        if value is not None:  # the schema let a null through only where it is allowed
            limit.check(f"{p}.{key}", value)
    check(
        s.batch_size >= 2,
        f"{p}.batch_size",
        s.batch_size,
        "must be at least 2 (batch norm needs two images per training batch)",
    )
    sc = s.scheduler
    check_range(f"{p}.scheduler.warmup_epochs", sc.warmup_epochs, 0, s.epochs)
    for m in sc.milestones:
        check(
            m > 0,
            f"{p}.scheduler.milestones",
            list(sc.milestones),
            "must be epochs (integers ≥ 1) or fractions of the run in (0, 1)",
        )
    check(
        bool(DEVICE_PATTERN.match(s.device)),
        f"{p}.device",
        s.device,
        "must be auto, cpu, mps, cuda or cuda:N",
    )
    return s


CALIBRATION_BINS = 15  # calibration.n_bins where a saved config lacks it


@dataclass(frozen=True)
class TopLevel:
    """The checked top-level keys: `seed`, `calibration.n_bins`, `track_test`."""

    seed: int
    calibration_bins: int
    track_test: bool


def validate_top_level(cfg: DictConfig) -> TopLevel:
    seed = cfg.get("seed")
    check(
        isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0,
        "seed",
        seed,
        "must be a non-negative integer",
    )
    # torch seeds generators with signed 64-bit integers; the data order multiplies the seed
    check(seed < 2**32, "seed", seed, "must be below 2**32 (4294967296)")
    n_bins = OmegaConf.select(cfg, "calibration.n_bins", default=CALIBRATION_BINS)
    check(
        isinstance(n_bins, int) and not isinstance(n_bins, bool) and n_bins >= 1,
        "calibration.n_bins",
        n_bins,
        "must be a positive integer",
    )
    track_test = cfg.get("track_test", False)
    check(isinstance(track_test, bool), "track_test", track_test, "must be true or false")
    return TopLevel(seed, n_bins, track_test)


def _node(cfg: DictConfig, key: str, allowed: tuple[str, ...]) -> Any:
    """The top-level mapping `key` (empty when absent, e.g. a saved config without it)."""
    node = cfg.get(key)
    if node is None:
        return {}
    if not isinstance(node, DictConfig):
        raise ConfigError(key, node, f"must be a mapping with keys {', '.join(allowed)}")
    for name in node:
        if name not in allowed:
            raise ConfigError(
                f"{key}.{name}", node[name], f"unknown key; allowed: {', '.join(allowed)}"
            )
    return node


def _non_negative_int(key: str, value: Any, most: int | None = None) -> int:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    check(ok, key, value, "must be a non-negative integer (0: off)")
    if most is not None:
        check(value <= most, key, value, f"must be at most {most} (0: off)")
    return value


# Each resample is a pass over the test predictions; past this the interval stops moving.
MOST_BOOTSTRAP_RESAMPLES = 100_000


def validate_analysis(cfg: DictConfig) -> AnalysisSettings:
    """The `noise`, `retrieval`, `outputs` nodes and `calibration.bootstrap`."""
    from regx.metrics.retrieval import check_ks

    d = AnalysisSettings()
    noise = _node(cfg, "noise", ("track_every",))
    retrieval = _node(cfg, "retrieval", ("ks",))
    outputs = _node(cfg, "outputs", ("save_features", "features_dtype"))
    save = outputs.get("save_features", d.save_features)
    check(isinstance(save, bool), "outputs.save_features", save, "must be true or false")
    dtype = outputs.get("features_dtype", d.features_dtype)
    check_choice("outputs.features_dtype", dtype, ("float16", "float32"))
    ks = retrieval.get("ks", d.retrieval_ks)
    ks = list(ks) if isinstance(ks, ListConfig) else ks
    return AnalysisSettings(
        noise_track_every=_non_negative_int(
            "noise.track_every", noise.get("track_every", d.noise_track_every)
        ),
        retrieval_ks=check_ks(ks),
        save_features=save,
        features_dtype=dtype,
        bootstrap=_non_negative_int(
            "calibration.bootstrap",
            OmegaConf.select(cfg, "calibration.bootstrap", default=d.bootstrap),
            MOST_BOOTSTRAP_RESAMPLES,
        ),
    )
