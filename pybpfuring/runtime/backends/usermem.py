"""copy_from_user / copy_to_user on this process's own memory, without ever faulting.

A program holds *user* pointers (ctx.user_data, addresses in maps) that the engine's region table
knows nothing about: they are plain addresses of this process, possibly wrong. `process_vm_readv` /
`process_vm_writev` on our own pid copy through the kernel, which checks the remote range and reports
EFAULT instead of delivering SIGSEGV, exactly what the kernel's copy_{from,to}_user do for BPF.
The engine-side buffer (the program's stack or a map value) is checked against the region table first.
"""
from __future__ import annotations

import ctypes
import os

_libc = ctypes.CDLL(None, use_errno=True)


class _Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


_readv = _libc.process_vm_readv
_writev = _libc.process_vm_writev
for _fn in (_readv, _writev):
    _fn.restype = ctypes.c_ssize_t
    _fn.argtypes = [ctypes.c_int, ctypes.POINTER(_Iovec), ctypes.c_ulong, ctypes.POINTER(_Iovec),
                    ctypes.c_ulong, ctypes.c_ulong]


class UserMemory:
    """Checked copies between engine memory (known-valid addresses) and user addresses."""

    def __init__(self) -> None:
        self._pid = os.getpid()
        self._local = _Iovec()
        self._remote = _Iovec()

    def _copy(self, fn: object, local: int, remote: int, size: int) -> bool:
        if os.getpid() != self._pid:  # after fork() the pid changes; our own pid is what we want
            self._pid = os.getpid()
        if remote <= 0 or remote + size > 1 << 64:
            return False
        self._local.base, self._local.len = local, size
        self._remote.base, self._remote.len = remote, size
        done = fn(self._pid, ctypes.byref(self._local), 1, ctypes.byref(self._remote), 1, 0)  # type: ignore[operator]
        return done == size

    def read_into(self, local: int, user_ptr: int, size: int) -> bool:
        """Copy `size` bytes at user address `user_ptr` to the valid address `local`."""
        return size == 0 or self._copy(_readv, local, user_ptr, size)

    def write_from(self, user_ptr: int, local: int, size: int) -> bool:
        """Copy `size` bytes from the valid address `local` to user address `user_ptr`."""
        return size == 0 or self._copy(_writev, local, user_ptr, size)
