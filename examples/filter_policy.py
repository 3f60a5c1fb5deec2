"""An administrator's io_uring policy: what a confined program may ask io_uring for.

    pybpfuring disasm examples/filter_policy.py            # the classic BPF of each filter
    pybpfuring sandbox --policy examples/filter_policy.py --deny-rest -- python3 examples/filter_confined.py

Reads, writes, NOPs and BPF-driven I/O stay allowed (each has a filter that accepts it); files may
only be opened read-only; sockets only of the local and IPv4 families; every other opcode is denied
with --deny-rest (the request completes with -EACCES).
"""
from __future__ import annotations

import os
import socket

from pybpfuring.filters import iouring_filter

IORING_OP_NOP, IORING_OP_READ, IORING_OP_WRITE = 0, 22, 23
IORING_OP_OPENAT, IORING_OP_CLOSE, IORING_OP_SOCKET = 18, 19, 45


@iouring_filter(IORING_OP_NOP, IORING_OP_READ, IORING_OP_WRITE, IORING_OP_CLOSE)
def plain_io(ctx) -> bool:
    """Always allowed: the filter exists so that --deny-rest does not deny these opcodes."""
    return True


@iouring_filter(IORING_OP_OPENAT)
def read_only_opens(ctx) -> bool:
    """No file is created or opened for writing through io_uring."""
    return ctx.open.flags & (os.O_ACCMODE | os.O_CREAT | os.O_TRUNC) == os.O_RDONLY


@iouring_filter(IORING_OP_SOCKET)
def local_sockets(ctx) -> bool:
    return ctx.socket.family in (socket.AF_UNIX, socket.AF_INET)


POLICY = [plain_io, read_only_opens, local_sockets]
