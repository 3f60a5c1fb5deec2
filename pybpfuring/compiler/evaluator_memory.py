"""The reference evaluator's memory model: references into byte buffers, BPF maps with the
language's semantics, and user memory.

Structs and arrays are byte buffers laid out exactly as the compiled code lays them out (so a
struct copied into a map, or read from user memory, has the same bytes in both worlds); a
reference is a buffer and an offset into it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import PyBpfUringError
from ..lang.maps import BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_HASH
from ..lang.types import BoolType, IntType, ValueType

E2BIG = 7
ENOENT = 2
EFAULT = 14


class EvaluationError(PyBpfUringError):
    """The evaluator cannot go on: a program the compiler should not have accepted, or a helper
    the caller gave no model of."""


@dataclass(frozen=True)
class Ref:
    """A reference to `buf[offset:]`: what struct and array values are in the language."""

    buf: bytearray
    offset: int = 0

    def at(self, delta: int) -> "Ref":
        return Ref(self.buf, self.offset + delta)

    def read(self, size: int) -> bytes:
        return bytes(self.buf[self.offset:self.offset + size])

    def write(self, data: bytes) -> None:
        if self.offset + len(data) > len(self.buf):
            raise EvaluationError(f"write of {len(data)} bytes at offset {self.offset} runs past an "
                                  f"object of {len(self.buf)} bytes")
        self.buf[self.offset:self.offset + len(data)] = data

    def load(self, t: ValueType) -> int:
        return decode_scalar(self.read(t.size), t)

    def store(self, t: ValueType, value: int) -> None:
        self.write(encode_scalar(value, t))


def decode_scalar(raw: bytes, t: ValueType) -> int:
    if isinstance(t, BoolType):
        return int(raw[0] != 0)  # the compiled code tests the byte for non-zero, as C's _Bool load
    assert isinstance(t, IntType)
    return int.from_bytes(raw, "little", signed=t.signed)


def encode_scalar(value: int, t: ValueType) -> bytes:
    if isinstance(t, BoolType):
        return bytes([1 if value else 0])
    assert isinstance(t, IntType)
    return (value & ((1 << t.bits) - 1)).to_bytes(t.size, "little")


def to_bytes(value: Any, t: ValueType) -> bytes:
    """A Python-side key or value (int for scalars, bytes for aggregates) as the map stores it."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        if len(raw) != t.size:
            raise EvaluationError(f"expected {t.size} bytes for a {t.name}, got {len(raw)}")
        return raw
    if isinstance(t, (IntType, BoolType)):
        return encode_scalar(int(value), t)
    raise EvaluationError(f"a {t.name} key or value must be given as {t.size} bytes")


def from_bytes(raw: bytes, t: ValueType) -> int | bytes:
    """The Python view the loader gives too: ints for integer keys/values, bytes otherwise."""
    if isinstance(t, (IntType, BoolType)):
        return decode_scalar(raw, t)
    return bytes(raw)


class EvalMap:
    """A map as the program sees it. Array maps hold every key 0..n-1 (zeroed); hash maps hold
    what was stored, up to max_entries. Values are buffers so references into them stay live."""

    def __init__(self, name: str, map_type: int, key_type: ValueType, value_type: ValueType,
                 max_entries: int):
        if map_type not in (BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_HASH):
            raise EvaluationError(f"map {name!r}: map type {map_type} is not modelled")
        self.name = name
        self.map_type = map_type
        self.key_type = key_type
        self.value_type = value_type
        self.max_entries = max_entries
        self.entries: dict[bytes, bytearray] = {}
        if map_type == BPF_MAP_TYPE_ARRAY:
            for k in range(max_entries):
                self.entries[encode_scalar(k, key_type)] = bytearray(value_type.size)

    # ---- what programs do (bpf_map_*_elem) ----
    def lookup(self, key: bytes) -> Ref | None:
        buf = self.entries.get(key)
        return Ref(buf) if buf is not None else None

    def update(self, key: bytes, value: bytes) -> int:
        """bpf_map_update_elem(BPF_ANY): 0, or -E2BIG (full hash map, or array index too big)."""
        if key in self.entries:
            if self.map_type == BPF_MAP_TYPE_ARRAY:
                self.entries[key][:] = value  # array elements are updated in place
            else:
                self.entries[key] = bytearray(value)  # the kernel swaps in a new element
            return 0
        if self.map_type == BPF_MAP_TYPE_ARRAY or len(self.entries) >= self.max_entries:
            return -E2BIG
        self.entries[key] = bytearray(value)
        return 0

    def delete(self, key: bytes) -> int:
        if self.map_type == BPF_MAP_TYPE_ARRAY:
            raise EvaluationError(f"map {self.name!r}: array map entries cannot be deleted")
        return 0 if self.entries.pop(key, None) is not None else -ENOENT

    # ---- what user space sees ----
    def fill(self, contents: dict[Any, Any]) -> None:
        for k, v in contents.items():
            kb = to_bytes(k, self.key_type)
            if self.map_type == BPF_MAP_TYPE_ARRAY and kb not in self.entries:
                raise EvaluationError(f"map {self.name!r}: key {k!r} is out of range")
            if self.update(kb, to_bytes(v, self.value_type)) < 0:
                raise EvaluationError(f"map {self.name!r} is full (max_entries={self.max_entries})")

    def snapshot(self) -> dict[int | bytes, int | bytes]:
        return {from_bytes(k, self.key_type): from_bytes(bytes(v), self.value_type)
                for k, v in self.entries.items()}


class UserMemory:
    """User memory as `{address: bytes}` regions; copy_from_user/copy_to_user reach only these."""

    def __init__(self, regions: dict[int, bytes | bytearray] | None):
        self.regions = {int(a): bytearray(b) for a, b in (regions or {}).items()}

    def _find(self, addr: int, size: int) -> tuple[bytearray, int] | None:
        for base, buf in self.regions.items():
            if base <= addr and addr + size <= base + len(buf):
                return buf, addr - base
        return None

    def read(self, addr: int, size: int) -> bytes | None:
        found = self._find(addr, size)
        if found is None:
            return None
        buf, off = found
        return bytes(buf[off:off + size])

    def write(self, addr: int, data: bytes) -> bool:
        found = self._find(addr, len(data))
        if found is None:
            return False
        buf, off = found
        buf[off:off + len(data)] = data
        return True

    def snapshot(self) -> dict[int, bytes]:
        return {a: bytes(b) for a, b in self.regions.items()}
