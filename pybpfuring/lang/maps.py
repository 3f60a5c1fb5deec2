"""BPF maps declared at module level: `arr = ArrayMap(u64, 256)`, `h = HashMap(u32, u64, 1024)`.

The compiler turns each into a libbpf BTF-defined map in `.maps`, named after the module variable.
From user space, a map declared here is the same object a loaded program uses: once a backend has
loaded the program it binds the declaration to the live map, so `arr[0]` reads the live value.
"""
from __future__ import annotations

from typing import Any, Iterator, Protocol

from .types import ValueType, resolve_type, u32

BPF_MAP_TYPE_HASH = 1
BPF_MAP_TYPE_ARRAY = 2


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
        if not isinstance(max_entries, int) or max_entries <= 0:
            raise TypeError(f"max_entries must be a positive int, got {max_entries!r}")
        self.map_type = map_type
        self.key_type: ValueType = kt
        self.value_type: ValueType = vt
        self.max_entries = max_entries
        self._live: LiveMap | None = None

    def bind(self, live: LiveMap | None) -> None:
        """Attach (or with None, detach) the live map a backend created for this declaration."""
        self._live = live

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
