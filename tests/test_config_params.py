"""One declaration of what a parameter allows (regx.params): the constructor's check and
`regx list` read the same `Range` / `Choice` / `Literal` annotation."""

from __future__ import annotations

import functools
import inspect
import typing
from typing import Annotated, Literal

import pytest
from omegaconf import OmegaConf

from regx.config import compose_config
from regx.config.build import instantiate_group
from regx.config.catalog import catalog, option_class, type_text
from regx.errors import ConfigError
from regx.params import Choice, Range, check_params, declared_hints, declared_limits, limit_of


@pytest.mark.parametrize(
    ("limit", "text"),
    [
        (Range(1), "≥ 1"),
        (Range(None, 5), "≤ 5"),
        (Range(0, None, lo_open=True), "in (0, ∞)"),
        (Range(0, 1, hi_open=True), "in [0, 1)"),
        (Range(0, 1, lo_open=True, hi_open=True), "in (0, 1)"),
        (Range(None, 2.5, hi_open=True), "in (-∞, 2.5)"),
        (Range(1, 5, integer=True), "in [1, 5]"),
    ],
)
def test_range_in_words(limit: Range, text: str) -> None:
    assert limit.text() == text


@pytest.mark.parametrize(
    ("limit", "value", "message"),
    [
        # check_range's words, byte for byte (tests and users see these)
        (Range(0, None, lo_open=True), 0, "s=0: must be in (0, inf)"),
        (Range(0, 1, hi_open=True), 1.0, "s=1.0: must be in [0, 1)"),
        (Range(1), -1, "s=-1: must be in [1, inf)"),
        (Range(0, 1), float("nan"), "s=nan: must be in [0, 1]"),
        (Range(0, 1), "abc", "s=abc: must be a number"),
        # integer ranges say "an integer", with an optional note
        (Range(1, integer=True), 0, "s=0: must be an integer ≥ 1"),
        (Range(1, integer=True), 2.0, "s=2.0: must be an integer ≥ 1"),
        (Range(1, integer=True), True, "s=True: must be an integer ≥ 1"),
        (Range(1, 5, integer=True), 6, "s=6: must be an integer in [1, 5]"),
        (Range(0, integer=True, note="epochs"), -1, "s=-1: must be an integer ≥ 0 (epochs)"),
        (Choice(("a", "b")), "c", "s=c: must be one of a, b"),
    ],
)
def test_limit_messages(limit: Range | Choice, value: object, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        limit.check("s", value)
    assert str(err.value) == message


def test_a_note_belongs_to_the_integer_message() -> None:
    with pytest.raises(TypeError, match="integer=True"):
        Range(0, note="epochs")


class Widget:
    @check_params
    def __init__(
        self,
        size: Annotated[float, Range(0, None, lo_open=True)] = 1.0,
        every: Annotated[int | None, Range(1, integer=True)] = None,
        mode: Literal["batch", "elem"] = "batch",
        kind: Annotated[str, Choice(("x", "y"))] = "x",
        free: float = -5.0,
    ) -> None:
        self.size, self.every, self.mode, self.kind, self.free = size, every, mode, kind, free


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": 0}, "size=0: must be in (0, inf)"),
        ({"every": 0}, "every=0: must be an integer ≥ 1 or null"),
        ({"mode": "pixel"}, "mode=pixel: must be one of batch, elem"),
        ({"kind": "z"}, "kind=z: must be one of x, y"),
        ({"size": -1, "mode": "pixel"}, "size=-1: must be in (0, inf)"),  # signature order
    ],
)
def test_check_params_checks_each_declared_argument(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        Widget(**kwargs)
    assert str(err.value) == message


def test_check_params_passes_valid_values_none_and_undeclared_ones() -> None:
    w = Widget(2.5, None, "elem", kind="y", free=-100.0)  # positional arguments are bound too
    assert (w.size, w.every, w.mode, w.kind, w.free) == (2.5, None, "elem", "y", -100.0)
    with pytest.raises(ConfigError, match=r"^size=-1: "):
        Widget(-1)
    # a call the signature refuses fails with Python's own TypeError
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        Widget(colour=1)


def test_the_decorated_signature_is_the_constructors() -> None:
    """Hydra, the config check and `regx list` read the signature through the decorator."""
    assert list(inspect.signature(Widget).parameters) == ["size", "every", "mode", "kind", "free"]
    assert typing.get_type_hints(Widget.__init__)["size"] is float  # Annotated stripped
    assert declared_hints(Widget)["every"] == Annotated[int | None, Range(1, integer=True)]
    assert set(declared_limits(Widget.__init__)) == {"size", "every", "mode", "kind"}


@pytest.mark.parametrize(
    ("hint", "text"),
    [
        (Annotated[float, Range(0, None, lo_open=True)], "a number in (0, ∞)"),
        (Annotated[int, Range(1)], "an integer ≥ 1"),
        (Annotated[int | None, Range(1, integer=True)], "an integer ≥ 1 or null"),
        (Annotated[float | None, Range(0, 1)], "a number in [0, 1] or null"),
        (
            Annotated[int | None, Range(0, integer=True, note="epochs")],
            "an integer ≥ 0 or null (epochs)",
        ),
        (Annotated[str, Choice(("a", "b"))], "one of a, b"),
        (Literal["fixed", "auto"], "one of fixed, auto"),
        (float | None, "a number or null"),
    ],
)
def test_regx_list_names_the_declared_limit(hint: object, text: str) -> None:
    assert type_text(hint) == text


# -- every component: what `regx list` shows is what its constructor refuses --------------
def _outside(limit: Range) -> list[float]:
    """Values just outside each finite end of the range, and the ends inside it."""
    out = []
    if limit.lo is not None:
        out.append(limit.lo if limit.lo_open else limit.lo - 1)
    if limit.hi is not None:
        out.append(limit.hi if limit.hi_open else limit.hi + 1)
    return out


def _not_one_of(choice: Choice) -> object:
    """A value of the options' own type that is none of them (so the type check passes)."""
    if all(isinstance(o, int) for o in choice.options):
        return max(choice.options) + 1
    return "not-an-option"


def _declared_cases() -> list[tuple[str, str, str, object]]:
    """(group, option, key, bad value) for each Range or Choice a shipped option declares."""
    cases = []
    for group in ("loss", "aug", "model", "dataset", "split"):
        for name, option in catalog()[group].items():
            cls = option_class(group, option)
            keys = {p.key for p in option.params}
            for key, hint in declared_hints(cls).items() if cls else ():
                limit = limit_of(hint)
                if key not in keys or limit is None:
                    continue
                bad = _outside(limit) if isinstance(limit, Range) else [_not_one_of(limit)]
                cases += [(group, name, key, value) for value in bad]
    return cases


CASES = _declared_cases()


def test_the_components_declare_their_limits() -> None:
    declared = {(g, o, k) for g, o, k, _ in CASES}
    for expected in [
        ("loss", "am_softmax", "s"),
        ("loss", "gamma_ce", "threshold"),
        ("aug", "mixup", "alpha"),
        ("aug", "samplepairing", "on_epochs"),
        ("model", "resnet", "depth"),
        ("model", "cnn", "dropout"),
        ("dataset", "synthetic", "num_train"),
        ("dataset", "digits", "test_shift"),
        ("split", "random", "val_fraction"),
        ("split", "adversarial", "clip"),
        ("split", "adversarial", "cnn_epochs"),
        ("split", "adversarial", "device"),
    ]:
        assert expected in declared


@functools.cache
def _option_node(group: str, option: str) -> dict:
    """The option's node as `regx train group=option` composes it (resolved)."""
    prefix = "+" if group == "aug" else ""
    overrides = [f"{prefix}{group}={option}"]
    if option == "imagefolder":
        overrides.append("dataset.root=/nonexistent")
    return OmegaConf.to_container(compose_config(overrides)[group], resolve=True)


@pytest.mark.parametrize(("group", "option", "key", "value"), CASES, ids=str)
def test_each_declared_limit_is_enforced(group, option, key, value) -> None:
    """Through the real path: the config check, Hydra, the decorated constructor."""
    node = OmegaConf.create({**_option_node(group, option), key: value})
    with pytest.raises(ConfigError) as err:
        if group == "model":  # built once the data's shape is known; keys stay local
            instantiate_group(group, node, _partial_=True)(
                num_classes=10, in_channels=1, image_size=8
            )
        else:
            instantiate_group(group, node)
    assert err.value.key in (key, f"{group}.{key}")
    assert err.value.value == value
