"""io_uring BPF filters written in Python: `@iouring_filter` compiled to classic BPF (docs/filters.md)."""
from .ctx import CTX_SIZE, FIELDS, FilterCtx
from .decorator import CompiledFilter, IouringFilter, compile_filter, iouring_filter

__all__ = ["CTX_SIZE", "FIELDS", "FilterCtx", "CompiledFilter", "IouringFilter", "compile_filter",
           "iouring_filter"]
