"""The runtime: `Ring` (the 2021 IORING_OP_BPF model on any kernel), plus io_uring, loader, engine::

    from pybpfuring.runtime import Ring

See docs/runtime.md.
"""
import importlib
import pkgutil
import sys

from .. import loader, uring
from ..errors import BackendFallbackWarning
from .backends.emulated import RingStalledError
from .backends.programs import RegistrationError
from .model import Ring, RingStats
from ..uring import (Cqe, Sqe, Timespec, prep_accept, prep_cancel, prep_connect, prep_shutdown,
                   prep_splice, prep_statx, sockaddr_in, prep_close, prep_fsync, prep_link_timeout,
                   prep_nop, prep_openat, prep_poll_add, prep_read, prep_readv, prep_recv,
                   prep_send, prep_timeout, prep_write, prep_writev)

# The loader was pybpfuring.runtime.bpf in 0.1 (docs/loader.md showed that path); it is
# pybpfuring.loader now, below the compiler. The old names import the same module objects.
# Likewise the io_uring binding, pybpfuring.runtime.ring in 0.1 (docs/ring.md), is pybpfuring.uring.
for _old, _new in (("bpf", loader), ("ring", uring)):
    sys.modules[f"{__name__}.{_old}"] = _new
    for _m in pkgutil.iter_modules(_new.__path__):
        importlib.import_module(f"{_new.__name__}.{_m.name}")
    for _name in [n for n in sys.modules if n.startswith(f"{_new.__name__}.")]:  # with their aliases
        sys.modules[f"{__name__}.{_old}{_name[len(_new.__name__):]}"] = sys.modules[_name]

__all__ = ["BackendFallbackWarning", "Cqe", "RegistrationError", "Ring", "RingStalledError", "RingStats", "Sqe", "Timespec",
           "prep_cancel", "prep_close", "prep_fsync", "prep_link_timeout", "prep_nop",
           "prep_openat", "prep_poll_add", "prep_read", "prep_readv", "prep_recv", "prep_send",
           "prep_timeout", "prep_write", "prep_writev", "prep_accept", "prep_connect", "prep_shutdown",
           "prep_splice", "prep_statx", "sockaddr_in"]
