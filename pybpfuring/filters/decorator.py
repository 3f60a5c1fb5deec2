"""`@iouring_filter(opcode, ...)`: a Python function that is both a filter's oracle and its source."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from types import FunctionType
from typing import Callable

from ..errors import ArgumentError, CompileError, SourceLocation
from . import cbpf as C
from .backend import generate
from .ctx import KERNEL_PDU_SIZES, UNION_FOR_OPCODE, FilterCtx
from .frontend import lower_function
from .ir import FieldRead
from .peephole import assemble, optimize

OPCODE_LIMIT = 256          # opcodes are a u8 in the SQE; the kernel checks against its IORING_OP_LAST


@dataclass(frozen=True)
class CompiledFilter:
    """The cBPF program of a filter, with the Python line of each instruction."""

    name: str
    program: tuple[C.Insn, ...]
    locs: tuple[SourceLocation | None, ...]
    unions: frozenset[str]             # which ctx unions the function reads (socket/open/connect)
    def_loc: SourceLocation
    unoptimized_len: int

    def encode(self) -> bytes:
        """The program as the kernel takes it: 8 bytes per `struct sock_filter` instruction."""
        return C.encode(list(self.program))

    def disasm(self) -> str:
        """A listing of the cBPF program, each instruction with its Python file:line."""
        lines = [f"{loc.file.rsplit('/', 1)[-1]}:{loc.line}" if loc else None for loc in self.locs]
        return C.disasm(list(self.program), lines)

    def loc_of(self, pc: int) -> SourceLocation:
        """The Python source location of instruction `pc` (the filter's `def` line if it has none)."""
        return (self.locs[pc] if 0 <= pc < len(self.locs) else None) or self.def_loc


def compile_filter(fn: FunctionType) -> CompiledFilter:
    """Python function -> checked cBPF program (CompileError, located, for anything outside the
    language or beyond what the kernel accepts)."""
    name, body, def_loc = lower_function(fn)
    ops = generate(body, def_loc)
    n_before = sum(op.kind != "label" for op in ops)
    prog, locs = assemble(optimize(ops), def_loc)
    bad = C.check(prog)
    if bad is not None:      # a back-end bug: name the Python line it came from
        pc, why = bad
        raise CompileError(f"internal compiler error: instruction {pc} would be refused by the "
                           f"kernel ({why})", locs[min(pc, len(locs) - 1)] or def_loc)
    unions = frozenset(f.union for f in _fields_read(body) if f.union)
    return CompiledFilter(name, tuple(prog), tuple(locs), unions, def_loc, n_before)


def _fields_read(node) -> list:
    out = []
    if isinstance(node, FieldRead):
        return [node.field]
    if isinstance(node, list | tuple):
        for x in node:
            out += _fields_read(x)
        return out
    if hasattr(node, "__dataclass_fields__"):
        for k in node.__dataclass_fields__:
            if k != "loc":
                out += _fields_read(getattr(node, k))
    return out


class IouringFilter:
    """A filter: call it with a FilterCtx to run it as Python; `.compiled` is its cBPF program."""

    def __init__(self, fn: FunctionType, opcodes: tuple[int, ...]):
        self.fn = fn
        self.opcodes = opcodes
        self._compiled: CompiledFilter | None = None
        functools.update_wrapper(self, fn)

    def __call__(self, ctx: FilterCtx) -> bool:
        return bool(self.fn(ctx))

    @property
    def compiled(self) -> CompiledFilter:
        """The filter's checked cBPF program, compiled on first use (CompileError if it cannot be)."""
        if self._compiled is None:
            self._compiled = compile_filter(self.fn)
        return self._compiled

    def pdu_size(self, opcode: int) -> int:
        """The per-opcode data size to declare: the kernel's size if the filter reads a union, else 0
        (0 is accepted for every opcode; a larger size is refused where the kernel gives less)."""
        union = UNION_FOR_OPCODE.get(opcode)
        if not self.compiled.unions:
            return 0
        if union is None or union not in self.compiled.unions or len(self.compiled.unions) > 1:
            wanted = ", ".join(sorted(self.compiled.unions))
            raise CompileError(f"filter {self.fn.__name__!r} reads ctx.{wanted}, which "
                               f"opcode {opcode} does not fill", self.compiled.def_loc,
                               "read the group of fields that belongs to the filter's opcode")
        return KERNEL_PDU_SIZES[opcode]

    def __repr__(self) -> str:
        return f"<iouring_filter {self.fn.__qualname__} opcodes={list(self.opcodes)}>"


def iouring_filter(*opcodes: int) -> Callable[[FunctionType], IouringFilter]:
    """Decorate `def f(ctx: FilterCtx) -> bool` as the filter of one or more io_uring opcodes."""
    if not opcodes:
        raise ArgumentError("iouring_filter needs at least one opcode, e.g. "
                            "@iouring_filter(IORING_OP_OPENAT)")
    for op in opcodes:
        if not isinstance(op, int) or isinstance(op, bool) or not 0 <= op < OPCODE_LIMIT:
            raise ArgumentError(f"iouring_filter: opcode must be an int in 0..{OPCODE_LIMIT - 1}, "
                                f"not {op!r}")

    def wrap(fn: FunctionType) -> IouringFilter:
        if not isinstance(fn, FunctionType):
            raise ArgumentError(f"@iouring_filter decorates a function, not {type(fn).__name__}")
        return IouringFilter(fn, tuple(opcodes))
    return wrap
