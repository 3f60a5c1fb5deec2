"""The compiler's stages in order, for a list of decorated functions: type (frontend/builder.py), then lower to
LLVM IR (lower/function.py). driver.py adds emitting, caching and files; kernel_loop.py uses the stages for
the programs' kernel-loop form."""
from __future__ import annotations

from typing import Iterable

from ..lang.decorators import BpfFunction
from . import typed_ir as ir
from pybpfuring.compiler.frontend.builder import ModuleBuilder
from pybpfuring.compiler.lower.function import ModuleLowering
from .targets import get_target


def type_functions(functions: Iterable[BpfFunction], target: str = "op_bpf") -> ir.TypedModule:
    t = get_target(target)
    mb = ModuleBuilder(t)
    for fn in functions:
        if fn.kind == "function":
            continue
        mb.function(fn)
    return mb.module(license_of(functions))


def license_of(functions: Iterable[BpfFunction]) -> str:
    for fn in functions:
        lic = fn.globals.get("LICENSE")
        if isinstance(lic, str):
            return lic
    return "GPL"


def lower(typed: ir.TypedModule) -> str:
    return str(ModuleLowering(typed, get_target(typed.target)).lower())
