"""io_uring from Python through raw syscalls and shared memory (ctypes + mmap), liburing's flat style.

    from pybpfuring.uring import IoUring, prep_nop
    with IoUring(8) as ring:
        sqe = ring.get_sqe(); prep_nop(sqe); sqe.user_data = 42
        ring.submit()
        print(ring.wait_cqe())          # Cqe(user_data=42, res=0, flags=0)

See docs/ring.md. `constants` holds the uapi numbers (opcodes, IOSQE_*, IORING_SETUP_*, ...).
"""
import sys

from pybpfuring.abi import structs as _structs, uring as constants
from .prep import (AT_FDCWD, prep_accept, prep_cancel, prep_connect, prep_shutdown, prep_splice,
                   prep_statx, sockaddr_in, prep_close, prep_fsync, prep_link_timeout, prep_nop,
                   prep_openat, prep_poll_add, prep_read, prep_read_fixed, prep_readv, prep_recv,
                   prep_send, prep_timeout, prep_write, prep_write_fixed, prep_writev)
from .ring import IoUring
from pybpfuring.abi.structs import Cqe, IoUringParams, Iovec, Sqe, Timespec
from .syscalls import (IoUringEnterError, IoUringError, IoUringRegisterError, IoUringSetupError,
                       RingClosedError)

# The uapi numbers and layouts live in pybpfuring.abi; these are their import paths of pybpfuring 0.1,
# kept working (the same module objects, so values and types are identical under both names).
sys.modules[f"{__name__}.constants"] = constants
sys.modules[f"{__name__}.structs"] = _structs

__all__ = [
    "AT_FDCWD", "Cqe", "IoUring", "IoUringEnterError", "IoUringError", "IoUringParams",
    "IoUringRegisterError", "IoUringSetupError", "Iovec", "RingClosedError", "Sqe", "Timespec",
    "constants", "prep_cancel", "prep_close", "prep_fsync", "prep_link_timeout", "prep_nop",
    "prep_openat", "prep_poll_add", "prep_read", "prep_read_fixed", "prep_readv", "prep_recv",
    "prep_send", "prep_timeout", "prep_write", "prep_write_fixed", "prep_writev",
    "prep_accept", "prep_connect", "prep_shutdown", "prep_splice", "prep_statx", "sockaddr_in",
]
