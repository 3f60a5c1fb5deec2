"""Module-level global variables: `ReadOnly(T)` (libbpf's `const volatile` in `.rodata`) and
`Global(T)` (a mutable global in `.bss`, or `.data` when it has a non-zero initial value).

    sq_entries = ReadOnly(u32)          # set by the loader before load; a constant to the verifier
    reqs_to_run = Global(i32, 1000)     # shared by every run of the program, readable from user space

Programs read both by name. Writing a `Global` needs a `global` statement, as in Python; a
`ReadOnly` cannot be written by programs (the kernel freezes `.rodata` before the first run, and
the verifier treats its values as constants - which is what `get_region`'s size needs).
From user space, once a backend has loaded the object, `decl.value` reads (and for `Global`,
writes) the live value.
"""
from __future__ import annotations

from typing import Any, Callable

from .types import BoolType, IntType, resolve_type


class GlobalDecl:
    """A global variable declaration; `section` is where the compiler puts it."""

    read_only = False

    def __init__(self, value_type: Any, init: int = 0):
        t = resolve_type(value_type)
        if not isinstance(t, (IntType, BoolType)):
            raise TypeError(f"{type(self).__name__}() takes an integer type (u8..u64, i8..i64, bool), "
                            f"not {value_type!r}")
        if not isinstance(init, int):
            raise TypeError(f"the initial value must be an int, not {init!r}")
        lo, hi = (0, 1) if isinstance(t, BoolType) else (t.min, t.max)
        if not lo <= init <= hi:
            raise TypeError(f"initial value {init} does not fit in {t.name}")
        self.type = t
        self.init = init
        self._get: Callable[[], int] | None = None
        self._set: Callable[[int], None] | None = None

    @property
    def section(self) -> str:
        """The ELF section the variable lives in: `.rodata`, `.data` (a nonzero init) or `.bss`."""
        if self.read_only:
            return ".rodata"
        return ".data" if self.init else ".bss"

    def bind(self, get: Callable[[], int] | None, set_: Callable[[int], None] | None = None) -> None:
        """Attach (or with None, detach) the live variable of a loaded object."""
        self._get, self._set = get, set_

    @property
    def value(self) -> int:
        """The live value while a loaded object binds this global; RuntimeError before."""
        if self._get is None:
            raise RuntimeError("this global is not loaded yet: load the program's object first")
        return self._get()

    @value.setter
    def value(self, v: int) -> None:
        if self._set is None:
            what = "read-only to user space after load (set it before load)" if self.read_only \
                else "not loaded yet"
            raise RuntimeError(f"this global is {what}")
        self._set(v)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.type.name}, {self.init})"


class ReadOnly(GlobalDecl):
    """`const volatile T name` in `.rodata`: set before load, constant to the verifier."""

    read_only = True


class Global(GlobalDecl):
    """A mutable global (`T name` in `.bss`/`.data`); programs write it after `global name`."""


__all__ = ["GlobalDecl", "ReadOnly", "Global"]
