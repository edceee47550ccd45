"""The package's import structure: layers import only downward, and nothing imports in a
circle. Read from the source with `ast` (every import, also those inside functions)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "regx"

# Each layer may import the layers listed after it (and itself), never one before it.
LAYERS: list[tuple[str, ...]] = [
    ("__main__", "cli", "__init__"),  # the package's face: `regx.load_run`
    ("app",),
    ("config",),
    ("engine",),
    ("data", "models", "aug", "losses", "splits", "metrics", "report"),
    ("keys", "params", "errors", "processes", "progress", "console_log"),
]
COMPONENTS = 4  # the layer of components: they may not import each other, but for SIDEWAYS
# The components that may use another component (data types, metrics in figures).
SIDEWAYS = {
    "splits": {"data"},
    "report": {"metrics"},
    "aug": set(),
    "metrics": set(),
}


def layer_of(part: str) -> int:
    for i, names in enumerate(LAYERS):
        if part in names:
            return i
    raise AssertionError(f"regx.{part} is in no layer of tests/test_layers.py: add it")


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every regx module `path` imports (absolute names), at any depth of the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "regx"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] != "regx":
                continue
            found.add(node.module)
            # `from regx.engine import outputs` imports the module regx.engine.outputs
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                if module_path(candidate) is not None:
                    found.add(candidate)
    return found


def module_path(name: str) -> Path | None:
    base = PACKAGE.parent.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        graph[module_name(path)] = {m for m in imports_of(path) if module_path(m) is not None}
    return graph


def top_part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for module, targets in sorted(graph.items()):
        src = top_part(module)
        for target in sorted(targets):
            dst = top_part(target)
            if dst == src or target == "regx":
                continue
            src_layer, dst_layer = layer_of(src), layer_of(dst)
            sideways = src_layer != COMPONENTS or dst in SIDEWAYS.get(src, set())
            if dst_layer < src_layer or (dst_layer == src_layer and not sideways):
                bad.append(f"{module} imports {target}")
    return bad


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected set of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


def test_layers_import_only_downward() -> None:
    assert layer_violations(import_graph()) == []


def test_the_checks_catch_a_config_import_in_the_engine_and_a_cycle() -> None:
    graph = import_graph()
    graph["regx.engine.trainer"] = graph["regx.engine.trainer"] | {"regx.config"}
    assert "regx.engine.trainer imports regx.config" in layer_violations(graph)
    graph["regx.data.types"] = graph["regx.data.types"] | {"regx.data.base"}
    assert any({"regx.data.base", "regx.data.types"} <= set(c) for c in cycles(graph))


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: module_name(p))
def test_small_pieces(path: Path) -> None:
    """Files under 400 lines, functions within 60."""
    text = path.read_text()
    assert len(text.splitlines()) < 400, f"{path.name} has {len(text.splitlines())} lines"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            assert length <= 60, f"{module_name(path)}.{node.name} has {length} lines"
