"""The search space of `hydra/sweeper=regx_optuna`, read with Hydra's override parser.

Each line `KEY: EXPR` of `hydra.sweeper.params`, and each sweep override on the command
line (`'loss.gamma=interval(0,0.9)'`, `seed=0,1`), becomes one Optuna distribution:

| EXPR                                 | distribution                                |
|--------------------------------------|---------------------------------------------|
| `interval(lo, hi)`                   | float, uniform on [lo, hi]                  |
| `tag(log, interval(lo, hi))`         | float, uniform in log(x) (lo > 0)           |
| `int(interval(lo, hi))`              | integer in [lo, hi] (`tag(log, …)` as well) |
| `range(lo, hi[, step])`              | integer lo, lo+step, … < hi (floats: each value a choice) |
| `choice(a, b, …)` or `a,b,…`         | categorical over the values                 |

Any other value is fixed for every trial; a command-line line wins over a `params` line of
the same key. Nothing here imports Optuna at module level: Hydra imports every module under
`hydra_plugins` whenever it looks for plugins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from regx.errors import ConfigError

FORMS = (
    "must be interval(lo, hi), int(interval(lo, hi)), tag(log, interval(lo, hi)), "
    "choice(a, b, ...), range(lo, hi[, step]) or a fixed value"
)
# what an Optuna categorical can hold
CHOICE_TYPES = (str, int, float, bool, type(None))


@dataclass
class SearchSpace:
    """The searched keys with their Optuna distributions, and the overrides fixed for all.

    `prefixes` keeps how each key was written (`+aug.alpha` adds a key the config lacks).
    """

    distributions: dict[str, Any] = field(default_factory=dict)
    prefixes: dict[str, str] = field(default_factory=dict)
    fixed: list[str] = field(default_factory=list)

    def overrides(self, params: dict[str, Any]) -> list[str]:
        """The job overrides of one trial: the fixed ones, then each searched key's value."""
        drawn = [f"{self.prefixes.get(k, '')}{k}={override_text(v)}" for k, v in params.items()]
        return [*self.fixed, *drawn]

    def corner(self) -> dict[str, Any]:
        """One point of the space (each low end or first choice), to check the keys compose."""
        from optuna.distributions import CategoricalDistribution

        return {
            name: dist.choices[0] if isinstance(dist, CategoricalDistribution) else dist.low
            for name, dist in self.distributions.items()
        }

    def extremes(self) -> list[tuple[str, Any, dict[str, Any]]]:
        """(key, value, point) for each end of each key's range (each choice), the other keys
        at the corner: the values a search may reach that the run's checks may refuse."""
        from optuna.distributions import CategoricalDistribution

        points = []
        for name, dist in self.distributions.items():
            ends = (
                dist.choices if isinstance(dist, CategoricalDistribution) else (dist.low, dist.high)
            )
            points += [(name, value, {**self.corner(), name: value}) for value in ends]
        return points


def parse_space(params: dict[str, Any] | None, arguments: list[str]) -> SearchSpace:
    """The space of `hydra.sweeper.params` plus the command line's sweep overrides.

    Raises `ConfigError` naming the line for anything that is not a search-space form.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    lines = [(f"hydra.sweeper.params.{k}", f"{k}={v}") for k, v in _flat(params or {}).items()]
    lines += [(line.split("=", 1)[0], line) for line in arguments]
    parsed: dict[str, tuple[str, Any]] = {}  # key → (where, override); the last line wins
    for where, line in lines:
        try:
            override = parser.parse_overrides([line])[0]
        except OverrideParseException:
            raise ConfigError(where, line.split("=", 1)[-1], FORMS) from None
        parsed[override.key_or_group] = (where, override)
    space = SearchSpace()
    for key, (where, override) in parsed.items():
        if not override.is_sweep_override():
            space.fixed.append(override.input_line or f"{key}={override.value()}")
            continue
        space.distributions[key] = _distribution(where, override)
        space.prefixes[key] = override.get_key_element()[: -len(key)]
    return space


def _flat(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{loss: {gamma: …}}` (as `+hydra.sweeper.params.loss.gamma=…` makes it) → `{loss.gamma: …}`."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _distribution(where: str, override: Any) -> Any:
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep
    from optuna.distributions import CategoricalDistribution

    value = override.value()
    text = override.input_line.split("=", 1)[-1] if override.input_line else str(value)
    if isinstance(value, IntervalSweep):
        return _interval(where, text, value)
    if isinstance(value, ChoiceSweep) and not value.shuffle:
        choices = list(value.list)
    elif isinstance(value, RangeSweep) and not value.shuffle:
        if _all_int(value.start, value.stop, value.step) and not getattr(
            value, "transformers", None
        ):  # Hydra 1.4 only
            return _int_range(where, text, value)
        choices = list(override.sweep_iterator())
    else:
        raise ConfigError(where, text, FORMS)  # shuffle(…), glob(…)
    if not choices or not all(isinstance(c, CHOICE_TYPES) for c in choices):
        raise ConfigError(where, text, "a choice's values must be numbers, strings or booleans")
    if len(set(map(repr, choices))) < len(choices):
        raise ConfigError(where, text, "a choice's values must differ")
    return CategoricalDistribution(choices)


def _all_int(*values: Any) -> bool:
    return all(isinstance(v, int) and not isinstance(v, bool) for v in values)


def _interval(where: str, text: str, value: Any) -> Any:
    from optuna.distributions import FloatDistribution, IntDistribution

    lo, hi, log = value.start, value.end, "log" in value.tags
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
        raise ConfigError(where, text, "an interval needs finite lo < hi")
    if log and lo <= 0:
        raise ConfigError(where, text, "tag(log, interval(lo, hi)) needs lo > 0")
    if set(value.tags) - {"log"}:
        raise ConfigError(where, text, "the only tag a search space knows is log")
    if _all_int(lo, hi):
        return IntDistribution(int(lo), int(hi), log=log)
    return FloatDistribution(float(lo), float(hi), log=log)


def _int_range(where: str, text: str, value: Any) -> Any:
    from optuna.distributions import IntDistribution

    start, stop, step = value.start, value.stop, value.step
    if step <= 0 or stop <= start:
        raise ConfigError(where, text, "range(lo, hi, step) needs lo < hi and step > 0")
    last = start + (stop - 1 - start) // step * step  # the last value below `stop`
    return IntDistribution(start, last, step=step)


def override_text(value: Any) -> str:
    """`value` as an override's right-hand side that Hydra parses back to the same value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    text = str(value)
    if isinstance(value, str) and not _reads_back(text, value):
        from hydra.core.override_parser.types import Quote, QuotedString

        return QuotedString(text=value, quote=Quote.single).with_quotes()
    return text


def _reads_back(text: str, value: str) -> bool:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    try:
        parsed = OverridesParser.create().parse_overrides([f"k={text}"])[0]
    except OverrideParseException:
        return False
    return not parsed.is_sweep_override() and parsed.value() == value
