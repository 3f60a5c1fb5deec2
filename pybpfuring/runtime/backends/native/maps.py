"""Hash maps whose index lives in native code, so the native loop's map helpers need no Python.

`NativeHashMap` is an `EngineHashMap` with the same behaviour seen from user space and from programs
(values in engine memory at fixed addresses, slots handed out in the same order, iteration in insertion
order, the kernel's flags and errors); only the key index moved into `hmap.c` (`nl_hmap_*`).
"""
from __future__ import annotations

import ctypes
import errno
from collections.abc import Mapping

from pybpfuring.runtime.backends.engine_maps import EngineArrayMap, EngineHashMap, EngineMap, create_map
from pybpfuring.loader.maps import MAP_TYPE_HASH, Map
from pybpfuring.runtime.engine.memory import Memory

_U64 = ctypes.c_uint64


class NativeHashMap(EngineHashMap):
    """BPF_MAP_TYPE_HASH with its key index in native code (see the module docstring)."""

    def __init__(self, spec: Map, memory: Memory, lib: ctypes.CDLL) -> None:
        super().__init__(spec, memory)
        self._lib = lib
        table = lib.nl_hmap_new(self.max_entries, self.key_size, self.value_size, self.base, self.stride)
        if not table:
            raise MemoryError(f"cannot allocate the index of hash map {self.name!r}")
        self.table = int(table)

    def __del__(self) -> None:
        table, self.table = getattr(self, "table", 0), 0
        if table:
            self._lib.nl_hmap_free(table)

    def _check_key(self, key: bytes) -> bytes:
        if len(key) != self.key_size:
            raise ValueError(f"map {self.name!r}: a key has {self.key_size} bytes, not {len(key)}")
        return key

    def lookup_addr(self, key: bytes) -> int:
        return int(self._lib.nl_hmap_lookup(self.table, self._check_key(key)))

    def update(self, key: bytes, value: bytes, flags: int) -> int:
        if len(value) != self.value_size:
            raise ValueError(f"map {self.name!r}: a value has {self.value_size} bytes, not {len(value)}")
        if not 0 <= flags < 1 << 64:
            return -errno.EINVAL
        return int(self._lib.nl_hmap_update(self.table, self._check_key(key), value, flags))

    def delete(self, key: bytes) -> int:
        return int(self._lib.nl_hmap_delete(self.table, self._check_key(key)))

    def raw_keys(self) -> list[bytes]:
        count = int(self._lib.nl_hmap_count(self.table))
        slots = (ctypes.c_uint32 * max(count, 1))()
        n = self._lib.nl_hmap_slots(self.table, slots, count)
        return [ctypes.string_at(self._lib.nl_hmap_key(self.table, slots[i]), self.key_size)
                for i in range(n)]


def create_native_maps(specs: Mapping[str, Map], images: Mapping[str, bytes | None], memory: Memory,
                       lib: ctypes.CDLL) -> dict[str, EngineMap]:
    """As backends.programs.create_maps, with hash maps indexed natively."""
    maps: dict[str, EngineMap] = {}
    for name, spec in specs.items():
        if spec.definition.map_type == MAP_TYPE_HASH:
            maps[name] = NativeHashMap(spec, memory, lib)
        else:
            maps[name] = create_map(spec, memory, images.get(name))
    return maps


def map_descriptors(maps: Mapping[str, EngineMap]) -> list[int]:
    """(base, stride, max_entries, key_size, value_size, kind, table) per map, as nl_set_maps reads
    them: kind 1 array (native), 3 native hash, 2 anything else (Python helpers via the callback)."""
    desc: list[int] = []
    for m in maps.values():
        if type(m) is EngineArrayMap:
            kind, table = 1, 0
        elif isinstance(m, NativeHashMap):
            kind, table = 3, m.table
        else:
            kind, table = 2, 0
        desc += [m.base, m.stride, m.max_entries, m.key_size, m.value_size, kind, table]
    return desc


__all__ = ["NativeHashMap", "create_native_maps", "map_descriptors"]
