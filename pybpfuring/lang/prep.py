"""liburing-style `prep_*` functions, written in the language itself (they compile like user code and
are inlined where called). Each fills every field liburing's `io_uring_prep_rw` fills and clears
`cq_idx`, so set `sqe.cq_idx` (and `sqe.flags`, `sqe.user_data`) after calling one.

`buf`, `iovecs` and `ts` are addresses in user memory (`u64`): the kernel reads and writes them, never
the program's stack.
"""
from __future__ import annotations

from .constants import (IORING_OP_ACCEPT, IORING_OP_CLOSE, IORING_OP_CONNECT, IORING_OP_FSYNC,
                        IORING_OP_LINK_TIMEOUT, IORING_OP_NOP, IORING_OP_OPENAT, IORING_OP_READ,
                        IORING_OP_READV, IORING_OP_RECV, IORING_OP_SEND, IORING_OP_SHUTDOWN,
                        IORING_OP_SPLICE, IORING_OP_STATX, IORING_OP_TIMEOUT, IORING_OP_WRITE,
                        IORING_OP_WRITEV)
from .decorators import bpf_function
from .structs import Sqe
from .types import i32, i64, u8, u32, u64

# Constants the requests below take (uapi values: fcntl.h, socket.h, splice.h, stat.h). Module-level
# ints, so a program that imports them uses them as compile-time constants.
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
AT_SYMLINK_NOFOLLOW = 0x100
SHUT_RD, SHUT_WR, SHUT_RDWR = 0, 1, 2
SPLICE_F_MOVE, SPLICE_F_NONBLOCK, SPLICE_F_MORE = 1, 2, 4
SPLICE_F_FD_IN_FIXED = 1 << 31
STATX_SIZE = 0x200
STATX_BASIC_STATS = 0x7FF
O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_TRUNC, O_APPEND = 0, 1, 2, 0o100, 0o1000, 0o2000
O_CLOEXEC = 0o2000000
MSG_WAITALL, MSG_NOSIGNAL, MSG_DONTWAIT = 0x100, 0x4000, 0x40


@bpf_function
def prep_rw(sqe: Sqe, op: u8, fd: i32, addr: u64, length: u32, offset: u64) -> None:
    """Fill the request fields of `sqe` for opcode `op` (liburing's io_uring_prep_rw); flags and
    cq_idx are cleared, user_data is left as it was."""
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
    """IORING_OP_NOP: completes with res 0."""
    prep_rw(sqe, IORING_OP_NOP, -1, 0, 0, 0)


@bpf_function
def prep_read(sqe: Sqe, fd: i32, buf: u64, nbytes: u32, offset: u64) -> None:
    """read(2) of `nbytes` at `offset` of `fd` into user memory at `buf`; cqe.res = bytes read or -errno."""
    prep_rw(sqe, IORING_OP_READ, fd, buf, nbytes, offset)


@bpf_function
def prep_write(sqe: Sqe, fd: i32, buf: u64, nbytes: u32, offset: u64) -> None:
    """write(2) of `nbytes` from user memory at `buf` to `fd` at `offset`; cqe.res = bytes written
    or -errno."""
    prep_rw(sqe, IORING_OP_WRITE, fd, buf, nbytes, offset)


@bpf_function
def prep_readv(sqe: Sqe, fd: i32, iovecs: u64, nr_vecs: u32, offset: u64) -> None:
    """preadv(2): `iovecs` is the user-memory address of `nr_vecs` IoVec entries."""
    prep_rw(sqe, IORING_OP_READV, fd, iovecs, nr_vecs, offset)


@bpf_function
def prep_writev(sqe: Sqe, fd: i32, iovecs: u64, nr_vecs: u32, offset: u64) -> None:
    """pwritev(2): `iovecs` is the user-memory address of `nr_vecs` IoVec entries."""
    prep_rw(sqe, IORING_OP_WRITEV, fd, iovecs, nr_vecs, offset)


@bpf_function
def prep_fsync(sqe: Sqe, fd: i32, fsync_flags: u32) -> None:
    """fsync(2) of `fd`; IORING_FSYNC_DATASYNC in `fsync_flags` makes it fdatasync."""
    prep_rw(sqe, IORING_OP_FSYNC, fd, 0, 0, 0)
    sqe.fsync_flags = fsync_flags


@bpf_function
def prep_timeout(sqe: Sqe, ts: u64, count: u32, flags: u32) -> None:
    """`ts` points to a Timespec in user memory; `count` completions also end it (0: time only)."""
    prep_rw(sqe, IORING_OP_TIMEOUT, -1, ts, 1, count)
    sqe.timeout_flags = flags


@bpf_function
def prep_send(sqe: Sqe, sockfd: i32, buf: u64, length: u32, flags: u32) -> None:
    """send(2) of `length` bytes at user address `buf` on `sockfd` with MSG_* `flags`."""
    prep_rw(sqe, IORING_OP_SEND, sockfd, buf, length, 0)
    sqe.msg_flags = flags


@bpf_function
def prep_recv(sqe: Sqe, sockfd: i32, buf: u64, length: u32, flags: u32) -> None:
    """recv(2) of up to `length` bytes into user address `buf` from `sockfd` with MSG_* `flags`."""
    prep_rw(sqe, IORING_OP_RECV, sockfd, buf, length, 0)
    sqe.msg_flags = flags


@bpf_function
def prep_close(sqe: Sqe, fd: i32) -> None:
    """close(2) of `fd`."""
    prep_rw(sqe, IORING_OP_CLOSE, fd, 0, 0, 0)


@bpf_function
def prep_accept(sqe: Sqe, fd: i32, addr: u64, addrlen: u64, flags: u32) -> None:
    """accept4(2) on listening socket `fd`; `addr`/`addrlen` are user-memory addresses of a
    sockaddr and its socklen_t (0 and 0: the peer's address is not wanted); cqe.res = the new fd."""
    prep_rw(sqe, IORING_OP_ACCEPT, fd, addr, 0, addrlen)
    sqe.accept_flags = flags


@bpf_function
def prep_connect(sqe: Sqe, fd: i32, addr: u64, addrlen: u32) -> None:
    """connect(2): `addr` is the user-memory address of a sockaddr of `addrlen` bytes."""
    prep_rw(sqe, IORING_OP_CONNECT, fd, addr, 0, u64(addrlen))


@bpf_function
def prep_splice(sqe: Sqe, fd_in: i32, off_in: i64, fd_out: i32, off_out: i64, nbytes: u32,
                splice_flags: u32) -> None:
    """splice(2) `nbytes` from `fd_in` at `off_in` to `fd_out` at `off_out`; one side is a pipe,
    whose offset must be -1 (as for a socket: "no offset")."""
    prep_rw(sqe, IORING_OP_SPLICE, fd_out, 0, nbytes, u64(off_out))
    sqe.splice_off_in = u64(off_in)
    sqe.splice_fd_in = fd_in
    sqe.splice_flags = splice_flags


@bpf_function
def prep_openat(sqe: Sqe, dfd: i32, path: u64, flags: u32, mode: u32) -> None:
    """openat(2): `path` is the user-memory address of a NUL-terminated path; cqe.res = the fd."""
    prep_rw(sqe, IORING_OP_OPENAT, dfd, path, mode, 0)
    sqe.open_flags = flags


@bpf_function
def prep_statx(sqe: Sqe, dfd: i32, path: u64, flags: u32, mask: u32, statxbuf: u64) -> None:
    """statx(2) into the 256-byte struct statx at user address `statxbuf`."""
    prep_rw(sqe, IORING_OP_STATX, dfd, path, mask, statxbuf)
    sqe.rw_flags = flags    # the uapi's statx_flags (same 32 bits)


@bpf_function
def prep_shutdown(sqe: Sqe, fd: i32, how: u32) -> None:
    """shutdown(2) of socket `fd`; `how` is SHUT_RD, SHUT_WR or SHUT_RDWR."""
    prep_rw(sqe, IORING_OP_SHUTDOWN, fd, 0, how, 0)


@bpf_function
def prep_link_timeout(sqe: Sqe, ts: u64, flags: u32) -> None:
    """Cancel the request linked before this one (IOSQE_IO_LINK) if it has not completed within
    the Timespec at user address `ts`; the canceled request completes with -ECANCELED."""
    prep_rw(sqe, IORING_OP_LINK_TIMEOUT, -1, ts, 1, 0)
    sqe.timeout_flags = flags


__all__ = ["prep_accept", "prep_connect", "prep_splice", "prep_openat", "prep_statx",
           "prep_shutdown", "prep_link_timeout",
           "AT_FDCWD", "AT_EMPTY_PATH", "AT_SYMLINK_NOFOLLOW", "SHUT_RD", "SHUT_WR", "SHUT_RDWR",
           "SPLICE_F_MOVE", "SPLICE_F_NONBLOCK", "SPLICE_F_MORE", "SPLICE_F_FD_IN_FIXED",
           "STATX_SIZE", "STATX_BASIC_STATS", "O_RDONLY", "O_WRONLY", "O_RDWR", "O_CREAT",
           "O_TRUNC", "O_APPEND", "O_CLOEXEC", "MSG_WAITALL", "MSG_NOSIGNAL", "MSG_DONTWAIT",
           "prep_rw", "prep_nop", "prep_read", "prep_write", "prep_readv", "prep_writev", "prep_fsync",
           "prep_timeout", "prep_send", "prep_recv", "prep_close"]
