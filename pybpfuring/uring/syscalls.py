"""The three io_uring system calls through libc's syscall(2), and the errors they raise.

No PyPI binding exposes raw SQEs, so we call the kernel directly. Each wrapper is a separate ctypes
function object with its own argtypes (libc's `syscall` is variadic; on x86_64 and aarch64 Linux
variadic integer arguments travel in the same registers as fixed ones, so typed argtypes are sound).
ctypes releases the GIL around the call, so a thread blocked in io_uring_enter does not stall others.
"""
from __future__ import annotations

import ctypes
import errno as errno_mod
import os
import platform
from ctypes import c_int, c_long, c_uint, c_void_p

from pybpfuring.errors import PyBpfUringError

from pybpfuring.abi.uring import NR_IO_URING_ENTER, NR_IO_URING_REGISTER, NR_IO_URING_SETUP

_SUPPORTED_MACHINES = {"x86_64", "amd64", "aarch64", "arm64", "riscv64", "loongarch64"}


class IoUringError(OSError, PyBpfUringError):
    """An io_uring system call failed. `operation` names the call and its key arguments.

    `str()` reads e.g. ``io_uring_setup(entries=0): Invalid argument [EINVAL]``; `errno` and `strerror`
    are set as on any OSError, so `except OSError` and errno checks keep working.
    """

    def __init__(self, operation: str, err: int, hint: str | None = None):
        super().__init__(err, os.strerror(err))
        self.operation = operation
        self.hint = hint

    def __str__(self) -> str:
        name = errno_mod.errorcode.get(self.errno, f"errno {self.errno}")
        text = f"{self.operation}: {self.strerror} [{name}]"
        return f"{text}; {self.hint}" if self.hint else text


class IoUringSetupError(IoUringError):
    """io_uring_setup(2) or mapping the rings failed."""


class IoUringEnterError(IoUringError):
    """io_uring_enter(2) failed (the whole call; a single request's failure is a negative cqe.res)."""


class IoUringRegisterError(IoUringError):
    """io_uring_register(2) failed."""


class RingClosedError(PyBpfUringError, ValueError):
    """The ring was used after `close()` (a ValueError, like I/O on a closed file)."""


def _load_libc() -> ctypes.CDLL:
    if platform.system() != "Linux":
        raise OSError(errno_mod.ENOSYS, "io_uring exists only on Linux")
    if platform.machine().lower() not in _SUPPORTED_MACHINES:
        raise OSError(errno_mod.ENOSYS,
                      f"io_uring syscall numbers unknown for {platform.machine()}")
    return ctypes.CDLL(None, use_errno=True)


_libc = _load_libc()


def _syscall(*argtypes: type) -> ctypes._CFuncPtr:
    # CDLL.__getitem__ builds a fresh function object each time, so each wrapper keeps its argtypes.
    fn = _libc["syscall"]
    fn.restype = c_long
    fn.argtypes = [c_long, *argtypes]
    return fn


# long syscall(SYS_io_uring_setup, u32 entries, struct io_uring_params *p)
_sys_setup = _syscall(c_uint, c_void_p)
# long syscall(SYS_io_uring_register, int fd, u32 opcode, void *arg, u32 nr_args)
_sys_register = _syscall(c_int, c_uint, c_void_p, c_uint)


def io_uring_setup(entries: int, params_addr: int) -> int:
    """Returns the new ring fd; raises IoUringSetupError naming `entries` on failure."""
    fd = _sys_setup(NR_IO_URING_SETUP, entries, params_addr)
    if fd < 0:
        err = ctypes.get_errno()
        raise IoUringSetupError(f"io_uring_setup(entries={entries})", err, _setup_hint(err))
    return fd


def _setup_hint(err: int) -> str | None:
    if err == errno_mod.ENOSYS:
        return "this kernel has no io_uring (CONFIG_IO_URING=n)"
    if err == errno_mod.EPERM:
        return "io_uring is disabled for this process (sysctl kernel.io_uring_disabled)"
    if err == errno_mod.EINVAL:
        return "check entries (1..32768, or more with CLAMP) and that the kernel knows every flag"
    return None


# The hot path: io_uring_enter without argtypes. Converting six declared argtypes costs ~1 us per call
# in CPython's ctypes. Without them a Python int goes as a C int, and libffi may leave the upper half
# of its 64-bit slot undefined (it does for the 7th argument, which travels on the x86_64 stack). That
# is harmless for fd, to_submit, min_complete and flags, which the kernel declares as 32-bit and
# truncates; the 64-bit ones are passed as prebuilt ctypes objects: the syscall number as `ENTER_NR`
# (a c_long), the argument pointer as a c_void_p (or None = NULL) and its size as a c_size_t
# (`ARGSZ_NONE` when there is no argument).
_sys_enter_fast = _libc["syscall"]
_sys_enter_fast.restype = c_long
ENTER_NR = c_long(NR_IO_URING_ENTER)
ARGSZ_NONE = ctypes.c_size_t(0)


def io_uring_enter_raw(fd: int, to_submit: int, min_complete: int, flags: int,
                       arg: c_void_p | None = None, argsz: ctypes.c_size_t = ARGSZ_NONE) -> int:
    """The bare call: returns the result or -errno (the hot path decides what an error means)."""
    ret = _sys_enter_fast(ENTER_NR, fd, to_submit, min_complete, flags, arg, argsz)
    if ret < 0:
        return -ctypes.get_errno()
    return ret


def io_uring_register(fd: int, opcode: int, arg: int | None, nr_args: int,
                      what: str) -> int:
    """Returns the result; raises IoUringRegisterError naming `what` (e.g. "REGISTER_FILES")."""
    ret = _sys_register(NR_IO_URING_REGISTER, fd, opcode, arg, nr_args)
    if ret < 0:
        err = ctypes.get_errno()
        raise IoUringRegisterError(f"io_uring_register({what}, nr_args={nr_args})", err)
    return ret
