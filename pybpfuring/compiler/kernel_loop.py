"""The kernel-loop form an op_bpf object carries: each program's body compiled for target bpf_ops,
as LLVM bitcode, so the kernel backend links the programs into its scheduler from the object alone,
with no Python source on the machine (docs/kernel.md, "Objects without their source").

The form lives in one non-allocated ELF section, which BPF loaders (ours, libbpf) skip:

    MAGIC | u32 header size | header (JSON) | bitcode of each program (zlib), back to back

The header names the compiler that made it (`compiler_fingerprint`: a body inlines the scheduler's
model library, so a body and a scheduler from different compilers must never meet), and per
program its name and either where its compressed bitcode is, its size unpacked and the SHA-256 of
the bitcode, or why it has no body (the program cannot be compiled for bpf_ops; the op_bpf object
is made all the same).
"""
from __future__ import annotations

import hashlib
import io
import json
import struct
import zlib
from dataclasses import dataclass

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from ..errors import CompileError, PyBpfUringError
from ..lang.decorators import BpfFunction
from . import emit
from .cache_key import compiler_fingerprint
from pybpfuring.compiler.frontend.builder import ModuleBuilder
from .pipeline import license_of, lower
from .targets import get_target

SECTION = ".pybpfuring.kernel_loop"
MAGIC = b"PBUKLP01"
_LEN = struct.Struct("<I")


class KernelLoopFormError(PyBpfUringError):
    """An object's kernel-loop form is damaged, from another compiler, or lacks a program."""


@dataclass(frozen=True)
class LinkedBody:
    """A program of an object: its name and its body's bitcode (target bpf_ops)."""
    name: str
    bitcode: bytes

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.bitcode).hexdigest()


def body_bitcode(fn: BpfFunction) -> bytes:
    """The bitcode of an @iouring_program's body as the kernel backend's scheduler calls it: a
    global function named after the program, taking the ctx, returning its result."""
    body = BpfFunction(fn.py_func, "function", name=fn.name, verified_alone=True, program_body=True)
    mb = ModuleBuilder(get_target("bpf_ops"))
    mb.function(body)
    return emit.bitcode(lower(mb.module(license_of([fn]))))


def build(functions: list[BpfFunction]) -> bytes:
    """The section's content for these programs."""
    entries: list[dict[str, object]] = []
    blobs = bytearray()
    for fn in functions:
        if fn.kind != "iouring":
            continue
        try:
            code = body_bitcode(fn)
        except CompileError as e:   # e.g. a helper the kernel backend lacks: say so at load
            entries.append({"name": fn.name, "error": str(e)})
            continue
        packed = zlib.compress(code, 9)
        entries.append({"name": fn.name, "offset": len(blobs), "packed": len(packed),
                        "size": len(code), "sha256": hashlib.sha256(code).hexdigest()})
        blobs += packed
    header = json.dumps({"compiler": compiler_fingerprint(), "programs": entries}).encode()
    return MAGIC + _LEN.pack(len(header)) + header + bytes(blobs)


def attach(elf: bytes, functions: list[BpfFunction]) -> bytes:
    """`elf` with the kernel-loop form of `functions` added as a section."""
    return add_section(elf, SECTION, build(functions))


def read(elf: bytes, names: list[str] | None, label: str = "the object") -> list[LinkedBody] | None:
    """The bodies of the programs `names` (default: all, in the object's order); None if the
    object carries no kernel-loop form."""
    data = _section_data(elf)
    if data is None:
        return None
    header, blobs = _parse(data, label)
    if header.get("compiler") != compiler_fingerprint():
        raise KernelLoopFormError(f"{label} was compiled by another version of pybpfuring: its "
                                  "programs' bodies inline that version's kernel-loop library; "
                                  "compile it again with this one")
    table = {p["name"]: p for p in header["programs"]}
    bodies = []
    for name in names if names is not None else list(table):
        entry = table.get(name)
        if entry is None:
            raise KernelLoopFormError(f"{label} has no program {name!r} "
                                      f"(it has: {', '.join(table) or 'none'})")
        if "error" in entry:
            raise KernelLoopFormError(f"program {name!r} of {label} cannot run on the kernel "
                                      f"backend: {entry['error']}")
        code = _unpack(blobs[entry["offset"]:entry["offset"] + entry["packed"]], entry["size"])
        if code is None or hashlib.sha256(code).hexdigest() != entry["sha256"]:
            raise KernelLoopFormError(f"{label}: the kernel-loop body of {name!r} is damaged "
                                      "(its SHA-256 does not match)")
        bodies.append(LinkedBody(name, code))
    return bodies


def _unpack(packed: bytes, size: int) -> bytes | None:
    """The bitcode, or None unless it unpacks to exactly `size` bytes (never more is unpacked)."""
    try:
        z = zlib.decompressobj()
        code = z.decompress(packed, size + 1)
    except zlib.error:
        return None
    return code if len(code) == size and z.eof else None


def _parse(data: bytes, label: str) -> tuple[dict, bytes]:
    try:
        if not data.startswith(MAGIC):
            raise ValueError("unknown format")
        (size,) = _LEN.unpack_from(data, len(MAGIC))
        start = len(MAGIC) + _LEN.size
        header = json.loads(data[start:start + size])
        if not isinstance(header, dict) or not isinstance(header.get("programs"), list):
            raise ValueError("no program table")
        for p in header["programs"]:
            if not isinstance(p, dict) or not isinstance(p.get("name"), str) or not (
                    isinstance(p.get("error"), str) or (all(isinstance(p.get(k), int)
                    and p[k] >= 0 for k in ("offset", "packed", "size")) and isinstance(p.get("sha256"), str))):
                raise ValueError(f"bad program entry {p!r:.80}")
        return header, data[start + size:]
    except (ValueError, struct.error, UnicodeDecodeError) as e:
        raise KernelLoopFormError(f"{label}: its {SECTION} section is damaged ({e})") from None


# ---- the section in the ELF file ----------------------------------------------------------------
_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_SHT_PROGBITS = 1


def _section_data(elf: bytes) -> bytes | None:
    try:
        sec = ELFFile(io.BytesIO(elf)).get_section_by_name(SECTION)
    except (ELFError, ValueError, struct.error):
        return None            # not an object at all: the loader says what is wrong with it
    return None if sec is None else sec.data()


def add_section(elf: bytes, name: str, data: bytes) -> bytes:
    """A copy of an ELF64 little-endian relocatable object with one more (non-allocated) section.

    Appended after everything: a new section-name table, the section's data and a new section
    header table; the old ones stay where they were, unreferenced, so no offset inside moves."""
    head = list(_EHDR.unpack_from(elf, 0))
    shoff, shentsize, shnum, shstrndx = head[6], head[11], head[12], head[13]
    if shentsize != _SHDR.size or shoff + shnum * shentsize > len(elf):
        raise ValueError("not an ELF64 object with a section header table")
    headers = [list(_SHDR.unpack_from(elf, shoff + i * shentsize)) for i in range(shnum)]
    names_hdr = headers[shstrndx]
    names = elf[names_hdr[4]:names_hdr[4] + names_hdr[5]] + name.encode() + b"\0"
    out = bytearray(elf)

    def put(blob: bytes, align: int) -> int:
        out.extend(b"\0" * (-len(out) % align))
        offset = len(out)
        out.extend(blob)
        return offset

    names_hdr[4], names_hdr[5] = put(names, 1), len(names)
    offset = put(data, 8)
    headers.append([len(names) - len(name) - 1, _SHT_PROGBITS, 0, 0, offset, len(data), 0, 0, 8, 0])
    head[6] = put(b"".join(_SHDR.pack(*h) for h in headers), 8)
    head[12] = len(headers)
    out[:_EHDR.size] = _EHDR.pack(*head)
    return bytes(out)
