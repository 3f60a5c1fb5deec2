"""io_uring_register(2) operations of `IoUring`: probing opcodes, fixed files, fixed buffers."""
from __future__ import annotations

import ctypes
from collections.abc import Iterable
from typing import Any

from pybpfuring.errors import ArgumentError
from pybpfuring.abi import uring as C
from .buffers import pin
from pybpfuring.abi.structs import IoUringProbe, Iovec, PROBE_OPS
from .syscalls import io_uring_register


class RegistrationMixin:
    """Mixed into IoUring, which provides `_fd`, `_check_open()` and `_registered_buffer_pins`."""

    _fd: int
    _registered_buffer_pins: list[object]

    def _check_open(self) -> None:  # overridden by IoUring
        raise NotImplementedError

    def probe(self) -> set[int]:
        """Opcodes this kernel supports (IORING_REGISTER_PROBE)."""
        self._check_open()
        probe = IoUringProbe()
        io_uring_register(self._fd, C.IORING_REGISTER_PROBE, ctypes.addressof(probe), PROBE_OPS,
                          "REGISTER_PROBE")
        return {probe.ops[i].op for i in range(probe.ops_len)
                if probe.ops[i].flags & C.IO_URING_OP_SUPPORTED}

    def register_files(self, fds: Iterable[int]) -> None:
        """Install `fds` as the fixed file table: SQEs with IOSQE_FIXED_FILE use fd = index."""
        self._check_open()
        fd_list = [_as_fd(fd) for fd in fds]
        table = (ctypes.c_int32 * len(fd_list))(*fd_list)  # the kernel copies it
        io_uring_register(self._fd, C.IORING_REGISTER_FILES, ctypes.addressof(table), len(fd_list),
                          "REGISTER_FILES")

    def unregister_files(self) -> None:
        self._check_open()
        io_uring_register(self._fd, C.IORING_UNREGISTER_FILES, None, 0, "UNREGISTER_FILES")

    def register_buffers(self, buffers: Iterable[Any]) -> None:
        """Register writable buffers for READ_FIXED/WRITE_FIXED (buf_index = position). They stay
        pinned (a bytearray cannot be resized) until unregister_buffers() or close()."""
        self._check_open()
        pins: list[object] = []
        iovecs: list[tuple[int, int]] = []
        for i, buf in enumerate(buffers):
            addr, nbytes, keep = pin(buf, writable=True, what=f"registered buffer {i}")
            iovecs.append((addr, nbytes))
            pins.append(keep)
        table = (Iovec * len(iovecs))(*iovecs)
        io_uring_register(self._fd, C.IORING_REGISTER_BUFFERS, ctypes.addressof(table),
                          len(iovecs), "REGISTER_BUFFERS")
        self._registered_buffer_pins = pins

    def unregister_buffers(self) -> None:
        self._check_open()
        io_uring_register(self._fd, C.IORING_UNREGISTER_BUFFERS, None, 0, "UNREGISTER_BUFFERS")
        self._registered_buffer_pins = []

    def enable_rings(self) -> None:
        """Start a ring created with IORING_SETUP_R_DISABLED."""
        self._check_open()
        io_uring_register(self._fd, C.IORING_REGISTER_ENABLE_RINGS, None, 0,
                          "REGISTER_ENABLE_RINGS")


def _as_fd(fd: Any) -> int:
    if hasattr(fd, "fileno") and not isinstance(fd, int):
        fd = fd.fileno()
    if not isinstance(fd, int) or isinstance(fd, bool) or not -1 <= fd < 1 << 31:
        raise ArgumentError(f"a file descriptor must be an int in -1..{(1 << 31) - 1} "
                            f"(-1 = empty slot), got {fd!r}")
    return fd
