"""copy_from_user / copy_to_user on this process's own memory, without ever faulting.

A program holds *user* pointers (ctx.user_data, addresses in maps) that the engine's region table
knows nothing about: they are plain addresses of this process, possibly wrong. `process_vm_readv` /
`process_vm_writev` on our own pid copy through the kernel, which checks the remote range and reports
EFAULT instead of delivering SIGSEGV, exactly what the kernel's copy_{from,to}_user do for BPF.
The engine-side buffer (the program's stack or a map value) is checked against the region table first.

Where a seccomp policy forbids those two syscalls (EPERM/ENOSYS), the fallback checks the range
against /proc/self/maps (mapped, readable or writable as needed) and then copies with memmove. It is
slower and, unlike the syscalls, not atomic with respect to another thread unmapping the range.
"""
from __future__ import annotations

import ctypes
import errno
import mmap
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
_BLOCKED = (errno.EPERM, errno.ENOSYS, errno.EACCES)


def mapped_with(addr: int, size: int, perm: str) -> bool:
    """True if [addr, addr+size) is covered by mappings of this process that have `perm` ('r'/'w')."""
    end = addr + size
    with open("/proc/self/maps") as maps:
        for line in maps:
            span, perms = line.split(None, 2)[:2]
            lo_text, hi_text = span.split("-")
            lo, hi = int(lo_text, 16), int(hi_text, 16)
            if hi <= addr:
                continue
            if lo > addr or perm not in perms:
                return False
            addr = hi  # covered up to hi: the rest must follow contiguously
            if addr >= end:
                return True
    return False


class UserMemory:
    """Checked copies between engine memory (known-valid addresses) and user addresses."""

    def __init__(self, use_maps: bool = False) -> None:
        self._pid = os.getpid()
        self._local = _Iovec()
        self._remote = _Iovec()
        self.use_maps = use_maps  # the /proc/self/maps fallback (set on the first blocked syscall)

    def _copy(self, fn: object, local: int, remote: int, size: int) -> bool:
        if remote <= 0 or remote + size > 1 << 64:
            return False
        if self.use_maps:
            return self._copy_checked(fn is _writev, local, remote, size)
        if os.getpid() != self._pid:  # after fork() the pid changes; our own pid is what we want
            self._pid = os.getpid()
        self._local.base, self._local.len = local, size
        self._remote.base, self._remote.len = remote, size
        done = fn(self._pid, ctypes.byref(self._local), 1, ctypes.byref(self._remote), 1, 0)  # type: ignore[operator]
        if done < 0 and ctypes.get_errno() in _BLOCKED:
            self.use_maps = True
            return self._copy_checked(fn is _writev, local, remote, size)
        return done == size

    @staticmethod
    def _copy_checked(to_user: bool, local: int, remote: int, size: int) -> bool:
        if not mapped_with(remote, size, "w" if to_user else "r"):
            return False
        if to_user:
            ctypes.memmove(remote, local, size)
        else:
            ctypes.memmove(local, remote, size)
        return True

    def read_into(self, local: int, user_ptr: int, size: int) -> bool:
        """Copy `size` bytes at user address `user_ptr` to the valid address `local`."""
        return size == 0 or self._copy(_readv, local, user_ptr, size)

    def write_from(self, user_ptr: int, local: int, size: int) -> bool:
        """Copy `size` bytes from the valid address `local` to user address `user_ptr`."""
        return size == 0 or self._copy(_writev, local, user_ptr, size)


class UserArena:
    """Ring.user_memory on the emulated backends: zeroed blocks carved out of anonymous mmaps the
    ring owns. The native loop knows these ranges (`spans`) are valid while the ring is open, so
    copy_{from,to}_user there are plain copies instead of process_vm_* system calls. A block stays
    valid while its ctypes object is referenced (from_buffer keeps its mmap alive), also after close."""

    CHUNK = 256 * 1024

    def __init__(self) -> None:
        self.maps: list[mmap.mmap] = []
        self._used = 0

    def take(self, size: int, align: int) -> tuple[mmap.mmap, int]:
        """(buffer, offset) of `size` fresh zeroed bytes aligned to `align`."""
        start = -(-self._used // align) * align
        if not self.maps or start + size > len(self.maps[-1]):
            self.maps.append(mmap.mmap(-1, max(self.CHUNK, -(-size // mmap.PAGESIZE) * mmap.PAGESIZE)))
            start = 0
        self._used = start + size
        return self.maps[-1], start

    def spans(self) -> list[tuple[int, int]]:
        """(address, size) of every chunk."""
        out = []
        for m in self.maps:
            anchor = ctypes.c_char.from_buffer(m)   # a transient export: the address, then released
            out.append((ctypes.addressof(anchor), len(m)))
            del anchor
        return out
