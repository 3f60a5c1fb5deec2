"""The io_uring ABI structures as ctypes types, plus the small value types the ring hands out.

Layouts follow the kernel uapi `include/uapi/linux/io_uring.h` (and `linux/time_types.h`,
`linux/uio.h` for the timespec and iovec). Sizes and offsets are asserted at import time, so a
mistake here fails loudly instead of corrupting a request.
"""
from __future__ import annotations

import ctypes
from ctypes import c_int32, c_int64, c_uint8, c_uint16, c_uint32, c_uint64
from typing import NamedTuple

from ...errors import ArgumentError
from .constants import CQE_SIZE, SQE_SIZE, opcode_name


class IoSqringOffsets(ctypes.Structure):
    """struct io_sqring_offsets: byte offsets of the SQ ring words inside the SQ ring mapping."""

    _fields_ = [("head", c_uint32), ("tail", c_uint32), ("ring_mask", c_uint32),
                ("ring_entries", c_uint32), ("flags", c_uint32), ("dropped", c_uint32),
                ("array", c_uint32), ("resv1", c_uint32), ("user_addr", c_uint64)]


class IoCqringOffsets(ctypes.Structure):
    """struct io_cqring_offsets: byte offsets of the CQ ring words inside the CQ ring mapping."""

    _fields_ = [("head", c_uint32), ("tail", c_uint32), ("ring_mask", c_uint32),
                ("ring_entries", c_uint32), ("overflow", c_uint32), ("cqes", c_uint32),
                ("flags", c_uint32), ("resv1", c_uint32), ("user_addr", c_uint64)]


class IoUringParams(ctypes.Structure):
    """struct io_uring_params: filled by us for io_uring_setup(2), completed by the kernel."""

    _fields_ = [("sq_entries", c_uint32), ("cq_entries", c_uint32), ("flags", c_uint32),
                ("sq_thread_cpu", c_uint32), ("sq_thread_idle", c_uint32), ("features", c_uint32),
                ("wq_fd", c_uint32), ("resv", c_uint32 * 3),
                ("sq_off", IoSqringOffsets), ("cq_off", IoCqringOffsets)]


# The SQE's unions, named as in the uapi. ctypes' _anonymous_ makes every member a direct attribute
# of the SQE with its own offset, so `sqe.rw_flags` costs the same as `sqe.len`.
class _SqeOff(ctypes.Union):
    _fields_ = [("off", c_uint64), ("addr2", c_uint64), ("cmd_op", c_uint32)]


class _SqeAddr(ctypes.Union):
    _fields_ = [("addr", c_uint64), ("splice_off_in", c_uint64), ("level", c_uint32)]


class _SqeOpFlags(ctypes.Union):
    # __kernel_rwf_t is a signed int; every other member is a u32 sharing the word.
    _fields_ = [("rw_flags", c_int32), ("op_flags", c_uint32), ("fsync_flags", c_uint32),
                ("poll_events", c_uint16), ("poll32_events", c_uint32),
                ("sync_range_flags", c_uint32), ("msg_flags", c_uint32),
                ("timeout_flags", c_uint32), ("accept_flags", c_uint32),
                ("cancel_flags", c_uint32), ("open_flags", c_uint32), ("statx_flags", c_uint32),
                ("fadvise_advice", c_uint32), ("splice_flags", c_uint32),
                ("rename_flags", c_uint32), ("unlink_flags", c_uint32),
                ("hardlink_flags", c_uint32), ("xattr_flags", c_uint32),
                ("msg_ring_flags", c_uint32), ("uring_cmd_flags", c_uint32),
                ("waitid_flags", c_uint32), ("futex_flags", c_uint32),
                ("install_fd_flags", c_uint32), ("nop_flags", c_uint32), ("pipe_flags", c_uint32)]


class _SqeBufIndex(ctypes.Union):
    _fields_ = [("buf_index", c_uint16), ("buf_group", c_uint16)]


class _SqeFdIn(ctypes.Union):
    _fields_ = [("splice_fd_in", c_int32), ("file_index", c_uint32), ("optlen", c_uint32),
                ("addr_len", c_uint16)]


class _SqeTail(ctypes.Union):
    _fields_ = [("addr3", c_uint64), ("optval", c_uint64), ("attr_ptr", c_uint64)]


class Sqe(ctypes.Structure):
    """struct io_uring_sqe (64 bytes). Fields are named as in the uapi; unions are flattened.

    `IoUring.get_sqe()` returns one of these laid over the ring's shared SQE array, so assignments go
    straight to the memory the kernel reads at submission. A free-standing `Sqe()` is plain memory
    (useful to build SQEs for BPF programs); the `prep_*` functions work on both.
    """

    _anonymous_ = ("_u_off", "_u_addr", "_u_op_flags", "_u_buf", "_u_fd_in", "_u_tail")
    _fields_ = [("opcode", c_uint8), ("flags", c_uint8), ("ioprio", c_uint16), ("fd", c_int32),
                ("_u_off", _SqeOff), ("_u_addr", _SqeAddr), ("len", c_uint32),
                ("_u_op_flags", _SqeOpFlags), ("user_data", c_uint64), ("_u_buf", _SqeBufIndex),
                ("personality", c_uint16), ("_u_fd_in", _SqeFdIn), ("_u_tail", _SqeTail),
                ("__pad2", c_uint64)]

    def __repr__(self) -> str:
        return (f"Sqe({opcode_name(self.opcode)}, flags={self.flags:#x}, fd={self.fd}, "
                f"off={self.off}, addr={self.addr:#x}, len={self.len}, op_flags={self.op_flags:#x}, "
                f"user_data={self.user_data})")


class IoUringCqe(ctypes.Structure):
    """struct io_uring_cqe (16 bytes): the layout only; the ring hands out `Cqe` values."""

    _fields_ = [("user_data", c_uint64), ("res", c_int32), ("flags", c_uint32)]


class Cqe(NamedTuple):
    """One completion, copied out of the CQ ring (so it stays valid after the slot is reused)."""

    user_data: int
    res: int    # the operation's result: >= 0 on success, -errno on failure
    flags: int  # IORING_CQE_F_*


class Timespec(ctypes.Structure):
    """struct __kernel_timespec (linux/time_types.h): 64-bit seconds and nanoseconds."""

    _fields_ = [("tv_sec", c_int64), ("tv_nsec", c_int64)]

    @classmethod
    def from_seconds(cls, seconds: float) -> "Timespec":
        """A timespec of `seconds` (0 <= seconds < 2**63, else ArgumentError)."""
        if not 0 <= seconds < 2**63:   # also refuses NaN; tv_sec is a signed 64-bit field
            raise ArgumentError(f"a timeout must be 0..2**63 seconds, not {seconds!r}")
        whole = int(seconds)
        return cls(whole, int(round((seconds - whole) * 1e9)))

    def set_seconds(self, seconds: float) -> None:
        """Rewrite in place (the ring reuses one Timespec for its own waits)."""
        whole = int(seconds)
        self.tv_sec = whole
        self.tv_nsec = int((seconds - whole) * 1e9)

    def seconds(self) -> float:
        """The timespec as seconds."""
        return self.tv_sec + self.tv_nsec / 1e9


class Iovec(ctypes.Structure):
    """struct iovec (linux/uio.h)."""

    _fields_ = [("iov_base", c_uint64), ("iov_len", c_uint64)]


class IoUringGeteventsArg(ctypes.Structure):
    """struct io_uring_getevents_arg: the io_uring_enter(2) argument with IORING_ENTER_EXT_ARG."""

    _fields_ = [("sigmask", c_uint64), ("sigmask_sz", c_uint32), ("min_wait_usec", c_uint32),
                ("ts", c_uint64)]


class IoUringProbeOp(ctypes.Structure):
    """struct io_uring_probe_op."""

    _fields_ = [("op", c_uint8), ("resv", c_uint8), ("flags", c_uint16), ("resv2", c_uint32)]


PROBE_OPS = 256  # the opcode is a u8, so 256 entries describe every possible opcode


class IoUringProbe(ctypes.Structure):
    """struct io_uring_probe with room for every u8 opcode (the uapi's flexible ops[] array)."""

    _fields_ = [("last_op", c_uint8), ("ops_len", c_uint8), ("resv", c_uint16),
                ("resv2", c_uint32 * 3), ("ops", IoUringProbeOp * PROBE_OPS)]


def _check_layout() -> None:
    """The offsets the kernel relies on (BUILD_BUG_SQE_ELEM in io_uring/io_uring.c)."""
    expected = {"opcode": 0, "flags": 1, "ioprio": 2, "fd": 4, "off": 8, "addr": 16, "len": 24,
                "rw_flags": 28, "user_data": 32, "buf_index": 40, "personality": 42,
                "splice_fd_in": 44, "addr3": 48}
    for name, offset in expected.items():
        actual = getattr(Sqe, name).offset  # anonymous union members carry their absolute offset
        assert actual == offset, f"Sqe.{name} at {actual}, uapi says {offset}"
    assert ctypes.sizeof(Sqe) == SQE_SIZE
    assert ctypes.sizeof(IoUringCqe) == CQE_SIZE
    assert ctypes.sizeof(IoUringParams) == 120
    assert ctypes.sizeof(IoUringGeteventsArg) == 24
    assert ctypes.sizeof(IoUringProbe) == 16 + 8 * PROBE_OPS


_check_layout()
