"""Walking the typed IR: every node under a statement, expression or place."""
from __future__ import annotations

from dataclasses import fields, is_dataclass
from typing import Iterator

from pybpfuring.compiler import typed_ir as ir


def walk(node: object) -> Iterator[object]:
    """Every typed-IR node under `node` (statements, expressions, places), depth first."""
    if isinstance(node, list):
        for item in node:
            yield from walk(item)
        return
    if not is_dataclass(node) or isinstance(node, (ir.Local, ir.MapInfo, type)):
        return
    yield node
    for f in fields(node):
        if f.name not in ("loc", "type"):
            v = getattr(node, f.name)
            if isinstance(v, dict):
                v = list(v.values())
            yield from walk(v)
