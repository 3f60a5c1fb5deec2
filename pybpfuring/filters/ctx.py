"""`struct io_uring_bpf_ctx` as filters see it, and `FilterCtx`, its typed Python view.

Layout checked against the 7.2 guest kernel's own BTF (docs/results/filter_abi_probe_7.2.txt; uapi
`include/uapi/linux/io_uring/bpf_filter.h`). The union after byte 16 is filled per opcode; the kernel
zeroes everything from `pdu_size` on before filling it, so bytes a given opcode does not set read 0.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

CTX_SIZE = 40                     # sizeof(struct io_uring_bpf_ctx) in 7.2
IORING_OP_CONNECT = 16
IORING_OP_OPENAT = 18
IORING_OP_OPENAT2 = 28
IORING_OP_SOCKET = 45
# Bytes of per-opcode data ("pdu") the 7.2 kernel gives filters; what it writes back at registration.
KERNEL_PDU_SIZES = {IORING_OP_CONNECT: 24, IORING_OP_OPENAT: 24, IORING_OP_OPENAT2: 24,
                    IORING_OP_SOCKET: 12}
PDU_OFFSET = 16


@dataclass(frozen=True)
class Field:
    """One readable field: its dotted name, byte offset, size and byte order ('<' or '>')."""

    name: str
    offset: int
    size: int
    order: str = "<"
    union: str | None = None      # which union member it belongs to (None: the fixed header)

    @property
    def bits(self) -> int:
        return self.size * 8


def _fields() -> dict[str, Field]:
    fs = [Field("user_data", 0, 8), Field("opcode", 8, 1), Field("sqe_flags", 9, 1),
          Field("pdu_size", 10, 1),
          Field("socket.family", 16, 4, union="socket"), Field("socket.type", 20, 4, union="socket"),
          Field("socket.protocol", 24, 4, union="socket"),
          Field("open.flags", 16, 8, union="open"), Field("open.mode", 24, 8, union="open"),
          Field("open.resolve", 32, 8, union="open"),
          Field("connect.family", 16, 4, union="connect"),
          # the kernel stores these in network byte order (__be16/__be32); we decode them, so
          # `ctx.connect.port == 443` reads as written (the back end byte-swaps the constant).
          Field("connect.port", 20, 2, ">", union="connect"),
          Field("connect.v4_addr", 24, 4, ">", union="connect")]
    return {f.name: f for f in fs}


FIELDS = _fields()
UNIONS = {"socket", "open", "connect"}
# Which union member each opcode fills (reading another is allowed but sees that opcode's bytes).
UNION_FOR_OPCODE = {IORING_OP_SOCKET: "socket", IORING_OP_OPENAT: "open", IORING_OP_OPENAT2: "open",
                    IORING_OP_CONNECT: "connect"}


class _Part:
    """`ctx.open`, `ctx.socket`, `ctx.connect`: a view of the union through one member."""

    def __init__(self, data: bytes, union: str):
        self._data = data
        self._union = union

    def __getattr__(self, name: str) -> int:
        f = FIELDS.get(f"{self._union}.{name}")
        if f is None:
            raise AttributeError(f"ctx.{self._union} has no field {name!r}")
        return read_field(self._data, f)


def read_field(data: bytes, f: Field) -> int:
    return int.from_bytes(data[f.offset:f.offset + f.size], "little" if f.order == "<" else "big")


class FilterCtx:
    """A read-only view of one `struct io_uring_bpf_ctx` (40 bytes), for running a filter as Python.

    `FilterCtx(user_data=.., opcode=.., socket=(family, type, protocol))` or `FilterCtx.from_bytes(b)`.
    """

    __slots__ = ("_data",)

    def __init__(self, *, user_data: int = 0, opcode: int = 0, sqe_flags: int = 0, pdu_size: int = 0,
                 socket: tuple[int, int, int] | None = None, open: tuple[int, int, int] | None = None,
                 connect: tuple[int, int, int] | None = None):
        b = bytearray(CTX_SIZE)
        struct.pack_into("<QBBB", b, 0, user_data, opcode, sqe_flags, pdu_size)
        if socket is not None:
            struct.pack_into("<III", b, PDU_OFFSET, *socket)
        if open is not None:
            struct.pack_into("<QQQ", b, PDU_OFFSET, *open)
        if connect is not None:
            struct.pack_into("<I", b, 16, connect[0])
            struct.pack_into(">HxxI", b, 20, connect[1], connect[2])
        self._data = bytes(b)

    @classmethod
    def from_bytes(cls, data: bytes) -> "FilterCtx":
        """A view of a context as the kernel lays it out (exactly CTX_SIZE bytes, else ValueError)."""
        if len(data) != CTX_SIZE:
            raise ValueError(f"a filter context is {CTX_SIZE} bytes, not {len(data)}")
        obj = cls.__new__(cls)
        obj._data = bytes(data)
        return obj

    def to_bytes(self) -> bytes:
        """The context's CTX_SIZE bytes, as the kernel would pass them to the filter."""
        return self._data

    def __getattr__(self, name: str):
        if name in UNIONS:
            return _Part(self._data, name)
        f = FIELDS.get(name)
        if f is None:
            raise AttributeError(f"FilterCtx has no field {name!r}")
        return read_field(self._data, f)

    def __repr__(self) -> str:
        return (f"FilterCtx(user_data={self.user_data:#x}, opcode={self.opcode}, "
                f"sqe_flags={self.sqe_flags:#x}, pdu={self._data[16:40].hex()})")
