"""prep_* functions: fill one SQE for one operation, in liburing's flat style.

Each takes the SQE first (from `IoUring.get_sqe()`, which zeroes it) and sets only the fields its
opcode uses, so `sqe.user_data` and `sqe.flags` may be set before or after. Memory the kernel will
use later (buffers, iovec arrays, timespecs, paths) is pinned onto the SQE; the ring keeps it alive
until the request's CQE has been reaped, so callers may drop their own references at once.

Buffers are any object with the buffer protocol (bytearray, memoryview, mmap, array.array, ctypes
arrays; `bytes` only where the kernel just reads). A `nbytes` argument transfers fewer bytes than the
buffer holds. An `offset` of -1 means "the file's current position" (IORING_FEAT_RW_CUR_POS).
"""
from __future__ import annotations

import ctypes
import os
import socket
import sys
from collections.abc import Sequence
from typing import Any

from pybpfuring.errors import ArgumentError
from pybpfuring.abi import uring as C
from .buffers import pin
from pybpfuring.abi.structs import Iovec, Sqe, Timespec

AT_FDCWD = -100
_from_buffer = ctypes.c_char.from_buffer
_addressof = ctypes.addressof
_U32 = 0xFFFFFFFF
_U64 = 0xFFFFFFFFFFFFFFFF


def _keep(sqe: Sqe, obj: object) -> None:
    """Pin `obj` to the request in `sqe` (the ring moves it to its in-flight table on submit)."""
    keep = getattr(sqe, "_keep", None)
    if keep is None:
        sqe._keep = [obj]
    else:
        keep.append(obj)


_S32_MIN, _S32_MAX = -(1 << 31), (1 << 31) - 1


def _fd(fd: Any) -> int:
    if type(fd) is not int:
        if not hasattr(fd, "fileno"):
            raise TypeError(f"fd must be an int or have fileno(), not {type(fd).__name__}")
        fd = fd.fileno()
    if not _S32_MIN <= fd <= _S32_MAX:   # sqe->fd is an __s32: a larger int would wrap
        raise ArgumentError(f"fd {fd} does not fit the SQE's 32-bit fd field")
    return fd


def _field(value: int, bits: int, what: str) -> int:
    """An unsigned SQE field: refused (never wrapped, as ctypes would) outside 0..2**bits-1."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << bits:
        raise ArgumentError(f"{what} must be an int in 0..{(1 << bits) - 1}, not {value!r}")
    return value


def _offset(offset: int) -> int:
    """A file offset: 0..2**64-1, or -1 for the file's current position."""
    if not isinstance(offset, int) or isinstance(offset, bool) or not -1 <= offset <= _U64:
        raise ArgumentError(f"offset must be -1 (current position) or 0..{_U64}, not {offset!r}")
    return offset & _U64


def _length(nbytes: int | None, available: int, what: str) -> int:
    if nbytes is None:
        nbytes = available
    elif not 0 <= nbytes <= available:
        raise ValueError(f"nbytes={nbytes} but the {what} holds {available} bytes")
    if nbytes > _U32:
        raise ValueError(f"{what} of {nbytes} bytes exceeds io_uring's 32-bit length")
    return nbytes


def _rw(sqe: Sqe, opcode: int, fd: int, addr: int, length: int, offset: int) -> None:
    sqe.opcode = opcode
    sqe.fd = fd
    sqe.off = _offset(offset)
    sqe.addr = addr
    sqe.len = length


def _buffer_rw(sqe: Sqe, opcode: int, fd: Any, buf: Any, nbytes: int | None, offset: int,
               writable: bool) -> None:
    # The per-block hot path of file copies: one call for the common bytearray case, the rest inline.
    if type(buf) is bytearray and buf:
        anchor = _from_buffer(buf)  # holds a buffer export: the bytearray cannot move until unpinned
        addr, size = _addressof(anchor), len(buf)
    else:
        addr, size, anchor = pin(buf, writable=writable)
    if nbytes is None:
        nbytes = size
        if size > _U32:
            _length(None, size, "buffer")
    elif not 0 <= nbytes <= size:
        _length(nbytes, size, "buffer")
    if type(fd) is not int or not _S32_MIN <= fd <= _S32_MAX:
        fd = _fd(fd)
    sqe.opcode = opcode
    sqe.fd = fd
    sqe.off = offset & _U64 if type(offset) is int and -1 <= offset <= _U64 else _offset(offset)
    sqe.addr = addr
    sqe.len = nbytes
    keep = getattr(sqe, "_keep", None)
    if keep is None:
        sqe._keep = [anchor]
    else:
        keep.append(anchor)


def prep_nop(sqe: Sqe) -> None:
    """IORING_OP_NOP: a request that does nothing and completes with res 0."""
    _rw(sqe, C.IORING_OP_NOP, -1, 0, 0, 0)


def prep_read(sqe: Sqe, fd: Any, buf: Any, offset: int = -1, *, nbytes: int | None = None) -> None:
    """Read into `buf` (like os.preadv into one buffer); cqe.res = bytes read."""
    _buffer_rw(sqe, C.IORING_OP_READ, fd, buf, nbytes, offset, writable=True)


def prep_write(sqe: Sqe, fd: Any, buf: Any, offset: int = -1, *, nbytes: int | None = None) -> None:
    """Write `buf` (bytes allowed); cqe.res = bytes written."""
    _buffer_rw(sqe, C.IORING_OP_WRITE, fd, buf, nbytes, offset, writable=False)


def _vectored(sqe: Sqe, opcode: int, fd: Any, buffers: Sequence[Any], offset: int, flags: int,
              writable: bool) -> None:
    pinned = [pin(buf, writable=writable, what=f"buffer {i}") for i, buf in enumerate(buffers)]
    iovecs = (Iovec * len(pinned))(*[(addr, size) for addr, size, _ in pinned])
    _rw(sqe, opcode, _fd(fd), ctypes.addressof(iovecs), len(pinned), offset)
    sqe.rw_flags = _field(flags, 32, "flags")
    _keep(sqe, iovecs)
    for _, _, keepalive in pinned:
        _keep(sqe, keepalive)


def prep_readv(sqe: Sqe, fd: Any, buffers: Sequence[Any], offset: int = -1,
               flags: int = 0) -> None:
    """Scatter read into `buffers` in order; `flags` are RWF_* (preadv2)."""
    _vectored(sqe, C.IORING_OP_READV, fd, buffers, offset, flags, writable=True)


def prep_writev(sqe: Sqe, fd: Any, buffers: Sequence[Any], offset: int = -1,
                flags: int = 0) -> None:
    """Gather write of `buffers` in order; `flags` are RWF_* (pwritev2)."""
    _vectored(sqe, C.IORING_OP_WRITEV, fd, buffers, offset, flags, writable=False)


def prep_read_fixed(sqe: Sqe, fd: Any, buf: Any, offset: int, buf_index: int, *,
                    nbytes: int | None = None) -> None:
    """Read into registered buffer `buf_index`; `buf` is that buffer or a slice of it (its address
    and length say where in the registered region the data goes)."""
    _buffer_rw(sqe, C.IORING_OP_READ_FIXED, fd, buf, nbytes, offset, writable=True)
    sqe.buf_index = _field(buf_index, 16, "buf_index")


def prep_write_fixed(sqe: Sqe, fd: Any, buf: Any, offset: int, buf_index: int, *,
                     nbytes: int | None = None) -> None:
    """Write from registered buffer `buf_index` (`buf` is it or a slice of it)."""
    _buffer_rw(sqe, C.IORING_OP_WRITE_FIXED, fd, buf, nbytes, offset, writable=False)
    sqe.buf_index = _field(buf_index, 16, "buf_index")


def prep_fsync(sqe: Sqe, fd: Any, flags: int = 0) -> None:
    """fsync (or fdatasync with IORING_FSYNC_DATASYNC)."""
    _rw(sqe, C.IORING_OP_FSYNC, _fd(fd), 0, 0, 0)
    sqe.fsync_flags = _field(flags, 32, "flags")


def _timespec(ts: Timespec | float) -> Timespec:
    if isinstance(ts, Timespec):
        return ts
    if isinstance(ts, int | float) and not isinstance(ts, bool):
        return Timespec.from_seconds(ts)
    raise TypeError(f"a timeout is a Timespec or seconds (int/float), not {type(ts).__name__}")


def prep_timeout(sqe: Sqe, ts: Timespec | float, count: int = 0, flags: int = 0) -> None:
    """Complete after `ts` (res -ETIME) or once `count` other CQEs were posted (res 0)."""
    spec = _timespec(ts)
    _rw(sqe, C.IORING_OP_TIMEOUT, -1, ctypes.addressof(spec), 1, _field(count, 64, "count"))
    sqe.timeout_flags = _field(flags, 32, "flags")
    _keep(sqe, spec)


def prep_link_timeout(sqe: Sqe, ts: Timespec | float, flags: int = 0) -> None:
    """Cancel the previous (IOSQE_IO_LINK-ed) request if it has not completed within `ts`."""
    spec = _timespec(ts)
    _rw(sqe, C.IORING_OP_LINK_TIMEOUT, -1, ctypes.addressof(spec), 1, 0)
    sqe.timeout_flags = _field(flags, 32, "flags")
    _keep(sqe, spec)


def prep_send(sqe: Sqe, sockfd: Any, buf: Any, flags: int = 0, *,
              nbytes: int | None = None) -> None:
    """send(2) of `buf` with MSG_* `flags`."""
    _buffer_rw(sqe, C.IORING_OP_SEND, sockfd, buf, nbytes, 0, writable=False)
    sqe.msg_flags = _field(flags, 32, "flags")


def prep_recv(sqe: Sqe, sockfd: Any, buf: Any, flags: int = 0, *,
              nbytes: int | None = None) -> None:
    """recv(2) into `buf` with MSG_* `flags`."""
    _buffer_rw(sqe, C.IORING_OP_RECV, sockfd, buf, nbytes, 0, writable=True)
    sqe.msg_flags = _field(flags, 32, "flags")


def prep_close(sqe: Sqe, fd: Any) -> None:
    """close(2) of `fd` (an int, or an object with `fileno()`)."""
    _rw(sqe, C.IORING_OP_CLOSE, _fd(fd), 0, 0, 0)


def prep_openat(sqe: Sqe, dfd: int, path: str | bytes | os.PathLike[Any], flags: int = 0,
                mode: int = 0) -> None:
    """openat(2); cqe.res is the new fd. Use AT_FDCWD (-100) for paths relative to the cwd."""
    encoded = os.fsencode(path)
    if b"\0" in encoded:
        raise ValueError("path must not contain NUL bytes")
    c_path = ctypes.create_string_buffer(encoded)  # NUL-terminated, pinned until completion
    _rw(sqe, C.IORING_OP_OPENAT, _fd(dfd), ctypes.addressof(c_path), _field(mode, 32, "mode"), 0)
    sqe.open_flags = _field(flags, 32, "flags")
    _keep(sqe, c_path)


def prep_poll_add(sqe: Sqe, fd: Any, poll_mask: int) -> None:
    """One-shot poll for `poll_mask` (select.POLLIN, ...); cqe.res is the ready mask."""
    _rw(sqe, C.IORING_OP_POLL_ADD, _fd(fd), 0, 0, 0)
    _field(poll_mask, 32, "poll_mask")
    if sys.byteorder == "big":  # the uapi stores the 32-bit mask word-swapped on big endian
        poll_mask = ((poll_mask << 16) | (poll_mask >> 16)) & _U32
    sqe.poll32_events = poll_mask


def prep_cancel(sqe: Sqe, user_data: int, flags: int = 0) -> None:
    """Cancel the request(s) whose user_data is `user_data` (IORING_ASYNC_CANCEL_* flags widen it)."""
    _rw(sqe, C.IORING_OP_ASYNC_CANCEL, -1, _field(user_data, 64, "user_data"), 0, 0)
    sqe.cancel_flags = _field(flags, 32, "flags")


def _optional_buffer(sqe: Sqe, buf: Any, writable: bool, what: str) -> int:
    """The pinned address of `buf`, or 0 for None (the kernel then skips that argument)."""
    if buf is None:
        return 0
    addr, _, keepalive = pin(buf, writable=writable, what=what)
    _keep(sqe, keepalive)
    return addr


def prep_accept(sqe: Sqe, fd: Any, addr: Any = None, addrlen: Any = None, flags: int = 0) -> None:
    """accept4(2) on listening socket `fd`; cqe.res is the new fd. `addr` (a writable buffer for the
    peer's sockaddr) and `addrlen` (a ctypes.c_uint32 holding its size) may both be None."""
    if (addr is None) != (addrlen is None):
        raise ArgumentError("prep_accept: pass both addr and addrlen, or neither")
    a = _optional_buffer(sqe, addr, True, "addr")
    n = _optional_buffer(sqe, addrlen, True, "addrlen")
    _rw(sqe, C.IORING_OP_ACCEPT, _fd(fd), a, 0, n)
    sqe.accept_flags = _field(flags, 32, "flags")


def prep_connect(sqe: Sqe, fd: Any, addr: Any, addrlen: int | None = None) -> None:
    """connect(2) to the raw sockaddr in `addr` (bytes, e.g. from `sockaddr_in`)."""
    a, size, keepalive = pin(addr, writable=False, what="addr")
    _keep(sqe, keepalive)
    _rw(sqe, C.IORING_OP_CONNECT, _fd(fd), a, 0, _length(addrlen, size, "addr"))


def sockaddr_in(host: str, port: int) -> bytes:
    """A struct sockaddr_in (16 bytes) for IPv4 `host`:`port`, for prep_connect."""
    return (socket.AF_INET.to_bytes(2, sys.byteorder) + _field(port, 16, "port").to_bytes(2, "big")
            + socket.inet_aton(host) + bytes(8))


def prep_splice(sqe: Sqe, fd_in: Any, off_in: int, fd_out: Any, off_out: int, nbytes: int,
                splice_flags: int = 0) -> None:
    """splice(2) `nbytes` from `fd_in` at `off_in` to `fd_out` at `off_out`; one of them is a pipe,
    and a pipe's (or socket's) offset is -1."""
    _rw(sqe, C.IORING_OP_SPLICE, _fd(fd_out), 0, _field(nbytes, 32, "nbytes"), off_out)
    sqe.splice_off_in = _offset(off_in)
    sqe.splice_fd_in = _fd(fd_in)
    sqe.splice_flags = _field(splice_flags, 32, "splice_flags")


STATX_SIZE = 256   # sizeof(struct statx): the buffer prep_statx fills


def prep_statx(sqe: Sqe, dfd: Any, path: str | bytes | os.PathLike[Any], flags: int, mask: int,
               statxbuf: Any) -> None:
    """statx(2) of `path` (relative to `dfd`, or AT_FDCWD) into `statxbuf` (>= 256 writable bytes;
    stx_size is the u64 at byte 40)."""
    encoded = os.fsencode(path)
    if b"\0" in encoded:
        raise ValueError("path must not contain NUL bytes")
    c_path = ctypes.create_string_buffer(encoded)
    addr, size, keepalive = pin(statxbuf, writable=True, what="statxbuf")
    if size < STATX_SIZE:
        raise ArgumentError(f"statxbuf holds {size} bytes; struct statx needs {STATX_SIZE}")
    _rw(sqe, C.IORING_OP_STATX, _fd(dfd), ctypes.addressof(c_path), _field(mask, 32, "mask"), addr)
    sqe.statx_flags = _field(flags, 32, "flags")
    _keep(sqe, c_path)
    _keep(sqe, keepalive)


def prep_shutdown(sqe: Sqe, fd: Any, how: int) -> None:
    """shutdown(2): `how` is socket.SHUT_RD, SHUT_WR or SHUT_RDWR."""
    _rw(sqe, C.IORING_OP_SHUTDOWN, _fd(fd), 0, _field(how, 32, "how"), 0)
