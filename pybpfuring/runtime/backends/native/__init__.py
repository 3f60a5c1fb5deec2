"""The native event loop of the emulated backend (`Ring(engine="native")`; docs/runtime.md,
"Native event loop"): C sources (`core.c`, `helpers.c`, `hmap.c`, `api.c`, `nl.h`) built at first use
by `build.py`, driven by `backend.NativeBackend`."""
from __future__ import annotations

from .build import NativeUnavailable, unavailable_reason
from .conditions import CqAtLeast

__all__ = ["CqAtLeast", "NativeUnavailable", "unavailable_reason"]
