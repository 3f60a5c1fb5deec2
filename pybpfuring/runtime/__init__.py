"""The runtime: `Ring` (the 2021 IORING_OP_BPF model on any kernel), plus io_uring, loader, engine::

    from pybpfuring.runtime import Ring

See docs/runtime.md.
"""
import importlib
import pkgutil
import sys

from .. import loader
from ..errors import BackendFallbackWarning
from .backends.emulated import RingStalledError
from .backends.programs import RegistrationError
from .model import Ring, RingStats
from .ring import (Cqe, Sqe, Timespec, prep_accept, prep_cancel, prep_connect, prep_shutdown,
                   prep_splice, prep_statx, sockaddr_in, prep_close, prep_fsync, prep_link_timeout,
                   prep_nop, prep_openat, prep_poll_add, prep_read, prep_readv, prep_recv,
                   prep_send, prep_timeout, prep_write, prep_writev)

# The loader was pybpfuring.runtime.bpf in 0.1 (docs/loader.md showed that path); it is
# pybpfuring.loader now, below the compiler. The old names import the same module objects.
sys.modules[f"{__name__}.bpf"] = loader
for _m in pkgutil.iter_modules(loader.__path__):
    sys.modules[f"{__name__}.bpf.{_m.name}"] = importlib.import_module(f"{loader.__name__}.{_m.name}")

__all__ = ["BackendFallbackWarning", "Cqe", "RegistrationError", "Ring", "RingStalledError", "RingStats", "Sqe", "Timespec",
           "prep_cancel", "prep_close", "prep_fsync", "prep_link_timeout", "prep_nop",
           "prep_openat", "prep_poll_add", "prep_read", "prep_readv", "prep_recv", "prep_send",
           "prep_timeout", "prep_write", "prep_writev", "prep_accept", "prep_connect", "prep_shutdown",
           "prep_splice", "prep_statx", "sockaddr_in"]
