"""pybpfuring: io_uring BPF programs as decorated Python functions, compiled to BPF ELF with llvmlite.

    from pybpfuring import iouring_program, Ctx, Sqe, ArrayMap, u64, OK, WAIT
"""
from .errors import BackendFallbackWarning, CompileError, ProgramFault, SourceLocation, VerifierError
from .lang import (OK, WAIT, Array, ArrayMap, Cqe, Ctx, HashMap, IoVec, Sqe, Timespec, bpf_function,
                   i8, i16, i32, i64, iouring_program, loop_step, struct, u8, u16, u32, u64)

from .compiler.driver import compile_module
from .filters import FilterCtx, iouring_filter
from .filters.kernel import restrict_task

__version__ = "0.1.0"

__all__ = [
    "BackendFallbackWarning", "CompileError", "ProgramFault", "SourceLocation", "VerifierError", "OK", "WAIT", "Array", "ArrayMap",
    "Cqe", "Ctx", "HashMap", "IoVec", "Sqe", "Timespec", "bpf_function", "i8", "i16", "i32", "i64",
    "iouring_program", "loop_step", "struct", "u8", "u16", "u32", "u64", "compile_module", "__version__",
    "FilterCtx", "iouring_filter", "restrict_task",
]
