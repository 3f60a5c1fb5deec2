"""liburing-style `prep_*` functions, written in the language itself (they compile like user code and
are inlined where called). Each fills every field liburing's `io_uring_prep_rw` fills and clears
`cq_idx`, so set `sqe.cq_idx` (and `sqe.flags`, `sqe.user_data`) after calling one.

`buf`, `iovecs` and `ts` are addresses in user memory (`u64`): the kernel reads and writes them, never
the program's stack.
"""
from __future__ import annotations

from .constants import (IORING_OP_CLOSE, IORING_OP_FSYNC, IORING_OP_NOP, IORING_OP_READ, IORING_OP_READV,
                        IORING_OP_RECV, IORING_OP_SEND, IORING_OP_TIMEOUT, IORING_OP_WRITE,
                        IORING_OP_WRITEV)
from .decorators import bpf_function
from .structs import Sqe
from .types import i32, u8, u32, u64


@bpf_function
def prep_rw(sqe: Sqe, op: u8, fd: i32, addr: u64, length: u32, offset: u64) -> None:
    sqe.opcode = op
    sqe.flags = 0
    sqe.ioprio = 0
    sqe.fd = fd
    sqe.off = offset
    sqe.addr = addr
    sqe.len = length
    sqe.rw_flags = 0
    sqe.buf_index = 0
    sqe.personality = 0
    sqe.splice_fd_in = 0
    sqe.addr3 = 0
    sqe.__pad3 = 0


@bpf_function
def prep_nop(sqe: Sqe) -> None:
    prep_rw(sqe, IORING_OP_NOP, -1, 0, 0, 0)


@bpf_function
def prep_read(sqe: Sqe, fd: i32, buf: u64, nbytes: u32, offset: u64) -> None:
    prep_rw(sqe, IORING_OP_READ, fd, buf, nbytes, offset)


@bpf_function
def prep_write(sqe: Sqe, fd: i32, buf: u64, nbytes: u32, offset: u64) -> None:
    prep_rw(sqe, IORING_OP_WRITE, fd, buf, nbytes, offset)


@bpf_function
def prep_readv(sqe: Sqe, fd: i32, iovecs: u64, nr_vecs: u32, offset: u64) -> None:
    prep_rw(sqe, IORING_OP_READV, fd, iovecs, nr_vecs, offset)


@bpf_function
def prep_writev(sqe: Sqe, fd: i32, iovecs: u64, nr_vecs: u32, offset: u64) -> None:
    prep_rw(sqe, IORING_OP_WRITEV, fd, iovecs, nr_vecs, offset)


@bpf_function
def prep_fsync(sqe: Sqe, fd: i32, fsync_flags: u32) -> None:
    prep_rw(sqe, IORING_OP_FSYNC, fd, 0, 0, 0)
    sqe.fsync_flags = fsync_flags


@bpf_function
def prep_timeout(sqe: Sqe, ts: u64, count: u32, flags: u32) -> None:
    """`ts` points to a Timespec in user memory; `count` completions also end it (0: time only)."""
    prep_rw(sqe, IORING_OP_TIMEOUT, -1, ts, 1, count)
    sqe.timeout_flags = flags


@bpf_function
def prep_send(sqe: Sqe, sockfd: i32, buf: u64, length: u32, flags: u32) -> None:
    prep_rw(sqe, IORING_OP_SEND, sockfd, buf, length, 0)
    sqe.msg_flags = flags


@bpf_function
def prep_recv(sqe: Sqe, sockfd: i32, buf: u64, length: u32, flags: u32) -> None:
    prep_rw(sqe, IORING_OP_RECV, sockfd, buf, length, 0)
    sqe.msg_flags = flags


@bpf_function
def prep_close(sqe: Sqe, fd: i32) -> None:
    prep_rw(sqe, IORING_OP_CLOSE, fd, 0, 0, 0)


__all__ = ["prep_rw", "prep_nop", "prep_read", "prep_write", "prep_readv", "prep_writev", "prep_fsync",
           "prep_timeout", "prep_send", "prep_recv", "prep_close"]
