"""The compile cache key: everything the ELF of a set of programs depends on, hashed.

A cached object is reused only if nothing that went into it changed (docs/security.md, "Compile
cache"):
- the compiler itself: the text of every source file of `pybpfuring.compiler` and `pybpfuring.lang`,
  the llvmlite version and the LLVM version it embeds;
- the target and the programs' names;
- every source file a program's code comes from: the programs' files, the files of every
  `@bpf_function` they reach (directly or through a module, `shared.helper`), and of every module and
  struct class they name;
- the value of every global they name: maps (type, key and value layout, size), `Global`/`ReadOnly`
  declarations, structs' layouts and plain constants, so a size computed at import time counts too.
"""
from __future__ import annotations

import ast
import functools
import hashlib
import inspect
import textwrap
import types
from pathlib import Path

import llvmlite
import llvmlite.binding as llvm
from typing import Any, Iterable

from ..lang.decorators import BpfFunction
from ..lang.types import StructType, ValueType

_PACKAGE = Path(__file__).resolve().parents[1]
# The compiler's behaviour lives in these folders (the language's types and the compiler stages).
COMPILER_SOURCES = ("abi", "compiler", "lang")
_MAX_DEPTH = 6


@functools.lru_cache(maxsize=1)
def compiler_fingerprint() -> str:
    """SHA-256 of the compiler's and language's sources, llvmlite's version and LLVM's."""
    h = hashlib.sha256(f"llvmlite {llvmlite.__version__} llvm {llvm.llvm_version_info}\0".encode())
    for folder in COMPILER_SOURCES:
        for path in sorted((_PACKAGE / folder).rglob("*.py")):
            h.update(str(path.relative_to(_PACKAGE)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


class _Hasher:
    def __init__(self) -> None:
        self.h = hashlib.sha256()
        self.files: set[str] = set()
        self.seen_functions: set[int] = set()
        self.pending: list[BpfFunction] = []

    def add(self, *parts: str) -> None:
        for part in parts:
            self.h.update(part.encode("utf-8", "surrogateescape") + b"\0")

    def file(self, path: str | None) -> None:
        """Hash a source file's content once (raises OSError if it cannot be read)."""
        if not path or path in self.files:
            return
        self.files.add(path)
        self.add("file", path, hashlib.sha256(Path(path).read_bytes()).hexdigest())

    def function(self, fn: BpfFunction) -> None:
        if id(fn) not in self.seen_functions:
            self.seen_functions.add(id(fn))
            self.pending.append(fn)

    def describe(self, value: Any, depth: int = 0) -> str:
        """A stable description of a global a program names (files it comes from are hashed too)."""
        if depth > _MAX_DEPTH:
            return "..."
        if value is None or isinstance(value, (bool, int, float, str, bytes)):
            return f"{type(value).__name__}:{value!r}"
        if isinstance(value, BpfFunction):
            self.function(value)
            return f"bpf_function:{value.kind}:{value.name}:{value.py_func.__code__.co_filename}"
        if isinstance(value, types.ModuleType):
            self.module(value)
            return f"module:{value.__name__}"
        if isinstance(value, StructType):
            fields = ",".join(f"{f.name}@{f.offset}:{self.describe(f.type, depth + 1)}:{f.readonly}"
                              for f in value.fields.values())
            return f"struct:{value.name}:{value.size}:{value.align}:{fields}"
        if isinstance(value, ValueType):
            return f"type:{value!r}:{getattr(value, 'size', '')}:{self.describe(vars(value), depth + 1)}"
        if isinstance(value, type):
            self.file(_source_file(value))
            layout = getattr(value, "__bpf_struct__", None)
            extra = self.describe(layout, depth + 1) if layout is not None else ""
            return f"class:{value.__module__}.{value.__qualname__}:{extra}"
        if isinstance(value, (tuple, list, frozenset, set)):
            items = sorted(map(repr, value)) if isinstance(value, (set, frozenset)) else value
            return "[" + ",".join(self.describe(v, depth + 1) for v in items) + "]"
        if isinstance(value, dict):
            return "{" + ",".join(f"{k!r}:{self.describe(v, depth + 1)}" for k, v in value.items()
                                  if not str(k).startswith("_")) + "}"
        if hasattr(value, "__dict__") and not callable(value):
            # Maps, Global/ReadOnly declarations ...: their public state (not live bindings).
            return f"{type(value).__module__}.{type(value).__qualname__}{self.describe(vars(value), depth + 1)}"
        return f"{type(value).__module__}.{type(value).__qualname__}"

    def module(self, module: types.ModuleType) -> None:
        """A module a program names (`shared.helper`): its file, and every @bpf_function in it."""
        path = getattr(module, "__file__", None)
        if path in self.files or not path:
            return
        self.file(path)
        for value in list(vars(module).values()):
            if isinstance(value, BpfFunction):
                self.function(value)

    def walk(self) -> None:
        while self.pending:
            fn = self.pending.pop()
            code = fn.py_func.__code__
            self.add("fn", fn.kind, fn.name, str(fn.inline), str(getattr(fn, "verified_alone", False)),
                     str(getattr(fn, "program_body", False)), code.co_filename)
            self.file(code.co_filename)
            for name in sorted(_names_used(fn)):
                if name in fn.globals:
                    self.add("global", name, self.describe(fn.globals[name]))


def _source_file(cls: type) -> str | None:
    try:
        return inspect.getsourcefile(cls)
    except (TypeError, OSError):
        return None


def _names_used(fn: BpfFunction) -> set[str]:
    """Every name the function's code and annotations mention (the compiler resolves these)."""
    names: set[str] = set()
    stack = [fn.py_func.__code__]
    while stack:
        code = stack.pop()
        names.update(code.co_names)
        stack.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn.py_func)))
    except (OSError, TypeError, SyntaxError):
        return names
    names.update(node.id for node in ast.walk(tree) if isinstance(node, ast.Name))
    return names


def source_files(functions: Iterable[BpfFunction]) -> list[str]:
    """Every source file the programs' compiled code comes from (the inputs of a compile)."""
    hasher = _Hasher()
    for fn in functions:
        hasher.function(fn)
    try:
        hasher.walk()
    except OSError:
        pass
    return sorted(hasher.files)


def compile_key(functions: Iterable[BpfFunction], target: str) -> str:
    """The cache key of compiling `functions` for `target`, or "" if a source file cannot be read
    (then nothing is cached: a key that misses an input would return stale objects)."""
    hasher = _Hasher()
    functions = list(functions)
    hasher.add("pybpfuring-compile", compiler_fingerprint(), target,
               ",".join(fn.name for fn in functions))
    for fn in functions:
        hasher.function(fn)
    try:
        hasher.walk()
    except OSError:
        return ""
    return hasher.h.hexdigest()

