"""BPF maps declared at module level: `arr = ArrayMap(u64, 256)`, `h = HashMap(u32, u64, 1024)`.

The compiler turns each into a libbpf BTF-defined map in `.maps`, named after the module variable.
From user space, a map declared here is the same object a loaded program uses: once a backend has
loaded the program it binds the declaration to the live map, so `arr[0]` reads the live value.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Iterator, Protocol

from ..errors import CompileError, SourceLocation
from .types import ValueType, resolve_type, u32

BPF_MAP_TYPE_HASH = 1
BPF_MAP_TYPE_ARRAY = 2

# What the kernel accepts at BPF_MAP_CREATE (kernel/bpf/arraymap.c array_map_alloc_check,
# hashtab.c htab_map_alloc_check; bpf_attr's fields are u32), and pybpfuring's own ceiling on the
# memory one map may take: the emulated backend allocates a map whole, and a kernel needs as much
# memory charged to the caller. The compiler (at the declaration) and the loader (for any ELF)
# refuse a map outside these limits instead of failing at load time or wrapping a size.
MAX_MAP_ENTRIES = 2**32 - 1
HASH_MAX_KEY_SIZE = 512                                  # MAX_BPF_STACK
HASH_MAX_VALUE_SIZE = (4 << 20) - 512 - 48 - 1           # KMALLOC_MAX_SIZE - stack - htab_elem
ARRAY_MAX_VALUE_SIZE = 2**31 - 1                         # INT_MAX
MAX_MAP_BYTES = 1 << 30                                  # entries x value slot (8-byte aligned)


def map_limits_problem(map_type: int, key_size: int, value_size: int, max_entries: int) -> str | None:
    """Why the kernel (or pybpfuring's 1 GiB ceiling) would refuse this map, or None."""
    if not 1 <= max_entries <= MAX_MAP_ENTRIES:
        return f"max_entries must be 1..{MAX_MAP_ENTRIES} (a u32 the kernel checks), not {max_entries}"
    if map_type in (BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_HASH) and (key_size <= 0 or value_size <= 0):
        return f"key and value must have a size (key {key_size} bytes, value {value_size} bytes)"
    if map_type == BPF_MAP_TYPE_ARRAY:
        if key_size != 4:
            return f"an array map's key is 4 bytes (u32), not {key_size}"
        if value_size > ARRAY_MAX_VALUE_SIZE:
            return f"an array map's value is at most {ARRAY_MAX_VALUE_SIZE} bytes, not {value_size}"
    elif map_type == BPF_MAP_TYPE_HASH:
        if key_size > HASH_MAX_KEY_SIZE:
            return f"a hash map's key is at most {HASH_MAX_KEY_SIZE} bytes, not {key_size}"
        if value_size > HASH_MAX_VALUE_SIZE:
            return f"a hash map's value is at most {HASH_MAX_VALUE_SIZE} bytes, not {value_size}"
    total = max_entries * ((value_size + 7) // 8 * 8)
    if total > MAX_MAP_BYTES:
        return (f"{max_entries} entries of {value_size} bytes take {total} bytes; pybpfuring "
                f"refuses maps over {MAX_MAP_BYTES >> 20} MiB")
    return None


def _declaration_site() -> SourceLocation | None:
    """Where the user's code declared the map: the first frame outside pybpfuring/lang."""
    here = os.path.dirname(os.path.abspath(__file__))
    frame = sys._getframe(1)
    while frame is not None and os.path.dirname(os.path.abspath(frame.f_code.co_filename)) == here:
        frame = frame.f_back
    if frame is None:
        return None
    positions = next((p for p in frame.f_code.co_positions()
                      if p[0] == frame.f_lineno and p[2] is not None), None)
    return SourceLocation(frame.f_code.co_filename, frame.f_lineno, positions[2] if positions else 0)


class LiveMap(Protocol):
    """What a backend binds to a declaration (the loader's and the engine's maps both provide it)."""

    def __getitem__(self, key: Any) -> Any: ...
    def __setitem__(self, key: Any, value: Any) -> None: ...
    def __delitem__(self, key: Any) -> None: ...
    def __contains__(self, key: Any) -> bool: ...
    def __iter__(self) -> Iterator[Any]: ...


class MapDef:
    """A map declaration. `kind` is the BPF map type; types are language ValueTypes."""

    def __init__(self, map_type: int, key_type: Any, value_type: Any, max_entries: int):
        kt, vt = resolve_type(key_type), resolve_type(value_type)
        if kt is None or vt is None:
            raise TypeError("map key and value types must be integer, bool, struct or Array[...] types")
        if not isinstance(max_entries, int) or isinstance(max_entries, bool):
            raise TypeError(f"max_entries must be an int, got {max_entries!r}")
        problem = map_limits_problem(map_type, kt.size, vt.size, max_entries)
        if problem is not None:
            raise CompileError(f"map cannot be created: {problem}", _declaration_site(),
                               "declare a map the kernel accepts (BPF_MAP_CREATE limits)")
        self.map_type = map_type
        self.key_type: ValueType = kt
        self.value_type: ValueType = vt
        self.max_entries = max_entries
        self._live: LiveMap | None = None

    def bind(self, live: LiveMap | None) -> None:
        """Attach (or with None, detach) the live map a backend created for this declaration."""
        self._live = live

    @property
    def live_map(self) -> LiveMap | None:
        """The map this declaration is bound to (None before a backend binds it)."""
        return self._live

    def _require_live(self) -> LiveMap:
        if self._live is None:
            raise RuntimeError("this map is not loaded yet: register its program with a Ring "
                               "(or load the compiled object) before reading it from user space")
        return self._live

    def __getitem__(self, key: Any) -> Any:
        return self._require_live()[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        self._require_live()[key] = value

    def __delitem__(self, key: Any) -> None:
        del self._require_live()[key]

    def __contains__(self, key: Any) -> bool:
        return key in self._require_live()

    def __iter__(self) -> Iterator[Any]:
        return iter(self._require_live())


class ArrayMap(MapDef):
    """BPF_MAP_TYPE_ARRAY with u32 keys 0..max_entries-1, all present, zero-initialised."""

    def __init__(self, value_type: Any, max_entries: int):
        super().__init__(BPF_MAP_TYPE_ARRAY, u32, value_type, max_entries)


class HashMap(MapDef):
    """BPF_MAP_TYPE_HASH."""

    def __init__(self, key_type: Any, value_type: Any, max_entries: int):
        super().__init__(BPF_MAP_TYPE_HASH, key_type, value_type, max_entries)
