"""From a composed Hydra config to a validated `RunSpec`.

`hydra.utils.instantiate` is the registry: each config group's YAML names a class as
`_target_`, so a user's own loss, augmentation, model, dataset or split plugs in the same
way. Before instantiating, the keys are checked against the target's signature, and a
`ConfigError` raised by a constructor gets its group prefix (`loss.gamma=1.5: …`).
"""

from __future__ import annotations

import collections.abc
import importlib
import inspect
import types
import typing
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from regx.config import hydra_compat, trust
from regx.config.schema import validate_analysis, validate_top_level, validate_trainer
from regx.config.suggest import closest
from regx.engine.spec import RunSpec
from regx.errors import ConfigError, RefusedTargetError, UserError
from regx.params import declared_hints

RUNTIME_KWARGS = {"model": ("num_classes", "in_channels", "image_size")}


def _group_options(group: str) -> list[str]:
    """The YAML options of config group `group` (conf/<group>/*.yaml), sorted."""
    from regx.config.paths import config_dir

    return sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))


def _target(group: str, node: DictConfig) -> Any:
    path = node.get("_target_")
    if not path:
        options = _group_options(group)
        if options:  # settings given without an option of the group (`+aug.alpha=0.3`)
            raise ConfigError(
                group,
                OmegaConf.to_container(node),
                f"names no {group}: choose one first (+{group}=NAME: {', '.join(options)})",
            )
        raise ConfigError(f"{group}._target_", None, "is missing: name the class to build")
    module_name, _, attr = str(path).rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as e:
        raise ConfigError(f"{group}._target_", path, f"cannot be imported ({e})") from None


def _check_keys(group: str, target: Any, node: DictConfig) -> None:
    """Unknown keys fail with the list of keys the target accepts."""
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return
    params = sig.parameters
    if inspect.isclass(target) or any(p.kind is p.VAR_KEYWORD for p in params.values()):
        # Subclasses forwarding **common to a base class: check against the whole chain.
        names = _accepted_names(target)
        if names is None:
            return
    else:
        names = set(params)
    skip = set(RUNTIME_KWARGS.get(group, ()))
    for key in node:
        if str(key).startswith("_"):
            continue
        if key not in names:
            known = sorted(n for n in names if n not in skip and n not in ("self", "common"))
            meant = closest(str(key), known)
            hint = f"did you mean {group}.{meant}? " if meant else ""
            raise ConfigError(
                f"{group}.{key}",
                node[key],
                f"unknown key for {target.__name__}; {hint}"
                + (f"allowed: {', '.join(known)}" if known else "it takes no parameters"),
            )


def _accepted_names(target: Any) -> set[str] | None:
    """Keyword names a class accepts, following `**kwargs` forwarding up its bases.

    The walk stops at the first `__init__` without `**kwargs`, or at a library base such
    as `torch.nn.Module` (whose `*args, **kwargs` accept nothing meaningful).
    """
    if not inspect.isclass(target):
        return None
    names: set[str] = set()
    for cls in target.__mro__:
        if cls is object or (not cls.__module__.startswith("regx") and cls is not target):
            return names
        init = cls.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters
        names |= {n for n, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            return names - {"self"}
    return names - {"self"}


def _init_hints(target: Any) -> dict[str, Any]:
    """Parameter annotations of `target` (a class: its `__init__`s along `**kwargs` forwarding),
    bare types only: a subclass's annotation wins over its base's; annotations that cannot be
    evaluated are left out (their values are then checked by the constructor alone)."""
    return declared_hints(target, extras=False)


def _matches(value: Any, hint: Any) -> bool:
    """Whether a config value fits a parameter annotation (unknown forms are accepted)."""
    if hint is Any:
        return True
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is typing.Literal:
        return value in args
    if origin in (list, tuple, collections.abc.Sequence) or hint in (list, tuple):
        if not isinstance(value, (list, tuple, ListConfig)):
            return False
        item = args[0] if args else Any
        return all(_matches(v, item) for v in value)
    if origin in (dict, collections.abc.Mapping) or hint is dict:
        return isinstance(value, (dict, DictConfig))
    return True


_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if hint is type(None):
        return "null"
    if hint in _TYPE_NAMES:
        return _TYPE_NAMES[hint]
    if origin is typing.Literal:
        return "one of " + ", ".join(map(str, args))
    if origin in (list, tuple, collections.abc.Sequence):
        item = _describe(args[0]) if args else "values"
        plural = {"an integer": "integers", "a number": "numbers", "a string": "strings"}
        return f"a list of {plural.get(item, item)}"
    if origin in (dict, collections.abc.Mapping):
        return "a mapping of keys to values"
    return str(hint)


def _check_types(group: str, target: Any, node: DictConfig) -> None:
    """Each value against its constructor annotation: `model.depth=abc: must be an integer`."""
    hints = _init_hints(target)
    for key in node:
        key = str(key)
        if key.startswith("_") or key not in hints or OmegaConf.is_missing(node, key):
            continue
        value = node[key]
        if not _matches(value, hints[key]):
            shown = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
            raise ConfigError(f"{group}.{key}", shown, f"must be {_describe(hints[key])}")


def check_interpolations(cfg: DictConfig) -> None:
    """A `${…}` that does not resolve (an unknown key, an unset environment variable) is
    named with its key, as typed, and why."""
    from omegaconf.errors import InterpolationResolutionError

    try:
        OmegaConf.to_container(cfg, resolve=True)
    except InterpolationResolutionError as e:
        key = str(e.full_key or "?")
        typed: Any = OmegaConf.to_container(cfg, resolve=False)
        for part in key.split("."):
            typed = typed.get(part) if isinstance(typed, dict) else None
        reason = (
            str(e).splitlines()[0].replace("KeyError raised while resolving interpolation: ", "")
        )
        raise ConfigError(key, typed, f"does not resolve ({reason.strip(chr(34))})") from None


def check_missing(cfg: DictConfig) -> None:
    """A mandatory value left as `???` (e.g. dataset.root of imagefolder) is named."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        key = missing[0]
        raise ConfigError(key, "???", f"is required: pass {key}=VALUE")


def check_added_keys(overrides: list[str]) -> None:
    """`+losss=gamma_ce` adds a top-level key nothing reads: a typo, which would otherwise
    train the default silently. Allowed are regx's top-level keys and config groups."""
    import yaml

    from regx.config.paths import config_dir

    added = [
        o[1:].partition("=") for o in overrides if o.startswith("+") and not o.startswith("++")
    ]
    added = [(k, v) for k, _, v in added if k and "." not in k and "/" not in k]
    if not added:
        return
    root = config_dir()
    known = {p.name for p in root.iterdir() if p.is_dir()}
    base = yaml.safe_load((root / "config.yaml").read_text()) or {}
    known |= {str(k) for k in base if k != "defaults"}
    for key, value in added:
        if key not in known:
            meant = closest(key, known)
            hint = f"; did you mean {meant}={value}?" if meant else ""
            raise ConfigError(key, value, f"unknown top-level key (nothing reads it){hint}")


def check_single_options(cfg: DictConfig, overrides: list[str]) -> None:
    """`+aug=[mixup,cutmix]` makes Hydra merge both options into one node, which then fails
    as one option with the other's keys. A group whose node is one component (a
    `_target_`) takes one option; `logger`, a mapping of trackers, takes a list."""
    for override in overrides:
        key, _, value = override.lstrip("+~").partition("=")
        group, value = key.partition("@")[0], value.strip()
        node = cfg.get(group) if "." not in group and "/" not in group else None
        one = isinstance(node, DictConfig) and "_target_" in node
        if one and value.startswith("[") and value.endswith("]"):
            plus = "+" if override.startswith("+") else ""
            raise ConfigError(
                group,
                value,
                f"takes one option; a list merges them all into one {group} node. To compare "
                f"them, sweep: regx train -m {plus}{group}={value[1:-1].replace(' ', '')}",
            )


def instantiate_group(group: str, node: DictConfig, **kwargs: Any) -> Any:
    """Instantiate config group `group` (its node) with one-line errors; only trusted
    `_target_`s (regx.config.trust), checked before anything is imported."""
    trust.check_targets(group, OmegaConf.to_container(node, resolve=False))
    target = _target(group, node)
    _check_keys(group, target, node)
    _check_types(group, target, node)
    try:
        return instantiate(node, _convert_="all", **hydra_compat.instantiate_kwargs(), **kwargs)
    except InstantiationException as e:
        untrusted = hydra_compat.untrusted_target_message(str(e))
        if untrusted:
            raise RefusedTargetError(f"{group}.{untrusted}") from None
        cause = e.__cause__
        if isinstance(cause, ConfigError):
            raise cause.under(group) from None
        if isinstance(cause, UserError):  # e.g. MissingExtraError: already one line
            raise cause from None
        if cause is not None and isinstance(cause, (TypeError, ValueError)):
            target = node.get("_target_")
            raise ConfigError(
                f"{group}._target_", target, f"could not be built ({cause})"
            ) from None
        raise
    except ConfigError as e:
        raise e.under(group) from None
    except (TypeError, ValueError) as e:  # Hydra 1.4 re-raises the constructor's own error
        raise ConfigError(
            f"{group}._target_", node.get("_target_"), f"could not be built ({e})"
        ) from None


def build_loggers(node: Any) -> list[Any]:
    """The `logger` node maps names to nodes; those with a `_target_` are trackers."""
    if not node:
        return []
    return [
        instantiate_group(f"logger.{name}", sub)
        for name, sub in node.items()
        if isinstance(sub, DictConfig) and "_target_" in sub
    ]


def build_spec(cfg: DictConfig, overrides: list[str] | None = None) -> RunSpec:
    """Validate everything cheap to validate, and build the run's components."""
    from regx.metrics.between import BetweenSettings

    check_single_options(cfg, overrides or [])
    check_interpolations(cfg)
    check_missing(cfg)
    top = validate_top_level(cfg)
    check_added_keys(overrides or [])
    trainer = validate_trainer(cfg.trainer)
    analysis = validate_analysis(cfg)
    between = BetweenSettings.from_config(cfg.get("between"))
    dataset = instantiate_group("dataset", cfg.dataset)
    if cfg.get("shift") is not None:
        dataset.shift = instantiate_group("shift", cfg.shift)
    loss = instantiate_group("loss", cfg.loss)
    split = instantiate_group("split", cfg.split)
    aug_node = cfg.get("aug")
    mixer = instantiate_group("aug", aug_node) if aug_node else None
    model_factory = instantiate_group("model", cfg.model, _partial_=True)
    config = OmegaConf.to_container(cfg, resolve=True)
    return RunSpec(
        seed=top.seed,
        dataset=dataset,
        model_factory=model_factory,
        loss=loss,
        split=split,
        trainer=trainer,
        mixer=mixer,
        calibration_bins=top.calibration_bins,
        track_test=top.track_test,
        analysis=analysis,
        between=between,
        config=config,
        overrides=list(overrides or []),
        loggers=build_loggers(cfg.get("logger")),
    )
