"""The rules of liburing's test/cbpf_filter.c written as @iouring_filter functions. Its filters are
hand-written `sock_filter` arrays; HAND_COUNT is their length (instructions), the figure ours are
compared with (test_handwritten.py, docs/filters.md)."""
import os
import socket

from pybpfuring.filters import iouring_filter

IORING_OP_NOP, IORING_OP_OPENAT, IORING_OP_OPENAT2, IORING_OP_SOCKET = 0, 18, 28, 45
RESOLVE_IN_ROOT = 0x10


@iouring_filter(IORING_OP_NOP)
def allow_all(ctx) -> bool:
    return True


@iouring_filter(IORING_OP_NOP)
def deny_all(ctx) -> bool:
    return False


@iouring_filter(IORING_OP_SOCKET)
def allow_inet_only(ctx) -> bool:
    return ctx.socket.family == socket.AF_INET


@iouring_filter(IORING_OP_SOCKET)
def allow_tcp_only(ctx) -> bool:
    return ctx.socket.type & 0xF == socket.SOCK_STREAM


@iouring_filter(IORING_OP_OPENAT)
def deny_o_creat(ctx) -> bool:
    return not ctx.open.flags & os.O_CREAT


@iouring_filter(IORING_OP_OPENAT2)
def deny_resolve_in_root(ctx) -> bool:
    return not ctx.open.resolve & RESOLVE_IN_ROOT


# Instructions in liburing's hand-written version of each rule (test/cbpf_filter.c). Those read
# only the low 32 bits of the 64-bit open fields; ours read the half a constant can touch.
HAND_COUNT = {allow_all: 1, deny_all: 1, allow_inet_only: 4, allow_tcp_only: 5, deny_o_creat: 5,
              deny_resolve_in_root: 5}
