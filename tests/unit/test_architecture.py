"""The package's imports follow docs/architecture.md: layers that import only downward, no import cycle,
and no import inside a function (except an optional dependency). Read from the source with `ast`, so
a violation fails here, naming the file and line, before anyone notices it as an import-order bug.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "pybpfuring"

# Bottom to top (docs/architecture.md). A module belongs to the layer of its longest matching
# prefix; it may import its own layer and the ones below it.
LAYERS: list[tuple[str, ...]] = [
    ("pybpfuring.errors",),
    ("pybpfuring.outputs", "pybpfuring.abi"),
    ("pybpfuring.cache",),
    ("pybpfuring.vm",),
    ("pybpfuring.lang",),
    ("pybpfuring.loader",),
    ("pybpfuring.compiler",),
    ("pybpfuring.uring", "pybpfuring.runtime.engine"),
    ("pybpfuring.filters",),
    ("pybpfuring.runtime.machine",),
    ("pybpfuring.runtime.backends",),
    ("pybpfuring.runtime.aio",),
    ("pybpfuring.runtime.model", "pybpfuring.runtime.probe", "pybpfuring.runtime"),
    ("pybpfuring.trace",),
    ("pybpfuring.cli",),
    ("pybpfuring", "pybpfuring.__main__"),
]

# Imports that may stay inside a function, each with its reason. Only optional dependencies.
OPTIONAL_INSIDE_FUNCTIONS: dict[str, str] = {}


@dataclass(frozen=True)
class Import:
    source: str        # the importing module
    target: str        # the imported pybpfuring module, or the third-party/stdlib name
    line: int
    in_function: bool
    type_only: bool    # under `if TYPE_CHECKING:` (annotations; never runs)


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


MODULES = _modules()


def _resolve(source: str, is_package: bool, node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:
            parts = source.split(".") if is_package else source.split(".")[:-1]
            parts = parts[: len(parts) - (node.level - 1)]
            base = ".".join(parts + ([node.module] if node.module else []))
        # `from pkg import submodule` imports the submodule; `from mod import name` the module.
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
    out = []
    for name in names:
        while name.startswith("pybpfuring") and name not in MODULES and "." in name:
            name = name.rsplit(".", 1)[0]
        out.append(name)
    return out


def _imports_of(module: str, path: Path) -> list[Import]:
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    found: list[Import] = []

    def walk(node: ast.AST, in_function: bool, type_only: bool) -> None:
        for child in ast.iter_child_nodes(node):
            func = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            tc = type_only or (isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test))
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.extend(Import(module, t, child.lineno, func, tc)
                             for t in _resolve(module, is_package, child))
            walk(child, func, tc)
    walk(tree, False, False)
    return found


ALL_IMPORTS = [imp for m, p in sorted(MODULES.items()) for imp in _imports_of(m, p)]
OURS = [i for i in ALL_IMPORTS if i.target.startswith("pybpfuring") and i.target != i.source]


def _place(module: str) -> tuple[int, str]:
    """(layer, the LAYERS prefix the module falls under); (-1, "") if none."""
    best = (-1, "")
    for i, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best[1]):
                best = (i, prefix)
    return best


def layer_of(module: str) -> int:
    return _place(module)[0]


def _where(imp: Import) -> str:
    return f"{MODULES[imp.source].relative_to(PACKAGE.parent)}:{imp.line} imports {imp.target}"


def test_every_module_has_a_layer() -> None:
    assert [m for m in MODULES if layer_of(m) < 0] == []


def test_imports_only_go_down() -> None:
    upward = [_where(i) for i in OURS if layer_of(i.target) > layer_of(i.source)]
    assert upward == [], "imports into a higher layer:\n" + "\n".join(upward)


def test_no_import_inside_a_function() -> None:
    inside = [_where(i) for i in ALL_IMPORTS
              if i.in_function and i.target.split(".")[0] not in OPTIONAL_INSIDE_FUNCTIONS]
    assert inside == [], "imports inside functions:\n" + "\n".join(inside)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def runtime_edges() -> dict[str, set[str]]:
    """What importing each module runs: its imports, and each imported module's parent packages
    (importing a.b.c runs a/b/__init__.py), the top-level face `pybpfuring` aside (it is imported
    first by everything and imports only downward)."""
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    for imp in OURS:
        if imp.type_only:
            continue
        parts = imp.target.split(".")
        for depth in range(2, len(parts) + 1):
            target = ".".join(parts[:depth])
            if target != imp.source and not imp.source.startswith(target + "."):
                edges[imp.source].add(target)
    return edges


def test_no_import_cycle() -> None:
    assert _cycles(runtime_edges()) == []


@pytest.mark.parametrize("layer", range(len(LAYERS)))
def test_layers_listed_bottom_up_are_all_used(layer: int) -> None:
    # A layer nobody is in is a stale line of the table (and of docs/architecture.md).
    assert any(layer_of(m) == layer for m in MODULES), LAYERS[layer]


def layer_diagram() -> str:
    """The layers bottom-up with what each imports (docs/architecture.md shows this output)."""
    lines = []
    for i, prefixes in reversed(list(enumerate(LAYERS))):
        below = sorted({_place(imp.target)[1] for imp in OURS if not imp.type_only
                        and layer_of(imp.source) == i and layer_of(imp.target) < i})
        names = ", ".join(p.removeprefix("pybpfuring.") for p in prefixes)
        lines.append(f"{i:2d} {names:40s} -> {', '.join(b.removeprefix('pybpfuring.') for b in below) or '-'}")
    return "\n".join(lines)


def test_docs_show_the_layers_as_the_imports_draw_them() -> None:
    doc = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    block = doc.split("## The layers", 1)[1].split("```\n", 2)[1]
    assert block.rstrip() == layer_diagram(), "regenerate with `python3 tests/unit/test_architecture.py`"


if __name__ == "__main__":
    print(layer_diagram())
