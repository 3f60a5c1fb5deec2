"""Maps: their definitions (from BTF-defined `.maps` and from global data sections) and the
dict-like view user space gets of a created map.
"""
from __future__ import annotations

from collections.abc import Iterator
import os
import mmap as mmap_mod
from dataclasses import dataclass
from typing import Any

from pybpfuring.errors import PyBpfUringError
from pybpfuring.lang.maps import map_limits_problem
from . import syscalls as sc
from .btf import ARRAY, DATASEC, PTR, STRUCT, UNION, Btf, BtfError

# enum bpf_map_type (the ones worth naming in messages)
MAP_TYPE_NAMES = {1: "hash", 2: "array", 3: "prog_array", 5: "percpu_hash", 6: "percpu_array",
                  9: "lru_hash", 10: "lru_percpu_hash", 22: "queue", 23: "stack", 26: "struct_ops",
                  27: "ringbuf", 30: "bloom_filter"}
MAP_TYPE_HASH = 1
MAP_TYPE_ARRAY = 2
MAP_TYPE_STRUCT_OPS = 26
# Per-CPU maps hold one value per possible CPU: lookups return (and updates take) all of them.
PERCPU_MAP_TYPES = frozenset({5, 6, 10, 21})


def possible_cpus() -> int:
    """Number of possible CPUs (the kernel sizes per-CPU values by it, not by online CPUs)."""
    try:
        with open("/sys/devices/system/cpu/possible") as f:
            spec = f.read().strip()
    except OSError:
        return os.cpu_count() or 1
    count = 0
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        count += int(hi or lo) - int(lo) + 1
    return count


class MapError(PyBpfUringError):
    """A map was used in a way it does not allow (wrong key size, not created yet, ...)."""


class MissingKey(MapError, KeyError):
    """`m[k]` or `del m[k]` for a key the map does not hold (a KeyError, as for a dict)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


@dataclass
class MapDef:
    """What BPF_MAP_CREATE needs, plus the BTF ids that give keys and values their types."""

    name: str
    map_type: int
    key_size: int
    value_size: int
    max_entries: int
    map_flags: int = 0
    btf_key_type_id: int = 0
    btf_value_type_id: int = 0
    btf_vmlinux_value_type_id: int = 0
    data_section: str | None = None   # set for global data maps (.rodata, .data, .bss, ...)


# Members of a BTF map definition struct that carry a number (`__uint(name, N)`).
_NUMBER_FIELDS = {"type": "map_type", "max_entries": "max_entries", "map_flags": "map_flags",
                  "key_size": "key_size", "value_size": "value_size"}
_IGNORED_FIELDS = {"numa_node", "pinning", "map_extra"}


def map_def_from_btf(btf: Btf, name: str, var_type_id: int) -> MapDef:
    """Decode `struct { __uint(type, ..); __type(key, ..); ... } name SEC(".maps")`."""
    sid = btf.resolve(var_type_id)
    if btf[sid].kind != STRUCT:
        raise MapError(f"map {name!r}: a .maps variable must be a struct, not {btf.type_str(sid)}")
    fields: dict[str, int] = {"key_size": 0, "value_size": 0, "map_flags": 0}
    mdef = MapDef(name, 0, 0, 0, 0)
    for m in btf.members(sid):
        ptr = btf[btf.resolve(m.type_id)]
        if ptr.kind != PTR:
            raise MapError(f"map {name!r}: member {m.name!r} must be a pointer (__uint/__type)")
        pointee = ptr.size_or_type
        if m.name in _NUMBER_FIELDS or m.name in _IGNORED_FIELDS:
            arr = btf[btf.resolve(pointee)]
            if arr.kind != ARRAY:
                raise MapError(f"map {name!r}: member {m.name!r} must be __uint(...)")
            if m.name in _NUMBER_FIELDS:
                fields[_NUMBER_FIELDS[m.name]] = arr.extra[2]
        elif m.name == "key":
            mdef.btf_key_type_id, fields["key_size"] = pointee, btf.size_of(pointee)
        elif m.name == "value":
            mdef.btf_value_type_id, fields["value_size"] = pointee, btf.size_of(pointee)
        else:
            raise MapError(f"map {name!r}: unsupported map definition member {m.name!r}")
    for attr, value in fields.items():
        setattr(mdef, attr, value)
    if not mdef.map_type or not mdef.max_entries:
        raise MapError(f"map {name!r}: the definition needs both `type` and `max_entries`")
    problem = map_limits_problem(mdef.map_type, mdef.key_size, mdef.value_size, mdef.max_entries)
    if problem is not None:
        raise MapError(f"map {name!r}: {problem}")
    return mdef


class _Codec:
    """Turns Python values into a map's key/value bytes and back (ints where the BTF says int)."""

    def __init__(self, size: int, int_info: tuple[int, bool] | None, what: str):
        self.size = size
        self.signed = bool(int_info and int_info[1])
        self.is_int = int_info is not None and int_info[0] == size
        self.what = what

    def encode(self, value: Any) -> bytes:
        if isinstance(value, bool) or not isinstance(value, (int, bytes, bytearray, memoryview)):
            raise MapError(f"{self.what} must be an int or {self.size} bytes, "
                           f"not {type(value).__name__}")
        if isinstance(value, int):
            if self.size > 8:
                raise MapError(f"{self.what} is {self.size} bytes: pass bytes, not an int")
            try:
                return value.to_bytes(self.size, "little", signed=value < 0 or self.signed)
            except OverflowError:
                raise MapError(f"{self.what} {value} does not fit in {self.size} bytes") from None
        raw = bytes(value)
        if len(raw) != self.size:
            raise MapError(f"{self.what} must be {self.size} bytes, got {len(raw)}")
        return raw

    def decode(self, raw: bytes) -> int | bytes:
        return int.from_bytes(raw, "little", signed=self.signed) if self.is_int else raw


def _codec(btf: Btf | None, type_id: int, size: int, what: str) -> _Codec:
    info = None
    if btf is not None and type_id:
        try:
            info = btf.int_info(type_id)
        except BtfError:
            info = None
    elif size in (1, 2, 4, 8):
        info = (size, False)   # no BTF: treat scalar-sized keys and values as unsigned ints
    return _Codec(size, info, what)


class Map:
    """A created (or not yet created) BPF map, used like a dict: `m[k]`, `m[k] = v`, `del m[k]`,
    `k in m`, `len(m)`, iteration over keys, `items()`, `get(k, default)`.

    Keys and values are ints when their BTF type is an integer of that size, otherwise bytes.
    Per-CPU maps give a list with one value per possible CPU and take such a list (or one value
    for every CPU).
    """

    def __init__(self, mdef: MapDef, btf: Btf | None):
        self.definition = mdef
        self._btf = btf
        self.name = mdef.name
        self.fd = -1
        self.key = _codec(btf, mdef.btf_key_type_id, mdef.key_size, f"key of map {mdef.name!r}")
        self.value = _codec(btf, mdef.btf_value_type_id, mdef.value_size,
                            f"value of map {mdef.name!r}")
        if mdef.data_section is not None:
            self.value.is_int = False   # a whole data section: raw bytes
        self.percpu = mdef.map_type in PERCPU_MAP_TYPES
        self._ncpus = possible_cpus() if self.percpu else 1

    def __repr__(self) -> str:
        d = self.definition
        kind = MAP_TYPE_NAMES.get(d.map_type, f"type {d.map_type}")
        return (f"<Map {self.name!r} {kind} key={d.key_size}B value={d.value_size}B "
                f"max_entries={d.max_entries} fd={self.fd}>")

    def _fd(self) -> int:
        if self.fd < 0:
            raise MapError(f"map {self.name!r} is not created yet (call load() first) "
                           "or its object was closed")
        return self.fd

    def mmap(self) -> "mmap_mod.mmap":
        """The values of an array map created with BPF_F_MMAPABLE, mapped shared: element i is at
        i * round_up(value_size, 8). Reads and writes need no system call."""
        d = self.definition
        size = -(-(self._slot() * d.max_entries) // mmap_mod.PAGESIZE) * mmap_mod.PAGESIZE
        return mmap_mod.mmap(self._fd(), size, mmap_mod.MAP_SHARED,
                             mmap_mod.PROT_READ | mmap_mod.PROT_WRITE)

    # Per-CPU maps: the kernel copies round_up(value_size, 8) bytes per possible CPU, so the buffer
    # must be that large (a value_size buffer would be overrun).
    def _slot(self) -> int:
        return (self.definition.value_size + 7) // 8 * 8

    def _lookup(self, raw_key: bytes) -> bytes | None:
        size = self._slot() * self._ncpus if self.percpu else self.definition.value_size
        return sc.map_lookup(self._fd(), raw_key, size)

    def _decode_value(self, raw: bytes) -> Any:
        if not self.percpu:
            return self.value.decode(raw)
        n, slot = self.definition.value_size, self._slot()
        return [self.value.decode(raw[i * slot:i * slot + n]) for i in range(self._ncpus)]

    def _encode_value(self, value: Any) -> bytes:
        if not self.percpu:
            return self.value.encode(value)
        values = list(value) if isinstance(value, (list, tuple)) else [value] * self._ncpus
        if len(values) != self._ncpus:
            raise MapError(f"map {self.name!r} is per-CPU: give one value or {self._ncpus} "
                           f"(one per possible CPU), not {len(values)}")
        pad = bytes(self._slot() - self.definition.value_size)
        return b"".join(self.value.encode(v) + pad for v in values)

    def __getitem__(self, key: Any) -> Any:
        raw = self._lookup(self.key.encode(key))
        if raw is None:
            raise MissingKey(f"map {self.name!r} has no key {key!r}")
        return self._decode_value(raw)

    def get(self, key: Any, default: Any = None) -> Any:
        raw = self._lookup(self.key.encode(key))
        return default if raw is None else self._decode_value(raw)

    def __setitem__(self, key: Any, value: Any) -> None:
        sc.map_update(self._fd(), self.key.encode(key), self._encode_value(value))

    def __delitem__(self, key: Any) -> None:
        if self.definition.map_type == MAP_TYPE_ARRAY:
            raise MapError(f"map {self.name!r} is an array: its elements cannot be deleted "
                           "(set them to 0 instead)")
        if not sc.map_delete(self._fd(), self.key.encode(key)):
            raise MissingKey(f"map {self.name!r} has no key {key!r}")

    def __contains__(self, key: Any) -> bool:
        return self._lookup(self.key.encode(key)) is not None

    def _raw_keys(self) -> Iterator[bytes]:
        fd, size = self._fd(), self.definition.key_size
        key = sc.map_get_next_key(fd, None, size)
        seen = 0
        while key is not None and seen < self.definition.max_entries:
            yield key
            seen += 1
            key = sc.map_get_next_key(fd, key, size)

    def __iter__(self) -> Iterator[int | bytes]:
        return (self.key.decode(k) for k in self._raw_keys())

    def keys(self) -> list[int | bytes]:
        return list(self)

    def items(self) -> list[tuple[Any, Any]]:
        out = []
        for raw in self._raw_keys():
            val = self._lookup(raw)
            if val is not None:   # deleted meanwhile by a program: skip it
                out.append((self.key.decode(raw), self._decode_value(val)))
        return out

    def values(self) -> list[Any]:
        return [v for _, v in self.items()]

    def fields(self, key: Any) -> Any:
        """The value under `key` decoded by its BTF type: a struct as a dict by member name,
        arrays as lists, integers as ints (per-CPU maps: a list of those)."""
        raw = self._lookup(self.key.encode(key))
        if raw is None:
            raise MissingKey(f"map {self.name!r} has no key {key!r}")
        tid = self.definition.btf_value_type_id
        if self._btf is None or not tid:
            raise MapError(f"map {self.name!r} has no BTF value type to decode by")
        if not self.percpu:
            return decode_value(self._btf, tid, raw)
        n, slot = self.definition.value_size, self._slot()
        return [decode_value(self._btf, tid, raw[i * slot:i * slot + n]) for i in range(self._ncpus)]

    def __len__(self) -> int:
        return sum(1 for _ in self._raw_keys())


def decode_value(btf: Btf, type_id: int, raw: bytes) -> Any:
    """Bytes of a BTF type as Python data: structs/unions -> dict, arrays -> list (char arrays ->
    bytes), integers and enums -> int, pointers -> int, a DATASEC -> dict of its variables,
    anything else -> bytes."""
    tid = btf.resolve(type_id)
    t = btf[tid]
    if t.kind in (STRUCT, UNION):
        out = {}
        for m in btf.members(tid):
            if m.bitfield_size:
                word = int.from_bytes(raw, "little") >> m.bit_offset
                out[m.name] = word & ((1 << m.bitfield_size) - 1)
                continue
            size = btf.size_of(m.type_id)
            out[m.name or f"_anon{m.byte_offset}"] = decode_value(
                btf, m.type_id, raw[m.byte_offset:m.byte_offset + size])
        return out
    if t.kind == DATASEC:   # a global data section: its variables by name
        return {btf.name(v): decode_value(btf, btf[v].size_or_type, raw[off:off + size])
                for v, off, size in t.members}
    if t.kind == ARRAY:
        elem, count = t.extra[0], t.extra[2]
        info = btf.int_info(elem)
        if info is not None and info[0] == 1:
            return bytes(raw[:count])
        size = btf.size_of(elem)
        return [decode_value(btf, elem, raw[i * size:(i + 1) * size]) for i in range(count)]
    info = btf.int_info(tid)
    if info is not None:
        return int.from_bytes(raw[:info[0]], "little", signed=info[1])
    if t.kind == PTR:
        return int.from_bytes(raw[:8], "little")
    return bytes(raw)


@dataclass(frozen=True)
class GlobalVar:
    name: str
    offset: int
    size: int
    type_id: int


class GlobalData:
    """A global data section (`.rodata`, `.data`, `.bss`, ...) by variable name.

    Before load it edits the initial image the map will be created with (the way to set
    `.rodata` constants); after load it reads and writes the map, except `.rodata`, which is frozen.
    """

    def __init__(self, section: str, image: bytes, variables: list[GlobalVar], btf: Btf | None):
        self.section = section
        self.image = bytearray(image)
        self.variables = {v.name: v for v in variables}
        self.map: Map | None = None
        self._btf = btf

    @property
    def read_only(self) -> bool:
        return self.section.startswith(".rodata")

    def _var(self, name: str) -> GlobalVar:
        try:
            return self.variables[name]
        except KeyError:
            known = ", ".join(sorted(self.variables)) or "none"
            raise MapError(f"{self.section} has no variable {name!r} (it has: {known})") from None

    def _codec(self, var: GlobalVar) -> _Codec:
        return _codec(self._btf, var.type_id, var.size, f"{self.section} variable {var.name!r}")

    def raw(self) -> bytes:
        if self.map is not None and self.map.fd >= 0:
            return bytes(self.map[0])
        return bytes(self.image)

    def __getitem__(self, name: str) -> int | bytes:
        var = self._var(name)
        return self._codec(var).decode(self.raw()[var.offset:var.offset + var.size])

    def __setitem__(self, name: str, value: Any) -> None:
        var = self._var(name)
        data = self._codec(var).encode(value)
        if self.map is not None and self.map.fd >= 0:
            if self.read_only:
                raise MapError(f"{self.section} is frozen after load; set {name!r} before load()")
            current = bytearray(self.raw())
            current[var.offset:var.offset + var.size] = data
            self.map[0] = bytes(current)
        else:
            self.image[var.offset:var.offset + var.size] = data

    def __contains__(self, name: str) -> bool:
        return name in self.variables

    def __iter__(self) -> Iterator[str]:
        return iter(self.variables)

    def __repr__(self) -> str:
        return f"<GlobalData {self.section} vars={sorted(self.variables)}>"
