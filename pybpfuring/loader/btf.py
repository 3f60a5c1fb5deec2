"""BTF (BPF Type Format) reader and writer, and `.BTF.ext` reader.

Format: include/uapi/linux/btf.h and Documentation/bpf/btf.rst. A blob is a header, a type section
(each type a 12-byte `struct btf_type` plus kind-specific trailing data) and a string section.
Type id 0 is `void`; ids count from 1 in the order types appear.

We keep every type's raw fields (string *offsets*, not strings), so `encode()` of an unmodified blob
gives back the very same bytes; the loader edits types in place (DATASEC sizes, VAR linkage) and
re-encodes, as libbpf does before BTF_LOAD.
"""
from __future__ import annotations

import functools
import os
import struct
from dataclasses import dataclass, field

from pybpfuring.errors import PyBpfUringError

BTF_MAGIC = 0xEB9F
VMLINUX_PATH = "/sys/kernel/btf/vmlinux"

# BTF_KIND_*
UNKN, INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT = range(12)
FUNC, FUNC_PROTO, VAR, DATASEC, FLOAT, DECL_TAG, TYPE_TAG, ENUM64 = range(12, 20)
KIND_NAMES = ["UNKN", "INT", "PTR", "ARRAY", "STRUCT", "UNION", "ENUM", "FWD", "TYPEDEF", "VOLATILE",
              "CONST", "RESTRICT", "FUNC", "FUNC_PROTO", "VAR", "DATASEC", "FLOAT", "DECL_TAG",
              "TYPE_TAG", "ENUM64"]

# BTF_INT_* encoding bits, VAR/FUNC linkage
INT_SIGNED, INT_CHAR, INT_BOOL = 1, 2, 4
VAR_STATIC, VAR_GLOBAL_ALLOCATED, VAR_GLOBAL_EXTERN = 0, 1, 2
FUNC_STATIC, FUNC_GLOBAL, FUNC_EXTERN = 0, 1, 2

# Kinds whose `size_or_type` is a type id to follow, and those that are pure modifiers.
_REF_KINDS = frozenset({PTR, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, VAR, DECL_TAG, TYPE_TAG})
_MODIFIERS = frozenset({TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG})
# Per-member record layout of kinds with a vlen-long member list.
_MEMBER_FMT = {STRUCT: "<III", UNION: "<III", DATASEC: "<III", ENUM64: "<III", ENUM: "<Ii",
               FUNC_PROTO: "<II"}
# Kinds with a fixed trailing record.
_EXTRA_FMT = {INT: "<I", ARRAY: "<III", VAR: "<I", DECL_TAG: "<i"}

_HDR = struct.Struct("<HBBIIIII")
_MAX_NESTING = 64   # arrays of arrays, pointers to pointers: deeper than any real type
_TYPE = struct.Struct("<III")


class BtfError(PyBpfUringError, ValueError):
    """A BTF blob we cannot read, or a lookup that found nothing."""


@dataclass(slots=True)
class BtfType:
    """One `struct btf_type` with its trailing data, as raw numbers.

    `vlen` is kept only for kinds without a member list (FUNC keeps its linkage there); for the
    others `len(members)` is written. `extra` holds the fixed trailing record: INT (encoding word,),
    ARRAY (elem type, index type, nelems), VAR (linkage,), DECL_TAG (component_idx,).
    `members` holds tuples: STRUCT/UNION (name_off, type, offset word), DATASEC (type, offset, size),
    ENUM (name_off, value), ENUM64 (name_off, lo32, hi32), FUNC_PROTO (name_off, type).
    """

    kind: int
    name_off: int
    vlen: int
    kind_flag: int
    size_or_type: int
    extra: tuple = ()
    members: list = field(default_factory=list)

    @property
    def kind_name(self) -> str:
        return KIND_NAMES[self.kind] if self.kind < len(KIND_NAMES) else f"kind{self.kind}"

    def info_word(self) -> int:
        vlen = len(self.members) if self.kind in _MEMBER_FMT else self.vlen
        return (self.kind_flag << 31) | (self.kind << 24) | vlen


@dataclass(frozen=True)
class Member:
    """A struct/union member, offsets in bits (bitfield_size 0 for ordinary members)."""

    name: str
    type_id: int
    bit_offset: int
    bitfield_size: int = 0

    @property
    def byte_offset(self) -> int:
        return self.bit_offset // 8


class Btf:
    """A parsed BTF blob: `types[id]` (index 0 is None for void) and the string section."""

    def __init__(self, types: list[BtfType | None], strings: bytes, flags: int = 0,
                 version: int = 1):
        self.types = types
        self.strings = bytearray(strings)
        self.flags = flags
        self.version = version
        self._str_cache: dict[int, str] = {}
        self._name_index: dict[str, list[int]] | None = None
        self._str_offsets: dict[bytes, int] | None = None

    # ---- reading ----
    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> "Btf":
        data = memoryview(bytes(data))
        if len(data) < _HDR.size:
            raise BtfError("BTF blob shorter than its header")
        magic, version, flags, hdr_len, type_off, type_len, str_off, str_len = _HDR.unpack_from(data)
        if magic != BTF_MAGIC:
            raise BtfError(f"bad BTF magic {magic:#x} (big-endian BTF is not supported)")
        if not _HDR.size <= hdr_len <= len(data):
            raise BtfError(f"BTF header length {hdr_len} is outside {_HDR.size}..{len(data)}")
        t0, s0 = hdr_len + type_off, hdr_len + str_off
        if t0 + type_len > len(data) or s0 + str_len > len(data):
            raise BtfError("BTF header points past the end of the blob")
        types = _parse_types(data, t0, t0 + type_len)
        return cls(types, bytes(data[s0:s0 + str_len]), flags, version)

    def str_at(self, off: int) -> str:
        """The NUL-terminated string at `off` in the string section."""
        s = self._str_cache.get(off)
        if s is None:
            if off >= len(self.strings):
                raise BtfError(f"string offset {off} is outside the string section")
            end = self.strings.find(0, off)
            if end < 0:
                raise BtfError(f"the string at offset {off} is not NUL-terminated")
            s = self._str_cache[off] = self.strings[off:end].decode("utf-8", "replace")
        return s

    def name(self, type_id: int) -> str:
        return "" if type_id == 0 else self.str_at(self[type_id].name_off)

    def __len__(self) -> int:
        return len(self.types)

    def __getitem__(self, type_id: int) -> BtfType:
        if not 0 < type_id < len(self.types):
            raise BtfError(f"no BTF type with id {type_id}")
        return self.types[type_id]

    def find(self, name: str, kind: int | None = None) -> list[int]:
        """Ids of every type called `name` (of `kind`, if given)."""
        if self._name_index is None:
            index: dict[str, list[int]] = {}
            for tid in range(1, len(self.types)):
                off = self.types[tid].name_off
                if off:
                    index.setdefault(self.str_at(off), []).append(tid)
            self._name_index = index
        ids = self._name_index.get(name, [])
        return [i for i in ids if kind is None or self.types[i].kind == kind]

    def find_one(self, name: str, kind: int | None = None) -> int:
        ids = self.find(name, kind)
        if not ids:
            what = f"{KIND_NAMES[kind]} " if kind is not None else ""
            raise BtfError(f"no BTF {what}type named {name!r}")
        return ids[0]

    def resolve(self, type_id: int) -> int:
        """Follow typedefs and qualifiers to the type they name."""
        seen = 0
        while type_id and self[type_id].kind in _MODIFIERS:
            type_id = self[type_id].size_or_type
            seen += 1
            if seen > 64:
                raise BtfError("BTF modifier chain loops")
        return type_id

    def size_of(self, type_id: int, _depth: int = 0) -> int:
        """Size in bytes of a type (errors for void, functions and forward declarations)."""
        if _depth > _MAX_NESTING:
            raise BtfError(f"BTF types nest deeper than {_MAX_NESTING} (a loop?)")
        for _ in range(64):
            if type_id == 0:
                raise BtfError("void has no size")
            t = self[type_id]
            if t.kind in (INT, STRUCT, UNION, ENUM, ENUM64, DATASEC, FLOAT):
                return t.size_or_type
            if t.kind == PTR:
                return 8
            if t.kind == ARRAY:
                return t.extra[2] * self.size_of(t.extra[0], _depth + 1)
            if t.kind in _MODIFIERS or t.kind == VAR:
                type_id = t.size_or_type
                continue
            raise BtfError(f"BTF {t.kind_name} type {self.name(type_id)!r} has no size")
        raise BtfError("BTF type chain too long")

    def members(self, type_id: int) -> list[Member]:
        """Members of a struct or union (after resolving typedefs)."""
        tid = self.resolve(type_id)
        if tid == 0:
            raise BtfError("void is not a struct")
        t = self[tid]
        if t.kind not in (STRUCT, UNION):
            raise BtfError(f"BTF type {self.name(type_id)!r} is a {t.kind_name}, not a struct")
        out = []
        for name_off, mtype, word in t.members:
            if t.kind_flag:
                out.append(Member(self.str_at(name_off), mtype, word & 0xFFFFFF, word >> 24))
            else:
                out.append(Member(self.str_at(name_off), mtype, word))
        return out

    def member(self, type_id: int, name: str) -> Member:
        for m in self.members(type_id):
            if m.name == name:
                return m
        raise BtfError(f"struct {self.name(self.resolve(type_id))!r} has no member {name!r}")

    def int_info(self, type_id: int) -> tuple[int, bool] | None:
        """(size, signed) if the type is an integer, enum or pointer-free scalar; else None."""
        tid = self.resolve(type_id)
        if tid == 0:
            return None
        t = self[tid]
        if t.kind == INT:
            return t.size_or_type, bool((t.extra[0] >> 24) & INT_SIGNED)
        if t.kind in (ENUM, ENUM64):
            return t.size_or_type, bool(t.kind_flag)
        return None

    def enum_values(self, type_id: int) -> dict[str, int]:
        t = self[self.resolve(type_id)]
        if t.kind == ENUM:
            return {self.str_at(n): v for n, v in t.members}
        if t.kind == ENUM64:
            return {self.str_at(n): _s64(lo | hi << 32) if t.kind_flag else lo | hi << 32
                    for n, lo, hi in t.members}
        raise BtfError(f"BTF type {self.name(type_id)!r} is not an enum")

    def type_str(self, type_id: int, _depth: int = 0) -> str:
        """A short C-like rendering, for messages."""
        if type_id == 0:
            return "void"
        if _depth > _MAX_NESTING or not 0 < type_id < len(self.types):
            return "<bad type>"
        t = self.types[type_id]
        if t.kind == PTR:
            return self.type_str(t.size_or_type, _depth + 1) + " *"
        if t.kind == ARRAY:
            return f"{self.type_str(t.extra[0], _depth + 1)}[{t.extra[2]}]"
        if t.kind in (CONST, VOLATILE, RESTRICT):
            return f"{KIND_NAMES[t.kind].lower()} {self.type_str(t.size_or_type, _depth + 1)}"
        prefix = {STRUCT: "struct ", UNION: "union ", ENUM: "enum ", ENUM64: "enum "}.get(t.kind, "")
        return prefix + (self.name(type_id) or f"<anon {t.kind_name}>")

    # ---- writing ----
    def add_string(self, s: str) -> int:
        """Offset of `s` in the string section, appending it if it is not there yet."""
        if not s:
            return 0
        if self._str_offsets is None:
            self._str_offsets = {}
            off = 0
            for part in bytes(self.strings).split(b"\0"):
                self._str_offsets.setdefault(part, off)
                off += len(part) + 1
        raw = s.encode()
        off = self._str_offsets.get(raw)
        if off is None:
            off = len(self.strings)
            self.strings += raw + b"\0"
            self._str_offsets[raw] = off
        return off

    def add_type(self, t: BtfType) -> int:
        self.types.append(t)
        self._name_index = None
        return len(self.types) - 1

    def encode(self) -> bytes:
        """The blob for BTF_LOAD: header, types, strings (the layout every producer uses)."""
        parts = []
        for tid, t in enumerate(self.types[1:], 1):
            try:
                parts.append(_TYPE.pack(t.name_off, t.info_word(), t.size_or_type))
                if t.kind in _EXTRA_FMT:
                    parts.append(struct.pack(_EXTRA_FMT[t.kind], *t.extra))
                elif t.kind in _MEMBER_FMT:
                    rec = struct.Struct(_MEMBER_FMT[t.kind])
                    parts.extend(rec.pack(*m) for m in t.members)
            except struct.error:
                # A field set from the ELF (a DATASEC size, a member list) no longer fits BTF.
                raise BtfError(f"BTF type {tid} ({t.kind_name}) has a field that does not fit "
                               "its 32-bit slot") from None
        type_sec = b"".join(parts)
        hdr = _HDR.pack(BTF_MAGIC, self.version, self.flags, _HDR.size, 0, len(type_sec),
                        len(type_sec), len(self.strings))
        return hdr + type_sec + bytes(self.strings)


def _s64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _parse_types(data: memoryview, off: int, end: int) -> list[BtfType | None]:
    """One pass over the type section; kept tight because vmlinux has ~150k types."""
    types: list[BtfType | None] = [None]
    unpack_type = _TYPE.unpack_from
    member_recs = {k: struct.Struct(f) for k, f in _MEMBER_FMT.items()}
    extra_recs = {k: struct.Struct(f) for k, f in _EXTRA_FMT.items()}
    append = types.append
    while off < end:
        if off + 12 > end:
            raise BtfError(f"BTF type {len(types)} is cut off by the end of the type section")
        name_off, info, sot = unpack_type(data, off)
        off += 12
        kind = (info >> 24) & 0x1F
        vlen = info & 0xFFFF
        kflag = info >> 31
        rec = extra_recs.get(kind)
        if rec is not None:
            if off + rec.size > end:
                raise BtfError(f"BTF type {len(types)} is cut off by the end of the type section")
            append(BtfType(kind, name_off, vlen, kflag, sot, rec.unpack_from(data, off)))
            off += rec.size
            continue
        rec = member_recs.get(kind)
        if rec is not None:
            n = rec.size * vlen
            if off + n > end:
                raise BtfError(f"BTF type {len(types)} has {vlen} members, more than the type "
                               "section holds")
            append(BtfType(kind, name_off, vlen, kflag, sot, (),
                           list(rec.iter_unpack(data[off:off + n])) if vlen else []))
            off += n
            continue
        if kind > ENUM64 or kind == UNKN:
            raise BtfError(f"unknown BTF kind {kind} at type id {len(types)}")
        append(BtfType(kind, name_off, vlen, kflag, sot))
    if off != end:
        raise BtfError("BTF type section ends inside a type")
    return types


# ---- .BTF.ext ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class FuncInfoRec:
    insn_off: int  # bytes from the start of the ELF section (in .BTF.ext as the compiler wrote it)
    type_id: int   # a BTF FUNC


@dataclass(frozen=True)
class LineInfoRec:
    insn_off: int
    file_name_off: int
    line_off: int
    line: int
    col: int


@dataclass(frozen=True)
class CoreReloRec:
    insn_off: int
    type_id: int
    access_str_off: int
    kind: int


_EXT_HDR = struct.Struct("<HBBI")


@dataclass
class BtfExt:
    """func_info, line_info and CO-RE relocations per ELF section name."""

    func_info: dict[str, list[FuncInfoRec]]
    line_info: dict[str, list[LineInfoRec]]
    core_relos: dict[str, list[CoreReloRec]]

    @classmethod
    def parse(cls, data: bytes, btf: Btf) -> "BtfExt":
        if len(data) < 8:
            raise BtfError(".BTF.ext shorter than its header")
        magic, _version, _flags, hdr_len = _EXT_HDR.unpack_from(data)
        if magic != BTF_MAGIC:
            raise BtfError(f"bad .BTF.ext magic {magic:#x}")
        if not 8 <= hdr_len <= len(data):
            raise BtfError(f".BTF.ext header length {hdr_len} is outside 8..{len(data)}")
        words = struct.unpack_from(f"<{(hdr_len - 8) // 4}I", data, 8)

        def section(idx: int, decode, rec_min: int) -> dict:
            if len(words) < idx + 2 or words[idx + 1] == 0:
                return {}
            start = hdr_len + words[idx]
            end = start + words[idx + 1]
            if end > len(data):
                raise BtfError(f".BTF.ext: a subsection ({start}..{end}) runs past the end of "
                               f"the blob ({len(data)} bytes)")
            return _parse_ext_section(data, start, end, btf, decode, rec_min)

        return cls(
            func_info=section(0, lambda r: FuncInfoRec(*struct.unpack_from("<II", r)), 8),
            line_info=section(2, _decode_line, 16),
            core_relos=section(4, lambda r: CoreReloRec(*struct.unpack_from("<IIII", r)), 16))


def _decode_line(r: bytes) -> LineInfoRec:
    insn_off, file_off, line_off, line_col = struct.unpack_from("<IIII", r)
    return LineInfoRec(insn_off, file_off, line_off, line_col >> 10, line_col & 0x3FF)


def _parse_ext_section(data: bytes, off: int, end: int, btf: Btf, decode, rec_min: int) -> dict:
    """`rec_size`, then per ELF section: name offset, count, records (rec_size bytes each)."""
    if off + 4 > end:
        raise BtfError(".BTF.ext: a subsection is too short for its record size")
    (rec_size,) = struct.unpack_from("<I", data, off)
    if rec_size < rec_min or rec_size % 4:
        raise BtfError(f".BTF.ext: record size {rec_size} (at least {rec_min}, a multiple of 4)")
    off += 4
    out: dict[str, list] = {}
    while off < end:
        if off + 8 > end:
            raise BtfError(".BTF.ext: a section header is cut off by the end of its subsection")
        sec_name_off, count = struct.unpack_from("<II", data, off)
        off += 8
        if off + count * rec_size > end:
            raise BtfError(f".BTF.ext: {count} records of {rec_size} bytes do not fit in "
                           "their subsection")
        recs = out.setdefault(btf.str_at(sec_name_off), [])
        for _ in range(count):
            recs.append(decode(data[off:off + rec_size]))
            off += rec_size
    return out


# ---- the running kernel's BTF --------------------------------------------------------------------

@functools.lru_cache(maxsize=4)
def _vmlinux_cached(path: str, mtime_ns: int, size: int) -> Btf:
    with open(path, "rb") as f:
        return Btf.parse(f.read())


def vmlinux_btf(path: str = VMLINUX_PATH) -> Btf:
    """The kernel's own BTF, parsed once per process (a few hundred ms for ~6 MB)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise BtfError(f"kernel BTF not available at {path} ({exc.strerror}); "
                       "the kernel needs CONFIG_DEBUG_INFO_BTF=y") from None
    return _vmlinux_cached(path, st.st_mtime_ns, st.st_size)


def kernel_btf_id(name: str, kind: int, btf: Btf | None = None) -> int:
    """BTF id of a kernel type or function (e.g. a kfunc: kind FUNC) in vmlinux BTF."""
    btf = btf or vmlinux_btf()
    ids = btf.find(name, kind)
    if not ids:
        raise BtfError(f"the running kernel has no BTF {KIND_NAMES[kind]} named {name!r}")
    return ids[0]
