"""Registering filters with the kernel (IORING_REGISTER_BPF_FILTER = 37), per ring or per task.

Facts (torvalds/linux io_uring/register.c and bpf_filter.c; layouts from the 7.2 guest's BTF):
`struct io_uring_bpf { u16 cmd_type = IO_URING_BPF_CMD_FILTER (1); u16 cmd_flags; u32 resv;
struct io_uring_bpf_filter { u32 opcode; u32 flags; u32 filter_len; u8 pdu_size; u8 resv[3];
u64 filter_ptr; u64 resv2[5]; } }` (72 bytes), nr_args = 1. On a ring fd the filter applies to that ring;
with fd -1 ("blind" registration) to the calling task and every task it forks afterwards, and the
kernel asks for no_new_privs or CAP_SYS_ADMIN (else EACCES). Filters only add up: every filter of an
opcode must allow a request; DENY_REST puts a deny-all on each opcode that has none yet.
"""
from __future__ import annotations

import ctypes
import errno as errno_mod
import os
import struct
from typing import Iterable, Sequence

from ..errors import PyBpfUringError, SourceLocation
from pybpfuring.uring.syscalls import NR_IO_URING_REGISTER, _syscall
from pybpfuring.uring.ring import IoUring
from . import cbpf as C
from .ctx import KERNEL_PDU_SIZES
from .decorator import IouringFilter

IORING_REGISTER_BPF_FILTER = 37
IO_URING_BPF_CMD_FILTER = 1
IO_URING_BPF_FILTER_DENY_REST = 1
IO_URING_BPF_FILTER_SZ_STRICT = 2
REG_SIZE = 72
PR_SET_NO_NEW_PRIVS = 38

_register = _syscall(ctypes.c_int, ctypes.c_uint, ctypes.c_void_p, ctypes.c_uint)


class FilterError(PyBpfUringError):
    """A filter could not be applied; `loc` names the Python line where one is known."""

    def __init__(self, message: str, loc: SourceLocation | None = None, errno: int | None = None):
        self.message, self.loc, self.errno = message, loc, errno
        super().__init__(message if loc is None else f"{loc.render()}\n{message}")


class FiltersUnsupported(FilterError):
    """The running kernel has no io_uring BPF filters (Linux < 7.0, or built without them)."""


def _register_one(fd: int, opcode: int, prog: bytes, n: int, pdu: int, flags: int) -> tuple[int, int]:
    """One registration: (errno or 0, the pdu size the kernel wrote back)."""
    buf = ctypes.create_string_buffer(REG_SIZE)
    code = ctypes.create_string_buffer(prog, len(prog))
    struct.pack_into("<HHI", buf, 0, IO_URING_BPF_CMD_FILTER, 0, 0)
    struct.pack_into("<IIIB3xQ", buf, 8, opcode, flags, n, pdu, ctypes.addressof(code))
    ret = _register(NR_IO_URING_REGISTER, fd, IORING_REGISTER_BPF_FILTER, ctypes.addressof(buf), 1)
    err = ctypes.get_errno() if ret < 0 else 0
    return err, buf.raw[20]


_SUPPORTED: bool | None = None


def filters_supported() -> bool:
    """Probe once: an allow-all NOP filter on a throw-away ring (no effect on this task)."""
    global _SUPPORTED
    if _SUPPORTED is None:
        try:
            ring = IoUring(1)
        except PyBpfUringError:
            _SUPPORTED = False
            return False
        try:
            err, _ = _register_one(ring.fd, 0, C.Insn(C.RET | C.K, k=1).encode(), 1, 0, 0)
            _SUPPORTED = err == 0
        finally:
            ring.close()
    return _SUPPORTED


def support_line() -> str:
    """For `pybpfuring info`."""
    if filters_supported():
        return "io_uring BPF filters: yes (IORING_REGISTER_BPF_FILTER)"
    return f"io_uring BPF filters: no (this kernel, {os.uname().release}, refuses IORING_REGISTER_BPF_FILTER)"


def _require_support() -> None:
    if not filters_supported():
        raise FiltersUnsupported(
            f"this kernel ({os.uname().release}) has no io_uring BPF filters "
            "(IORING_REGISTER_BPF_FILTER needs Linux 7.0 or later)", errno=errno_mod.EINVAL)


def apply_filter(fd: int, filt: IouringFilter, deny_rest: bool = False) -> None:
    """Register `filt` on ring `fd` (or on the calling task when fd is -1)."""
    _require_support()
    comp = filt.compiled
    prog, n = comp.encode(), len(comp.program)
    for opcode in filt.opcodes:
        pdu = filt.pdu_size(opcode)
        err, kernel_pdu = _register_one(fd, opcode, prog, n, pdu,
                                        IO_URING_BPF_FILTER_DENY_REST if deny_rest else 0)
        if err:
            raise _explain(err, filt, opcode, pdu, kernel_pdu, fd)


def _explain(err: int, filt: IouringFilter, opcode: int, pdu: int, kernel_pdu: int,
             fd: int) -> FilterError:
    comp = filt.compiled
    name = filt.fn.__name__
    where = "this task" if fd == -1 else "the ring"
    if err == errno_mod.EMSGSIZE:
        return FilterError(f"kernel refused filter {name!r} for opcode {opcode}: it reads "
                           f"{pdu} bytes of per-opcode data, the kernel gives {kernel_pdu}",
                           comp.def_loc, err)
    if err == errno_mod.EACCES and fd == -1:
        return FilterError("task filters need no_new_privs or CAP_SYS_ADMIN; call "
                           "restrict_task(..., no_new_privs=True)", comp.def_loc, err)
    bad = C.check(list(comp.program))
    if bad is not None:
        pc, why = bad
        return FilterError(f"kernel refused filter {name!r} at instruction {pc}: {why}",
                           comp.loc_of(pc), err)
    return FilterError(f"kernel refused filter {name!r} for opcode {opcode} on {where}: "
                       f"{os.strerror(err)} (is opcode {opcode} known to this kernel?)",
                       comp.def_loc, err)


def register_raw(fd: int, opcode: int, program: Sequence[C.Insn], *, pdu_size: int = 0,
                 flags: int = 0) -> None:
    """Register hand-written cBPF (for tests and comparisons); FilterError names the refusal."""
    _require_support()
    prog = C.encode(list(program))
    err, kernel_pdu = _register_one(fd, opcode, prog, len(program), pdu_size, flags)
    if err:
        bad = C.check(list(program))
        why = f"instruction {bad[0]}: {bad[1]}" if bad else os.strerror(err)
        raise FilterError(f"kernel refused the filter for opcode {opcode}: {why} "
                          f"(errno {errno_mod.errorcode.get(err, err)}, kernel pdu size {kernel_pdu})",
                          errno=err)


def restrict_task(filters: Iterable[IouringFilter], deny_rest: bool = True,
                  no_new_privs: bool = False) -> None:
    """Apply filters to the calling task and its future children (not undoable). With deny_rest,
    every opcode none of them names is denied. no_new_privs sets PR_SET_NO_NEW_PRIVS first (needed
    without CAP_SYS_ADMIN)."""
    filters = list(filters)
    if not filters:
        raise FilterError("restrict_task needs at least one filter")
    for f in filters:
        if not isinstance(f, IouringFilter):
            raise FilterError(f"restrict_task takes @iouring_filter functions, not {f!r}")
        _ = f.compiled                       # compile them all before applying any
    if no_new_privs:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise FilterError(f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(ctypes.get_errno())}")
    for i, f in enumerate(filters):
        # DENY_REST fills only opcodes without a filter, so it goes with the last registration
        apply_filter(-1, f, deny_rest=deny_rest and i == len(filters) - 1)
