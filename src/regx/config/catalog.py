"""`regx list [GROUP]`: what each config group offers, read from its YAML files.

`regx list` names every group's options with the first line of each YAML's header comment
(no torch import). `regx list GROUP` shows each option's class with its docstring's first
line, and each parameter as the user overrides it (`loss.gamma`) with its type (the
constructor's annotation, which the config check enforces: regx.config.build) and its
allowed values (the annotation's `Range` or choices, which the constructor checks:
regx.params; for the trainer, regx.config.schema.TRAINER_LIMITS), its default and the YAML
line's comment.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
import types
import typing
from dataclasses import dataclass, field, is_dataclass
from typing import Annotated, Any

import yaml
from rich.console import Console
from rich.table import Table
from rich.text import Text

from regx.config.paths import config_dir
from regx.params import Choice, Limit, Range, declared_hints, limit_of

GROUPS = (
    "dataset",
    "model",
    "aug",
    "loss",
    "split",
    "trainer",
    "experiment",
    "scale",
    "arm",
    "condition",
    "logger",
    "hparams_search",
    "hydra/launcher",
    "hydra/sweeper",
)
# Groups validated against a settings dataclass instead of a `_target_` class, and the
# limits their check enforces (dotted key below the group → Range or Choice).
SCHEMAS = {"trainer": "regx.engine.settings.TrainerSettings"}
SCHEMA_LIMITS = {"trainer": "regx.config.schema.TRAINER_LIMITS"}

_KEY_LINE = re.compile(r"^(\s*)([A-Za-z_][\w\-]*)\s*:(.*)$")


@dataclass
class Param:
    """One key of an option's YAML: dotted below the option's node, its value and comment."""

    key: str
    default: Any
    comment: str


@dataclass
class Option:
    """One YAML file of a group: its `_target_` (and the key holding it), header comment,
    own defaults list, the package its keys land in (`loss`, `` for global presets)."""

    name: str
    target: str
    target_key: str
    summary: str
    package: str
    bases: list[str] = field(default_factory=list)
    params: list[Param] = field(default_factory=list)


def _trailing_comment(rest: str) -> tuple[str, str]:
    """(value text, comment) of what follows `key:`; a `#` inside quotes is not a comment."""
    for match in re.finditer(r"\s#\s?", rest):
        before = rest[: match.start()]
        if before.count("'") % 2 == 0 and before.count('"') % 2 == 0:
            return before.strip(), rest[match.end() :].strip()
    return rest.strip(), ""


def _first_sentence(lines: list[str]) -> str:
    """Up to the first ". " outside brackets: "(Wang et al. 2018)" does not end a sentence."""
    text = " ".join(lines).strip()
    for match in re.finditer(r"\. ", text):
        before = text[: match.start()]
        if before.count("(") == before.count(")"):
            return before + "."
    return text


def yaml_comments(text: str) -> dict[str, str]:
    """Dotted key → its description: the `# …` at the end of the key's line, else the first
    sentence of the comment block right above it. The file's header comment (its first
    lines) describes the file, no key."""
    comments: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    block: list[str] = []
    in_header = True
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            if not in_header:
                block.append(stripped.lstrip("#").strip())
            continue
        in_header = False
        match = _KEY_LINE.match(line)
        if not match:
            block = []  # a blank line, a list item: what is above describes nothing below
            continue
        indent, key = len(match.group(1)), match.group(2)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        dotted = ".".join([*(k for _, k in stack), key])
        value, trailing = _trailing_comment(match.group(3))
        if trailing or block:
            comments[dotted] = trailing or _first_sentence(block)
        if not value:
            stack.append((indent, key))
        block = []
    return comments


def header_comment(text: str) -> str:
    """The first sentence of the file's leading comment (`# @package` lines skipped; the
    paragraph ends at an empty or indented comment line, e.g. an example command, and a
    lead-in to it, `…:` or `…; e.g.`, ends in a period instead)."""
    lines: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped.startswith("#"):
            break
        body = stripped[1:]
        if body.strip().startswith("@package"):
            continue
        if not body.strip() or body.startswith("  "):
            if lines:
                break
            continue
        lines.append(body.strip())
    # prose that leads into the example commands below it ends in ":" or "e.g.": a period
    return re.sub(r"(;?\s*e\.g\.|:)$", ".", _first_sentence(lines).rstrip())


def _package(text: str, group: str) -> str:
    found = re.search(r"^#\s*@package\s+(\S+)", text, flags=re.M)
    package = found.group(1) if found else group.replace("/", ".")
    return "" if package == "_global_" else package


def _params(node: Any, comments: dict[str, str], prefix: str = "") -> list[Param]:
    params: list[Param] = []
    for key, value in node.items():
        if key in ("defaults", "_target_") or str(key).startswith("#"):
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            params.extend(_params(value, comments, f"{name}."))
        else:
            params.append(Param(name, value, comments.get(name, "")))
    return params


def _target_of(data: dict[str, Any]) -> tuple[str, str]:
    """(`_target_`, the key holding it): the node's own, or that of its one child node (a
    logger's YAML nests its tracker under the tracker's name)."""
    if "_target_" in data:
        return str(data["_target_"]), ""
    nodes = [(k, v) for k, v in data.items() if isinstance(v, dict) and "_target_" in v]
    if len(nodes) == 1:
        return str(nodes[0][1]["_target_"]), str(nodes[0][0])
    return "", ""


def read_option(group: str, path: Any) -> Option:
    text = path.read_text()
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        data = {}
    target, target_key = _target_of(data)
    bases = [
        str(d) if not isinstance(d, dict) else " ".join(f"{k}: {v}" for k, v in d.items())
        for d in data.get("defaults") or []
        if d != "_self_"
    ]
    return Option(
        name=path.stem,
        target=target,
        target_key=target_key,
        summary=header_comment(text),
        package=_package(text, group),
        bases=bases,
        params=_params(data, yaml_comments(text)),
    )


def catalog() -> dict[str, dict[str, Option]]:
    """Group → option → what its YAML file holds."""
    root = config_dir()
    out: dict[str, dict[str, Option]] = {}
    for group in GROUPS:
        folder = root / group
        if folder.is_dir():
            # nested options (arm=mixing/cutmix) by their path under the group's folder
            out[group] = {
                str(p.relative_to(folder).with_suffix("")): read_option(group, p)
                for p in sorted(folder.rglob("*.yaml"))
            }
    return out


# -- types, from the classes (imports torch) -------------------------------------------------
def _import(path: str) -> Any:
    module_name, _, attr = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError):  # an optional dependency missing: no types shown
        return None


def _field_comments(cls: Any) -> dict[str, str]:
    """A settings dataclass's `name: type = default  # comment` lines, by field name."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    comments = {}
    for line in source.splitlines():
        match = re.match(r"^\s+(\w+)\s*:[^#]*#\s?(.*)$", line)
        if match:
            comments[match.group(1)] = match.group(2).strip()
    return comments


def _hint(cls: Any, dotted: str) -> tuple[Any, str]:
    """(annotation with its `Annotated` limit, field comment) of `dotted` below a class,
    nested dataclasses followed; (None, "") where there is none."""
    hint: Any = None
    comment = ""
    for part in dotted.split("."):
        if cls is None:
            return None, ""
        hint = declared_hints(cls).get(part)
        comment = _field_comments(cls).get(part, "") if is_dataclass(cls) else ""
        cls = hint if is_dataclass(hint) else None
    return hint, comment


def _words(hint: Any, limit: Limit | None) -> str:
    from regx.config.build import _describe  # imports Hydra: only for `regx list GROUP`

    if typing.get_origin(hint) is Annotated:
        return _words(typing.get_args(hint)[0], limit)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_words(a, limit) for a in typing.get_args(hint))
    if isinstance(limit, Range) and hint in (int, float):
        return f"{_describe(hint)} {limit.text()}"
    if isinstance(limit, Choice) and hint is not type(None):
        return limit.text()
    return _describe(hint)


def type_text(hint: Any, limit: Limit | None = None) -> str:
    """How `regx list` names an annotation: `_describe`'s words (those of the config check)
    with the declared range or choices (those the constructor checks): `a number in (0, ∞)`,
    `an integer ≥ 1 or null`, `one of batch, elem`. `limit` is one declared apart from the
    annotation (a settings field's)."""
    if hint is None:
        return ""
    if hint is Any:
        return "any value"
    limit = limit or limit_of(hint)
    text = _words(hint, limit)
    return f"{text} ({limit.note})" if isinstance(limit, Range) and limit.note else text


def option_class(group: str, option: Option) -> Any:
    path = option.target or SCHEMAS.get(group, "")
    return _import(path) if path else None


def option_doc(cls: Any) -> str:
    """The first sentence of the class's own docstring, else of its module's (a regx method
    is one module whose docstring states its math); a base class's would describe the base,
    and a dataclass's generated one only repeats its fields."""
    if cls is None or is_dataclass(cls):
        return ""
    module = inspect.getmodule(cls)
    for doc in (cls.__dict__.get("__doc__"), module.__doc__ if module else None):
        if doc and doc.strip():
            return _first_sentence(inspect.cleandoc(doc).split("\n\n")[0].splitlines())
    return ""


def param_info(cls: Any, option: Option, param: Param, group: str = "") -> tuple[str, str]:
    """(type, description) of a parameter: the annotation and its limit in words, and the
    YAML comment (else the settings field's comment)."""
    key = param.key
    if cls is None:
        return "", param.comment
    if option.target_key:
        if not key.startswith(option.target_key + "."):
            return "", param.comment
        key = key[len(option.target_key) + 1 :]
    hint, field_comment = _hint(cls, key)
    limits = _import(SCHEMA_LIMITS[group]) if group in SCHEMA_LIMITS and not option.target else {}
    return type_text(hint, (limits or {}).get(key)), param.comment or field_comment


# -- printing ----------------------------------------------------------------------------------
def show_default(value: Any) -> str:
    """A default as the YAML has it: null, true, [0.5, 0.75], ??? (required)."""
    if value == "???":
        return "??? (required)"
    if isinstance(value, str):
        return value
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    return text.removesuffix("...").strip()  # a scalar's document-end marker


def _table(*columns: str) -> Table:
    table = Table()
    for i, name in enumerate(columns):
        # fold long values (paths, interpolations) instead of cutting them with "…"
        table.add_column(name, style="bold cyan" if i == 0 else None, overflow="fold")
    return table


def _overview(console: Console, cat: dict[str, dict[str, Option]]) -> None:
    for name, options in cat.items():
        console.print(name, style="bold", markup=False, highlight=False)
        table = _table("option", "class", "what it is")
        for option in options.values():
            cells = (option.name, option.target.rpartition(".")[2], option.summary)
            table.add_row(*(Text(c) for c in cells))
        console.print(table)
    console.print("regx list GROUP: each option's parameters with type, default and description")


def _print_option(console: Console, group: str, option: Option) -> None:
    """`group=option  (Class)  builds on: …` and the class's (or YAML's) line, then its
    parameters."""
    cls = option_class(group, option)
    head = f"{group}={option.name}"
    if cls is not None and option.target:
        head += f"  ({option.target.rpartition('.')[2]})"
    if option.bases:
        head += f"  builds on: {', '.join(option.bases)}"
    console.print(head, style="bold", markup=False, highlight=False)
    doc = option_doc(cls) or option.summary
    if doc:
        console.print(doc, markup=False, highlight=False)
    table = _table("parameter", "type", "default", "description")
    prefix = f"{option.package}." if option.package else ""
    if not option.params:
        table.add_row("(no parameters)", "", "", "")
    for param in option.params:
        kind, text = param_info(cls, option, param, group)
        cells = (prefix + param.key, kind or "—", show_default(param.default), text or "—")
        table.add_row(*(Text(c) for c in cells))
    console.print(table)


def print_catalog(group: str | None = None) -> int:
    console = Console()
    cat = catalog()
    if group is None:
        _overview(console, cat)
        return 0
    if group not in cat:
        from regx.config.suggest import closest

        meant = closest(group, cat)
        hint = f"did you mean {meant}? " if meant else ""
        # one line, as every user error (rich would wrap it at the terminal's width)
        print(f"error: no config group '{group}'; {hint}groups: {', '.join(cat)}", file=sys.stderr)
        return 2
    for option in cat[group].values():
        _print_option(console, group, option)
    return 0
