"""The engine's memory model: real host addresses, reachable only through a table of checked regions.

A BPF program run by the engine holds real pointers (stack, context, map values, ring memory). Every
load and store goes through `Memory.load` / `Memory.store`, which accept an access only if
[addr, addr+size) lies inside one registered region (and the region is writable, for stores), and then
touch the real memory through a memoryview over that region. Anything else raises `MemoryFault`; no
access outside the table ever reaches the hardware, so a program bug cannot crash the host process.

A later native JIT and native helpers share the same table (`Memory.regions()` lists it).
"""
from __future__ import annotations

import bisect
import ctypes
import struct
import threading
from dataclasses import dataclass, field

U64 = 0xFFFF_FFFF_FFFF_FFFF

_UNPACK = {1: struct.Struct("<B").unpack_from, 2: struct.Struct("<H").unpack_from,
           4: struct.Struct("<I").unpack_from, 8: struct.Struct("<Q").unpack_from}
_PACK = {1: struct.Struct("<B").pack_into, 2: struct.Struct("<H").pack_into,
         4: struct.Struct("<I").pack_into, 8: struct.Struct("<Q").pack_into}
_MASK = {1: 0xFF, 2: 0xFFFF, 4: 0xFFFF_FFFF, 8: U64}

# Python threads may interleave between the load and the store of a read-modify-write; BPF atomics
# (and anything else that must not) take this lock. It orders only accesses made by this process's
# engine: memory shared with the kernel or other processes is not protected by it.
ATOMIC_LOCK = threading.Lock()


class MemoryFault(Exception):
    """An access outside the region table, or a store into a read-only region (engine-internal)."""

    def __init__(self, addr: int, size: int, is_write: bool, reason: str):
        self.addr = addr
        self.size = size
        self.is_write = is_write
        self.reason = reason
        kind = "write" if is_write else "read"
        super().__init__(f"invalid {kind} of {size} byte(s) at 0x{addr:x}: {reason}")


@dataclass(eq=False)
class Region:
    """[start, start+size) of host memory the program may touch; `owner` keeps owned memory alive."""

    start: int
    size: int
    writable: bool
    name: str
    view: memoryview = field(repr=False)
    owner: object = field(default=None, repr=False)

    @property
    def end(self) -> int:
        return self.start + self.size

    def contains(self, addr: int, size: int) -> bool:
        return self.start <= addr and addr + size <= self.start + self.size


def _view_at(addr: int, size: int) -> memoryview:
    """A byte memoryview over `size` bytes of host memory at `addr` (no copy)."""
    return memoryview((ctypes.c_char * size).from_address(addr)).cast("B")


# Stands in for "no region cached yet": no access can fit in it.
_NO_REGION = Region(0, 0, False, "<none>", memoryview(b""))


class Memory:
    """The region table, with checked accessors. Regions never overlap."""

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._regions: list[Region] = []
        # Bumped on every register/remove: engines that export the table (the JIT, the native loop)
        # compare it instead of looking at the list itself.
        self.generation = 0
        self._hot = _NO_REGION  # last region hit: most accesses repeat the previous region

    # --- the table --------------------------------------------------------------------------
    def allocate(self, size: int, name: str, writable: bool = True, init: bytes | None = None,
                 align: int = 16) -> Region:
        """Allocate zeroed host memory owned by this table (kept alive until `remove`)."""
        if size <= 0:
            raise ValueError(f"region '{name}' must have a positive size, got {size}")
        buf = ctypes.create_string_buffer(size + align)
        base = ctypes.addressof(buf)
        start = (base + align - 1) // align * align
        if init is not None:
            if len(init) > size:
                raise ValueError(f"region '{name}': {len(init)} initial bytes do not fit in {size}")
            ctypes.memmove(start, bytes(init), len(init))
        return self._insert(Region(start, size, writable, name, _view_at(start, size), owner=buf))

    def register(self, addr: int, size: int, name: str, writable: bool = True,
                 owner: object = None) -> Region:
        """Register memory owned elsewhere; the caller keeps it valid until `remove`."""
        if addr <= 0 or size <= 0 or addr + size > U64:
            raise ValueError(f"region '{name}' [0x{addr:x}, +{size}) is not a valid host range")
        return self._insert(Region(addr, size, writable, name, _view_at(addr, size), owner=owner))

    def register_buffer(self, buf: object, name: str, writable: bool = True) -> Region:
        """Register a ctypes object or writable buffer (bytearray, mmap, array); it stays referenced."""
        if isinstance(buf, ctypes._SimpleCData | ctypes.Array | ctypes.Structure | ctypes.Union):
            return self.register(ctypes.addressof(buf), ctypes.sizeof(buf), name, writable, owner=buf)
        size = len(memoryview(buf).cast("B"))
        addr = ctypes.addressof((ctypes.c_char * size).from_buffer(buf))
        return self.register(addr, size, name, writable, owner=buf)

    def remove(self, region: Region) -> None:
        index = self._regions.index(region)
        del self._regions[index]
        del self._starts[index]
        if self._hot is region:
            self._hot = _NO_REGION
        self.generation += 1

    def regions(self) -> list[Region]:
        return list(self._regions)

    def find(self, addr: int) -> Region | None:
        """The region containing byte `addr`, if any."""
        index = bisect.bisect_right(self._starts, addr) - 1
        if index >= 0 and addr < self._regions[index].end:
            return self._regions[index]
        return None

    def _insert(self, region: Region) -> Region:
        index = bisect.bisect_right(self._starts, region.start)
        before = self._regions[index - 1] if index > 0 else None
        after = self._regions[index] if index < len(self._regions) else None
        for other in (before, after):
            if other is not None and region.start < other.end and other.start < region.end:
                raise ValueError(f"region '{region.name}' [0x{region.start:x}, +{region.size}) overlaps "
                                 f"'{other.name}' [0x{other.start:x}, +{other.size})")
        self._starts.insert(index, region.start)
        self._regions.insert(index, region)
        self.generation += 1
        return region

    # --- checked access ---------------------------------------------------------------------
    def _locate(self, addr: int, size: int, is_write: bool) -> Region:
        region = self.find(addr)
        if region is None:
            reason = "null pointer" if addr < 4096 else "address is in no region"
            raise MemoryFault(addr, size, is_write, reason)
        if addr + size > region.end:
            raise MemoryFault(addr, size, is_write, f"runs past the end of region '{region.name}'")
        if is_write and not region.writable:
            raise MemoryFault(addr, size, is_write, f"region '{region.name}' is read-only")
        self._hot = region
        return region

    def load(self, addr: int, size: int) -> int:
        """Unsigned little-endian integer of `size` (1, 2, 4, 8) bytes at `addr`."""
        region = self._hot
        off = addr - region.start
        if off < 0 or off + size > region.size:
            region = self._locate(addr, size, False)
            off = addr - region.start
        return _UNPACK[size](region.view, off)[0]

    def store(self, addr: int, size: int, value: int) -> None:
        """Store the low `size` bytes of `value` at `addr`, little-endian."""
        region = self._hot
        off = addr - region.start
        if off < 0 or off + size > region.size or not region.writable:
            region = self._locate(addr, size, True)
            off = addr - region.start
        _PACK[size](region.view, off, value & _MASK[size])

    def read_bytes(self, addr: int, size: int) -> bytes:
        """A copy of `size` bytes at `addr` (all within one region)."""
        if size == 0:
            return b""
        region = self._locate(addr, size, False)
        off = addr - region.start
        return bytes(region.view[off:off + size])

    def write_bytes(self, addr: int, data: bytes) -> None:
        if not data:
            return
        region = self._locate(addr, len(data), True)
        off = addr - region.start
        region.view[off:off + len(data)] = data

    def view(self, addr: int, size: int, writable: bool = False) -> memoryview:
        """A checked zero-copy view of [addr, addr+size), for helpers that hand memory to syscalls."""
        region = self._locate(addr, max(size, 1), writable)
        off = addr - region.start
        view = region.view[off:off + size]
        return view if writable else view.toreadonly()

    def read_cstring(self, addr: int, limit: int) -> bytes:
        """Bytes at `addr` up to (not including) a NUL, reading at most `limit` bytes within one region."""
        region = self._locate(addr, 1, False)
        off = addr - region.start
        chunk = bytes(region.view[off:min(off + limit, region.size)])
        end = chunk.find(b"\0")
        if end < 0:
            raise MemoryFault(addr, len(chunk), False, "string is not NUL-terminated within bounds")
        return chunk[:end]

    def fill(self, addr: int, size: int, byte: int = 0) -> None:
        if size:
            self._locate(addr, size, True)  # the check; memset itself is unchecked
            ctypes.memset(addr, byte, size)
