"""BPF maps of the emulated backend: plain process memory with real addresses.

Each map's values live in one region of the engine's memory table, so `map_lookup_elem` hands the
program a real pointer it can load from and store to (checked like every access). User space sees
the same bytes through the dict-like interface (`arr[0]`, `arr[0] = 5`, `k in h`, iteration), with
keys and values decoded by the loader's BTF codecs (ints where the BTF type is an int of that size,
else bytes).

Semantics follow the kernel's: an array has every index present and zeroed, cannot delete, and
refuses BPF_NOEXIST; a hash map holds at most max_entries keys (-E2BIG when full).
"""
from __future__ import annotations

import errno
from collections.abc import Iterator
from typing import Any

from pybpfuring.loader.maps import MAP_TYPE_ARRAY, MAP_TYPE_HASH, Map, MapError, MissingKey
from pybpfuring.runtime.engine.memory import Memory

BPF_ANY, BPF_NOEXIST, BPF_EXIST = 0, 1, 2


def _stride(value_size: int) -> int:
    return max(8, (value_size + 7) // 8 * 8)  # the kernel rounds array values up to 8 bytes


class EngineMap:
    """Common part: definition, codecs, one memory region of max_entries value slots."""

    kind = "map"

    def __init__(self, spec: Map, memory: Memory, init: bytes | None = None) -> None:
        d = spec.definition
        self.name = d.name
        self.key_size, self.value_size, self.max_entries = d.key_size, d.value_size, d.max_entries
        self._key, self._value = spec.key, spec.value
        self.stride = _stride(d.value_size)
        self.region = memory.allocate(self.stride * d.max_entries, f"map {d.name}", init=init)
        self.base = self.region.start
        self._view = self.region.view

    @property
    def handle(self) -> int:
        """The value ld_imm64 of this map loads: what the program passes to map helpers."""
        return self.base

    def _slot_bytes(self, slot: int) -> bytes:
        off = slot * self.stride
        return bytes(self._view[off:off + self.value_size])

    def _store_slot(self, slot: int, raw: bytes) -> None:
        off = slot * self.stride
        self._view[off:off + self.value_size] = raw

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.name!r} key={self.key_size}B value={self.value_size}B "
                f"max_entries={self.max_entries} at {self.base:#x}>")

    # Implemented by the two kinds (used by helpers with raw key/value bytes).
    def lookup_addr(self, key: bytes) -> int:
        raise NotImplementedError

    def update(self, key: bytes, value: bytes, flags: int) -> int:
        raise NotImplementedError

    def delete(self, key: bytes) -> int:
        raise NotImplementedError

    def raw_keys(self) -> list[bytes]:
        raise NotImplementedError

    # --- user-space view (MapDef.bind target) ---------------------------------------------------
    def __getitem__(self, key: Any) -> Any:
        addr = self.lookup_addr(self._key.encode(key))
        if not addr:
            raise MissingKey(f"map {self.name!r} has no key {key!r}")
        return self._value.decode(self._slot_bytes((addr - self.base) // self.stride))

    def get(self, key: Any, default: Any = None) -> Any:
        try:
            return self[key]
        except MissingKey:
            return default

    def __setitem__(self, key: Any, value: Any) -> None:
        err = self.update(self._key.encode(key), self._value.encode(value), BPF_ANY)
        if err:
            raise MapError(f"map {self.name!r}: cannot store key {key!r}: {errno.errorcode[-err]}"
                           + (" (the map is full)" if err == -errno.E2BIG else ""))

    def __delitem__(self, key: Any) -> None:
        err = self.delete(self._key.encode(key))
        if err == -errno.EINVAL:
            raise MapError(f"map {self.name!r} is an array: its elements cannot be deleted")
        if err:
            raise MissingKey(f"map {self.name!r} has no key {key!r}")

    def __contains__(self, key: Any) -> bool:
        return bool(self.lookup_addr(self._key.encode(key)))

    def __iter__(self) -> Iterator[Any]:
        return (self._key.decode(k) for k in self.raw_keys())

    def __len__(self) -> int:
        return len(self.raw_keys())

    def keys(self) -> list[Any]:
        return list(self)

    def items(self) -> list[tuple[Any, Any]]:
        return [(k, self[k]) for k in self]

    def values(self) -> list[Any]:
        return [v for _, v in self.items()]


class EngineArrayMap(EngineMap):
    """BPF_MAP_TYPE_ARRAY (u32 keys 0..max_entries-1, always present)."""

    kind = "array"

    def _index(self, key: bytes) -> int:
        return int.from_bytes(key[:4], "little")

    def lookup_addr(self, key: bytes) -> int:
        index = self._index(key)
        return self.base + index * self.stride if index < self.max_entries else 0

    def lookup_index(self, index: int) -> int:
        """lookup by an already-loaded u32 index (the helper's fast path)."""
        return self.base + index * self.stride if index < self.max_entries else 0

    def update(self, key: bytes, value: bytes, flags: int) -> int:
        index = self._index(key)
        if flags > BPF_EXIST:
            return -errno.EINVAL
        if index >= self.max_entries:
            return -errno.E2BIG
        if flags == BPF_NOEXIST:
            return -errno.EEXIST  # every element of an array exists
        self._store_slot(index, value)
        return 0

    def delete(self, key: bytes) -> int:
        return -errno.EINVAL

    def raw_keys(self) -> list[bytes]:
        return [i.to_bytes(4, "little") for i in range(self.max_entries)]


class EngineHashMap(EngineMap):
    """BPF_MAP_TYPE_HASH: preallocated value slots (addresses stay put while a key lives)."""

    kind = "hash"

    def __init__(self, spec: Map, memory: Memory) -> None:
        super().__init__(spec, memory)
        self._slots: dict[bytes, int] = {}
        self._free = list(range(self.max_entries - 1, -1, -1))

    def lookup_addr(self, key: bytes) -> int:
        slot = self._slots.get(key)
        return 0 if slot is None else self.base + slot * self.stride

    def update(self, key: bytes, value: bytes, flags: int) -> int:
        if flags > BPF_EXIST:
            return -errno.EINVAL
        slot = self._slots.get(key)
        if slot is None:
            if flags == BPF_EXIST:
                return -errno.ENOENT
            if not self._free:
                return -errno.E2BIG
            slot = self._slots[key] = self._free.pop()
        elif flags == BPF_NOEXIST:
            return -errno.EEXIST
        self._store_slot(slot, value)
        return 0

    def delete(self, key: bytes) -> int:
        slot = self._slots.pop(key, None)
        if slot is None:
            return -errno.ENOENT
        self._store_slot(slot, bytes(self.value_size))
        self._free.append(slot)
        return 0

    def raw_keys(self) -> list[bytes]:
        return list(self._slots)


def create_map(spec: Map, memory: Memory, init: bytes | None = None) -> EngineMap:
    """An engine map for a loader map definition (array, hash, or a global data section)."""
    d = spec.definition
    if d.map_type == MAP_TYPE_ARRAY:
        return EngineArrayMap(spec, memory, init)
    if d.map_type == MAP_TYPE_HASH:
        return EngineHashMap(spec, memory)
    raise MapError(f"map {d.name!r}: the emulated backend supports array and hash maps, not type "
                   f"{d.map_type}")
