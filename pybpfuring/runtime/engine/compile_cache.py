"""A small process-wide cache of compiled programs, keyed by content (`Program.key`).

Every Ring builds its own `Program` objects (its maps and helpers differ), but the compiled form
(the interpreter's slot functions, the JIT's native code) depends only on the slots: keyed by their
hash, a program is compiled once per process however many rings register it. The cache is bounded
(least recently used first out), so a process that compiles many distinct programs does not grow
without limit; an entry still in use by a ring stays alive through that ring's reference.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, Hashable, TypeVar

V = TypeVar("V")
DEFAULT_ENTRIES = 128


class CompileCache(Generic[V]):
    """key -> compiled form, at most `entries` of them."""

    def __init__(self, entries: int = DEFAULT_ENTRIES) -> None:
        self.entries = entries
        self._items: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            value = self._items.get(key)
            if value is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: Hashable, value: V) -> V:
        """Store `value` (or keep the one another thread stored first) and return what is stored."""
        with self._lock:
            stored = self._items.setdefault(key, value)
            self._items.move_to_end(key)
            while len(self._items) > self.entries:
                self._items.popitem(last=False)
            return stored

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
