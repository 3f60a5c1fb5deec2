"""The io_uring structs programs see: Ctx, Sqe, Cqe, plus Timespec and IoVec for request arguments.

Layouts follow the 2021 "io_uring BPF requests" ABI (`../shared/reference/io_uring-bpf-abi.md` §0.2):
`struct io_uring_bpf_ctx {u64 user_data; u32 wait_nr; u32 wait_idx;}` and the 64-byte SQE with
`__u16 cq_idx` at byte 48 (where upstream now has `addr3`).
"""
from __future__ import annotations

from ..abi.structs import sqe_members
from .types import ArrayType, StructType, ctype_of, i32, i64, layout, struct_aliases, u8, u16, u32, u64


def _declare(cls: type, st: StructType) -> type:
    cls.__bpf_struct__ = st
    cls.ctype = ctype_of(st)   # the ctypes twin, as for @struct classes
    return cls


class Ctx:
    """The program's context. `user_data` is the BPF request's (read-only); set `wait_idx`/`wait_nr`
    before returning WAIT.

    After the 2021 fields come pybpfuring's (every backend of this project fills them; a kernel
    with the 2021 patches has a 16-byte ctx and would refuse a program that reads them):
    `res`, the result the request completes with when the program returns OK (0 unless the program
    sets it, e.g. with `complete(ctx, res)`); `req`, the request's slot, unique among the ring's BPF
    requests in flight (0..REQUEST_SLOTS-1: it keys per-request state); `runs`, how many times
    this request ran before (0 on its first run). `__line` is written by the compiled code: the
    source line of the `return` that ended the run, so the runtime can say where an error
    completion comes from (`ring.explain(cqe)`)."""

    user_data: int
    wait_nr: int
    wait_idx: int
    res: int
    req: int
    runs: int


_declare(Ctx, layout("io_uring_bpf_ctx", [("user_data", u64), ("wait_nr", u32), ("wait_idx", u32),
                                          ("res", i32), ("req", u32), ("runs", u32), ("__line", u32)],
                     module=__name__, readonly=frozenset({"user_data", "req", "runs"})))
# The 2021 patches' struct ends here; the fields after it are this project's (see Ctx).
CTX_2021_SIZE = 16


class Sqe:
    """A submission queue entry (64 bytes). Build one on the stack with `sqe = Sqe()` and a `prep_*`
    function, set `sqe.cq_idx` to choose the CQ its completion goes to, then `submit(ctx, sqe)`."""


_INTS = {(m.bits // 8, m.signed): m for m in (u8, u16, u32, u64, i32, i64)}


def _sqe_layout() -> StructType:
    """Programs' view of the one SQE declaration (abi/structs.py): its primary members as fields, its
    union members (`timeout_flags` for `rw_flags`, upstream's `addr3` over the 2021 `cq_idx`...) as
    aliases at their offsets."""
    members = sqe_members()
    st = layout("io_uring_sqe", [(m.name, _INTS[m.size, m.signed]) for m in members if m.primary],
                module=__name__)
    at_offset = {m.offset: m.name for m in reversed(members) if m.primary}
    return struct_aliases(st, {m.name: (at_offset[m.offset], _INTS[m.size, m.signed])
                               for m in members if not m.primary})


_SQE = _sqe_layout()
assert _SQE.size == 64 and _SQE.fields["cq_idx"].offset == 48
_declare(Sqe, _SQE)


class Cqe:
    """A completion queue entry (16 bytes): `reap_cqe(ctx, idx, cqe)` fills one."""

    user_data: int
    res: int
    flags: int


_declare(Cqe, layout("io_uring_cqe", [("user_data", u64), ("res", i32), ("flags", u32)], module=__name__))


class Timespec:
    """`struct __kernel_timespec`, as IORING_OP_TIMEOUT reads it from user memory."""


_declare(Timespec, layout("__kernel_timespec", [("tv_sec", i64), ("tv_nsec", i64)], module=__name__))


class IoVec:
    """`struct iovec`, for readv/writev."""


_declare(IoVec, layout("iovec", [("iov_base", u64), ("iov_len", u64)], module=__name__))

BUILTIN_STRUCTS: dict[str, type] = {c.__name__: c for c in (Ctx, Sqe, Cqe, Timespec, IoVec)}

__all__ = ["Ctx", "Sqe", "Cqe", "Timespec", "IoVec", "ArrayType"]
