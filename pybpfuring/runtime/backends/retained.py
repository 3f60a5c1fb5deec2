"""The maps of a closed ring: one contract on every backend (docs/runtime.md, "Maps after close").

When a `Ring` closes, each map declaration its programs bound (`arr = ArrayMap(...)` in the
program's module) is rebound to a `RetainedMap`: reads give the values the programs left, as they
did while the ring was open; writes raise `RingClosedError` (no program can see them any more).
It lasts until another ring binds the declaration, or the declaration goes.

The kernel backend's maps are BPF maps that would go with the ring's object: the retained map
holds its own descriptor of the same kernel map (a dup, closed when the retained map is released),
so nothing is copied at close and a large map costs nothing until read. The emulated backend's
maps are process memory that outlives its ring: the retained map reads them directly.
"""
from __future__ import annotations

import copy
import os
import weakref
from collections.abc import Iterator
from typing import Any

from pybpfuring.loader.maps import Map
from pybpfuring.uring import RingClosedError


class RetainedMap:
    """A closed ring's map: dict-like reads (`m[k]`, `k in m`, iteration, `items()`...);
    writes raise RingClosedError."""

    def __init__(self, name: str, source: Any) -> None:
        self.name = name
        self._source = source

    def _closed(self, what: str) -> RingClosedError:
        return RingClosedError(f"map {self.name!r} belongs to a closed ring: its last values stay "
                               f"readable, but it cannot be {what} (open a Ring with its program "
                               "to change it)")

    def __getitem__(self, key: Any) -> Any:
        return self._source[key]

    def get(self, key: Any, default: Any = None) -> Any:
        return self._source.get(key, default)

    def __contains__(self, key: Any) -> bool:
        return key in self._source

    def __iter__(self) -> Iterator[Any]:
        return iter(self._source)

    def __len__(self) -> int:
        return len(self._source)

    def keys(self) -> list[Any]:
        return list(self._source.keys())

    def items(self) -> list[tuple[Any, Any]]:
        return list(self._source.items())

    def values(self) -> list[Any]:
        return list(self._source.values())

    def fields(self, key: Any) -> Any:
        fields = getattr(self._source, "fields", None)
        if fields is None:
            raise TypeError(f"map {self.name!r} has no BTF field decoding on this backend")
        return fields(key)

    def __setitem__(self, key: Any, value: Any) -> None:
        raise self._closed("written")

    def __delitem__(self, key: Any) -> None:
        raise self._closed("changed")

    def __repr__(self) -> str:
        return f"<RetainedMap {self.name!r} of a closed ring>"


def _kernel_twin(live: Map) -> Map:
    """A second handle on the same kernel map, with its own descriptor (closed with the handle)."""
    twin = copy.copy(live)
    twin.fd = os.dup(live.fd)
    weakref.finalize(twin, os.close, twin.fd)
    return twin


def retain(live: Any, name: str) -> RetainedMap:
    """The retained form of one live map; call it before the ring closes (kernel maps go then)."""
    if isinstance(live, Map):
        return RetainedMap(name, _kernel_twin(live))
    return RetainedMap(name, live)
