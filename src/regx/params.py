"""Allowed values of a parameter, declared once: the constructor's check and `regx list` read
the same declaration.

A parameter states its limit in its annotation:

    s: Annotated[float, Range(0, None, lo_open=True)] = 30.0   # s ∈ (0, ∞)
    kind: Annotated[str, Choice(KINDS)] = "noise"              # one of a tuple of names
    mode: Literal["batch", "elem"] = "batch"                   # a Literal is a Choice

and `@check_params` on `__init__` checks every such argument before the body runs, with the
messages of `regx.errors.check_range` and `check_choice` (`s=0: must be in (0, inf)`); a
`Range(..., integer=True)` also requires an integer and says so (`holes=0: must be an
integer ≥ 1`). A `None` passes wherever the annotation allows it. The config check
(regx.config.build) sees the bare type (`float`), as `typing.get_type_hints` strips
`Annotated`.
"""

from __future__ import annotations

import functools
import inspect
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from regx.errors import ConfigError, _num, check_choice, check_range

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Range:
    """lo ≤ value ≤ hi (strict at an `*_open` end; `None`: unbounded on that side).

    `integer=True` also requires an integer, and the message names the range as `regx list`
    does (`must be an integer ≥ 0 (epochs)`, `note` in brackets); otherwise the message is
    check_range's interval (`must be in [0, 1)`)."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    integer: bool = False
    note: str = ""

    def __post_init__(self) -> None:
        if self.note and not self.integer:
            raise TypeError("Range(note=…) words the integer message: pass integer=True")

    def text(self) -> str:
        """`≥ 1`, `≤ 5`, `in (0, ∞)`, `in [0, 1)`: the range in words."""
        if self.lo is not None and self.hi is None and not self.lo_open:
            return f"≥ {_num(self.lo)}"
        if self.hi is not None and self.lo is None and not self.hi_open:
            return f"≤ {_num(self.hi)}"
        left = "(" if self.lo is None or self.lo_open else "["
        right = ")" if self.hi is None or self.hi_open else "]"
        lo = "-∞" if self.lo is None else _num(self.lo)
        hi = "∞" if self.hi is None else _num(self.hi)
        return f"in {left}{lo}, {hi}{right}"

    def contains(self, value: float) -> bool:
        # an unbounded side is open: [1, ∞) holds no infinity
        lo, hi = self.lo, self.hi
        below = value == -math.inf if lo is None else (value <= lo if self.lo_open else value < lo)
        above = value == math.inf if hi is None else (value >= hi if self.hi_open else value > hi)
        return not (below or above or value != value)  # value != value: NaN

    def check(self, key: str, value: Any, nullable: bool = False) -> None:
        if not self.integer:
            check_range(key, value, self.lo, self.hi, lo_open=self.lo_open, hi_open=self.hi_open)
            return
        is_int = isinstance(value, int) and not isinstance(value, bool)
        if not (is_int and self.contains(value)):
            allowed = f"must be an integer {self.text()}" + (" or null" if nullable else "")
            raise ConfigError(key, value, allowed + (f" ({self.note})" if self.note else ""))


@dataclass(frozen=True)
class Choice:
    """One of `options` (names kept in a tuple elsewhere, or a `Literal`'s values)."""

    options: tuple[Any, ...]

    def text(self) -> str:
        return "one of " + ", ".join(map(str, self.options))

    def check(self, key: str, value: Any, nullable: bool = False) -> None:
        check_choice(key, value, self.options)


Limit = Range | Choice


def _union_args(hint: Any) -> tuple[Any, ...] | None:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return typing.get_args(hint)
    return None


def limit_of(hint: Any) -> Limit | None:
    """The `Range` or `Choice` an annotation declares (also inside `… | None`); a `Literal`
    declares the Choice of its values."""
    if typing.get_origin(hint) is Annotated:
        found = [m for m in hint.__metadata__ if isinstance(m, (Range, Choice))]
        if found:
            return found[0]
        hint = typing.get_args(hint)[0]
    if typing.get_origin(hint) is Literal:
        return Choice(typing.get_args(hint))
    for arg in _union_args(hint) or ():
        limit = limit_of(arg)
        if limit is not None:
            return limit
    return None


def allows_none(hint: Any) -> bool:
    if typing.get_origin(hint) is Annotated:
        hint = typing.get_args(hint)[0]
    if hint is type(None) or hint is Any:
        return True
    return any(allows_none(a) for a in _union_args(hint) or ())


def declared_limits(fn: Callable[..., Any]) -> dict[str, tuple[Limit, bool]]:
    """Parameter name → (its declared limit, whether None is allowed), in signature order."""
    hints = typing.get_type_hints(fn, include_extras=True)
    limits = {}
    for name in inspect.signature(fn).parameters:
        limit = limit_of(hints.get(name))
        if limit is not None:
            limits[name] = (limit, allows_none(hints[name]))
    return limits


def check_params(init: F) -> F:
    """Decorate `__init__` (or any function): check each argument against its declared
    limit before the call. The annotations are read at the first call, when every name
    they use exists."""
    signature = inspect.signature(init)
    limits: dict[str, tuple[Limit, bool]] = {}
    read = False

    @functools.wraps(init)
    def checked(*args: Any, **kwargs: Any) -> Any:
        nonlocal limits, read
        if not read:
            limits, read = declared_limits(init), True
        try:
            arguments = signature.bind(*args, **kwargs).arguments
        except TypeError:  # a missing or unknown argument: the call's own error names it
            return init(*args, **kwargs)
        for name, (limit, nullable) in limits.items():
            if name in arguments and not (nullable and arguments[name] is None):
                limit.check(name, arguments[name], nullable)
        return init(*args, **kwargs)

    return typing.cast(F, checked)


def init_functions(target: Any) -> list[Callable[..., Any]]:
    """The `__init__`s that take a class's keyword arguments: its own, then its bases' along
    `**kwargs` forwarding, up to the first without `**kwargs` or a non-regx base (such as
    torch.nn.Module, whose `*args, **kwargs` accept nothing meaningful)."""
    if not inspect.isclass(target):
        return [target] if callable(target) else []
    functions = []
    for cls in target.__mro__:
        if cls is object or (not cls.__module__.startswith("regx") and cls is not target):
            break
        init = cls.__dict__.get("__init__")
        if init is None:
            continue
        functions.append(init)
        if not any(p.kind is p.VAR_KEYWORD for p in inspect.signature(init).parameters.values()):
            break
    return functions


def declared_hints(target: Any, extras: bool = True) -> dict[str, Any]:
    """Parameter annotations of `target` (a class: its `__init__`s, see init_functions),
    with their `Annotated` limits unless `extras=False`. A subclass's annotation wins over
    its base's; annotations that cannot be evaluated are left out."""
    hints: dict[str, Any] = {}
    for fn in reversed(init_functions(target)):
        try:
            hints.update(typing.get_type_hints(fn, include_extras=extras))
        except (NameError, TypeError, AttributeError):  # an unresolvable forward reference
            continue
    hints.pop("return", None)
    return hints
