"""The value types of the language: fixed-width integers, bool, structs and fixed-size arrays.

These objects are what programs write in annotations and casts (`x: u32`, `u8(y)`); the compiler reads
their layout. Called from plain Python they behave like C casts (wrap-around), which is what the
reference evaluator and user-space code need to agree with compiled code.
"""
from __future__ import annotations

import ctypes
import sys
from dataclasses import dataclass, field
from typing import Any


class ValueType:
    """A type a BPF value can have. `size` and `align` are in bytes, as in C on BPF (LP64)."""

    name: str
    size: int
    align: int

    def __repr__(self) -> str:
        return self.name


class IntType(ValueType):
    """u8..u64, i8..i64. Calling it converts like a C cast: `u8(300) == 44`, `i8(200) == -56`."""

    def __init__(self, name: str, bits: int, signed: bool):
        self.name = name
        self.bits = bits
        self.signed = signed
        self.size = bits // 8
        self.align = self.size

    @property
    def min(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def max(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    def wrap(self, value: int) -> int:
        value &= (1 << self.bits) - 1
        if self.signed and value >> (self.bits - 1):
            value -= 1 << self.bits
        return value

    def __call__(self, value: int | bool = 0) -> int:
        return self.wrap(int(value))


class BoolType(ValueType):
    """`bool`: stored as one byte, 0 or 1; promoted to i32 in arithmetic, as C's _Bool."""

    def __init__(self) -> None:
        self.name = "bool"
        self.size = 1
        self.align = 1
        self.bits = 8
        self.signed = False


u8 = IntType("u8", 8, False)
u16 = IntType("u16", 16, False)
u32 = IntType("u32", 32, False)
u64 = IntType("u64", 64, False)
i8 = IntType("i8", 8, True)
i16 = IntType("i16", 16, True)
i32 = IntType("i32", 32, True)
i64 = IntType("i64", 64, True)
BOOL = BoolType()
INT_TYPES: dict[str, IntType] = {t.name: t for t in (u8, u16, u32, u64, i8, i16, i32, i64)}


class ArrayType(ValueType):
    """A fixed-size array `Array[elem, n]`; a value type, laid out as in C."""

    def __init__(self, elem: ValueType, length: int):
        if length <= 0:
            raise TypeError(f"array length must be positive, got {length}")
        self.elem = elem
        self.length = length
        self.size = elem.size * length
        self.align = elem.align
        self.name = f"Array[{elem.name}, {length}]"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ArrayType) and other.elem == self.elem and other.length == self.length

    def __hash__(self) -> int:
        return hash((self.elem, self.length))


class _ArrayFactory:
    """`Array[u8, 16]` in annotations and as a constructor of zeroed locals."""

    def __getitem__(self, item: tuple[ValueType, int]) -> ArrayType:
        elem, length = item
        if isinstance(elem, type) and hasattr(elem, "__bpf_struct__"):
            elem = elem.__bpf_struct__
        return ArrayType(elem, length)


Array = _ArrayFactory()


@dataclass(frozen=True)
class Field:
    name: str
    type: ValueType
    offset: int
    readonly: bool = False


@dataclass(eq=False)
class StructType(ValueType):
    """A C struct: named fields at C offsets. `aliases` are extra names for union members."""

    name: str
    fields: dict[str, Field] = field(default_factory=dict)
    size: int = 0
    align: int = 1
    # Where the struct was declared: for BTF and error messages.
    module: str = ""

    def __repr__(self) -> str:
        return self.name

    def __hash__(self) -> int:
        return id(self)


def layout(name: str, members: list[tuple[str, ValueType]], *, module: str = "",
           readonly: frozenset[str] = frozenset()) -> StructType:
    """Lay members out with C alignment rules."""
    st = StructType(name, module=module)
    offset = 0
    for fname, ftype in members:
        offset = (offset + ftype.align - 1) // ftype.align * ftype.align
        st.fields[fname] = Field(fname, ftype, offset, fname in readonly)
        offset += ftype.size
        st.align = max(st.align, ftype.align)
    st.size = (offset + st.align - 1) // st.align * st.align
    return st


def resolve_type(obj: Any) -> ValueType | None:
    """The ValueType an annotation or constructor object names, or None."""
    if isinstance(obj, ValueType):
        return obj
    if obj is bool:
        return BOOL
    return getattr(obj, "__bpf_struct__", None)


def struct(cls: type) -> type:
    """Declare a struct from an annotated class: `@struct class Pair: a: u32; b: u64`.

    The class stays usable from Python as a ctypes-like layout description; the compiler reads
    `cls.__bpf_struct__`.
    """
    members: list[tuple[str, ValueType]] = []
    for fname, ann in cls.__dict__.get("__annotations__", {}).items():
        if isinstance(ann, str):  # `from __future__ import annotations` keeps them as text
            ann = _eval_annotation(cls, ann)
        ftype = resolve_type(ann)
        if ftype is None:
            raise TypeError(f"struct {cls.__name__}: field {fname!r} has type {ann!r}, "
                            "which is not an integer, bool, struct or Array[...] type")
        members.append((fname, ftype))
    cls.__bpf_struct__ = layout(cls.__name__, members, module=cls.__module__)
    cls.ctype = ctype_of(cls.__bpf_struct__)
    return cls


def ctype_of(t: ValueType) -> Any:
    """The ctypes twin of a language type (`Args.ctype`): user space builds the memory a program
    reads with it (`a = Args.ctype(fd=3)`, `ring.user_memory(Args.ctype)`), at the same offsets
    (C layout on both sides; checked)."""
    if isinstance(t, BoolType):
        return ctypes.c_bool
    if isinstance(t, IntType):
        return getattr(ctypes, f"c_{'int' if t.signed else 'uint'}{t.bits}")
    if isinstance(t, ArrayType):
        return ctype_of(t.elem) * t.length
    if isinstance(t, StructType):
        cached = _CTYPES.get(id(t))
        if cached is not None:
            return cached
        plain: dict[int, Field] = {}
        for f in t.fields.values():      # declared fields first; union aliases come after them
            plain.setdefault(f.offset, f)
        members = [(f.name, ctype_of(f.type)) for f in sorted(plain.values(), key=lambda f: f.offset)]
        ct = type(t.name, (ctypes.Structure,), {"_fields_": members})
        for f in plain.values():
            if getattr(ct, f.name).offset != f.offset:
                raise TypeError(f"struct {t.name}: ctypes puts {f.name} at "
                                f"{getattr(ct, f.name).offset}, the language at {f.offset}")
        if ctypes.sizeof(ct) != t.size:
            raise TypeError(f"struct {t.name}: ctypes size {ctypes.sizeof(ct)} != {t.size}")
        _CTYPES[id(t)] = ct
        return ct
    raise TypeError(f"no ctypes type for {t!r}")


_CTYPES: dict[int, Any] = {}


def _eval_annotation(cls: type, text: str) -> Any:
    """The object a string annotation names, in the class's module (None if it names nothing)."""
    module = sys.modules.get(cls.__module__)
    namespace = dict(vars(module)) if module is not None else {}
    try:
        return eval(text, namespace, dict(vars(cls)))  # noqa: S307 - the user's own annotation
    except Exception:
        return None


def struct_aliases(st: StructType, aliases: dict[str, tuple[str, ValueType]]) -> StructType:
    """Add union-member names (`timeout_flags` for `rw_flags`...) at an existing field's offset."""
    for alias, (target, ftype) in aliases.items():
        st.fields[alias] = Field(alias, ftype, st.fields[target].offset)
    return st
