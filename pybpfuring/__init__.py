"""pybpfuring: io_uring BPF programs as decorated Python functions, compiled to BPF ELF with llvmlite.

    from pybpfuring import iouring_program, Ctx, Sqe, ArrayMap, u64, OK, WAIT
"""
from .errors import BackendFallbackWarning, CompileError, ProgramFault, SourceLocation, VerifierError
from .lang import (OK, WAIT, Array, ArrayMap, Cqe, Ctx, HashMap, IoVec, Sqe, Timespec, bpf_function,
                   i8, i16, i32, i64, iouring_program, loop_step, struct, u8, u16, u32, u64)

from .filters import FilterCtx, iouring_filter

__version__ = "0.1.0"


def restrict_task(filters, deny_rest: bool = True, no_new_privs: bool = False) -> None:
    """Apply @iouring_filter functions to this task and its children (docs/filters.md)."""
    from .filters.kernel import restrict_task as _restrict_task
    _restrict_task(filters, deny_rest=deny_rest, no_new_privs=no_new_privs)


def compile_module(path: str, target: str = "op_bpf") -> bytes:
    """Compile every program of a Python file to one BPF ELF object (bytes)."""
    from .compiler.driver import compile_module as _compile_module
    return _compile_module(path, target)


__all__ = [
    "BackendFallbackWarning", "CompileError", "ProgramFault", "SourceLocation", "VerifierError", "OK", "WAIT", "Array", "ArrayMap",
    "Cqe", "Ctx", "HashMap", "IoVec", "Sqe", "Timespec", "bpf_function", "i8", "i16", "i32", "i64",
    "iouring_program", "loop_step", "struct", "u8", "u16", "u32", "u64", "compile_module", "__version__",
    "FilterCtx", "iouring_filter", "restrict_task",
]
