"""Types named as a program's author writes them, for error messages: `Sqe`, `an integer (u32)`."""
from __future__ import annotations

from pybpfuring.lang.structs import BUILTIN_STRUCTS
from pybpfuring.lang.types import ArrayType, BoolType, IntType, StructType
from pybpfuring.compiler import typed_ir as ir

_PY_STRUCT_NAMES = {id(c.__bpf_struct__): n for n, c in BUILTIN_STRUCTS.items()}  # type: ignore[attr-defined]


def tname(t: object) -> str:
    """A type as the program's author wrote it: `Sqe`, not the C name `io_uring_sqe`."""
    if isinstance(t, ir.RefType):
        return tname(t.pointee)
    if isinstance(t, StructType):
        return _PY_STRUCT_NAMES.get(id(t), t.name)
    if isinstance(t, ArrayType):
        return f"Array[{tname(t.elem)}, {t.length}]"
    return getattr(t, "name", "nothing")


def a_type(t: object) -> str:
    """`an integer (u32)`, `a Sqe`: what a value is, for error messages."""
    if isinstance(t, (IntType, BoolType)):
        return f"an integer ({tname(t)})"
    if t is None:
        return "nothing"
    name = tname(t)
    return f"{'an' if name[:1] in 'AEIOU' else 'a'} {name}"
