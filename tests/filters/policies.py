"""Filters used by the differential tests (host and guest): each is its own oracle when run as Python."""
from __future__ import annotations

import os
import socket

from pybpfuring.filters import iouring_filter

IORING_OP_NOP = 0
IORING_OP_CONNECT = 16
IORING_OP_OPENAT = 18
IORING_OP_OPENAT2 = 28
IORING_OP_SOCKET = 45
IOSQE_IO_DRAIN = 1 << 1
IOSQE_ASYNC = 1 << 4
RESOLVE_IN_ROOT = 0x10
BIG = 0x1234_5678_9ABC_DEF0
SOCK_TYPE_MASK = 0xF


@iouring_filter(IORING_OP_SOCKET)
def sockets(ctx) -> bool:
    """Local and IPv4 sockets only; stream or datagram; no async punt for raw protocols."""
    if ctx.socket.family not in (socket.AF_UNIX, socket.AF_INET, socket.AF_NETLINK):
        return False
    kind = ctx.socket.type & SOCK_TYPE_MASK
    if kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        return ctx.socket.protocol < 256 or ctx.sqe_flags & IOSQE_ASYNC == 0
    return ctx.user_data == BIG


@iouring_filter(IORING_OP_OPENAT, IORING_OP_OPENAT2)
def opens(ctx) -> bool:
    """No O_CREAT unless read-only; no RESOLVE_IN_ROOT; modes at most 0o755."""
    flags = ctx.open.flags
    if flags & os.O_CREAT and (flags & os.O_ACCMODE) != os.O_RDONLY:
        return False
    if ctx.open.resolve & RESOLVE_IN_ROOT:
        return False
    return ctx.open.mode <= 0o755 or not flags & (os.O_CREAT | os.O_TMPFILE)


@iouring_filter(IORING_OP_NOP)
def nops(ctx) -> bool:
    """64-bit comparisons of user_data (halves), a shift across the halves, xor, bit tests."""
    u = ctx.user_data
    if u >> 60 == 0xF:
        return False
    if 0x1_0000_0000 <= u < 0x2_0000_0005 or u in (1, 2, 3, BIG):
        return True
    if (u ^ BIG) & 0xFFFF == 0:
        return not ctx.sqe_flags & IOSQE_IO_DRAIN
    return (u >> 20) & 0xFFF >= 0x800 and ctx.opcode == IORING_OP_NOP


@iouring_filter(IORING_OP_CONNECT)
def connects(ctx) -> bool:
    """Port and IPv4 address in network byte order, decoded by the filter."""
    if ctx.connect.family != socket.AF_INET:
        return ctx.connect.family == socket.AF_UNIX
    return ctx.connect.port in (80, 443) and ctx.connect.v4_addr >> 24 == 127


ALL = [sockets, opens, nops, connects]
