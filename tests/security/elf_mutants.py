"""Seeded mutants of BPF ELF objects: what a malformed or hostile `.o` file looks like.

`Mutator(original, seed)` knows where the ELF header, the section headers, the symbols, the
relocations, the code and the `.BTF`/`.BTF.ext` blobs of one valid object are, and each `mutant(i)`
damages one (or a few) of them: bit flips, truncations, header / section-header / symbol /
relocation / BTF field corruption, size fields blown up, garbage appended. Everything comes from
`random.Random(seed, i)`, so a failing mutant is rebuilt from (object, seed, index) alone.
"""
from __future__ import annotations

import random
import struct
from dataclasses import dataclass

_EHDR_FIELDS = {  # name: (offset, struct format) in a 64-bit little-endian ELF header
    "e_type": (16, "<H"), "e_machine": (18, "<H"), "e_version": (20, "<I"), "e_entry": (24, "<Q"),
    "e_phoff": (32, "<Q"), "e_shoff": (40, "<Q"), "e_flags": (48, "<I"), "e_ehsize": (52, "<H"),
    "e_phentsize": (54, "<H"), "e_phnum": (56, "<H"), "e_shentsize": (58, "<H"),
    "e_shnum": (60, "<H"), "e_shstrndx": (62, "<H"),
}
_SHDR_FIELDS = {
    "sh_name": (0, "<I"), "sh_type": (4, "<I"), "sh_flags": (8, "<Q"), "sh_addr": (16, "<Q"),
    "sh_offset": (24, "<Q"), "sh_size": (32, "<Q"), "sh_link": (40, "<I"), "sh_info": (44, "<I"),
    "sh_addralign": (48, "<Q"), "sh_entsize": (56, "<Q"),
}
_SYM_FIELDS = {"st_name": (0, "<I"), "st_info": (4, "<B"), "st_other": (5, "<B"),
               "st_shndx": (6, "<H"), "st_value": (8, "<Q"), "st_size": (16, "<Q")}
_REL_FIELDS = {"r_offset": (0, "<Q"), "r_sym": (12, "<I"), "r_type": (8, "<I")}
_BTF_HDR_FIELDS = {"magic": (0, "<H"), "hdr_len": (4, "<I"), "type_off": (8, "<I"),
                   "type_len": (12, "<I"), "str_off": (16, "<I"), "str_len": (20, "<I")}
SHT_SYMTAB, SHT_REL = 2, 9
SHF_EXECINSTR = 0x4
KINDS = ("bitflip", "bytes", "truncate", "ehdr", "shdr", "sym", "rel", "btf_hdr", "btf_word",
         "btf_ext", "blowup", "insn", "append", "combo")


@dataclass(frozen=True)
class Span:
    """Where something lives in the file: `count` records of `size` bytes from `offset`."""

    offset: int
    size: int
    count: int


class Mutator:
    def __init__(self, original: bytes, seed: int):
        self.original = original
        self.seed = seed
        self.shoff, = struct.unpack_from("<Q", original, 40)
        self.shentsize, self.shnum, self.shstrndx = struct.unpack_from("<HHH", original, 58)
        self.symbols: Span | None = None
        self.relocations: list[Span] = []
        self.code: list[Span] = []
        self.btf: Span | None = None
        self.btf_ext: Span | None = None
        names = self._section(self.shstrndx)
        for i in range(self.shnum):
            name_off, sh_type, flags, _addr, off, size = struct.unpack_from(
                "<IIQQQQ", original, self.shoff + i * self.shentsize)
            name = original[names[0] + name_off:original.index(b"\0", names[0] + name_off)]
            if sh_type == SHT_SYMTAB:
                self.symbols = Span(off, 24, size // 24)
            elif sh_type == SHT_REL:
                self.relocations.append(Span(off, 16, size // 16))
            elif flags & SHF_EXECINSTR and size:
                self.code.append(Span(off, 8, size // 8))
            if name == b".BTF":
                self.btf = Span(off, 1, size)
            elif name == b".BTF.ext":
                self.btf_ext = Span(off, 1, size)

    def _section(self, index: int) -> tuple[int, int]:
        off, size = struct.unpack_from("<QQ", self.original, self.shoff + index * self.shentsize + 24)
        return off, size

    def mutant(self, index: int) -> tuple[str, bytes]:
        """(what was done, the damaged bytes) for mutant number `index`."""
        rng = random.Random(f"{self.seed}:{index}")
        kind = KINDS[index % len(KINDS)]
        data = bytearray(self.original)
        if kind == "combo":
            done = [self._apply(rng, rng.choice(KINDS[:-1]), data) for _ in range(rng.randint(2, 4))]
            return "+".join(done), bytes(data)
        return self._apply(rng, kind, data), bytes(data)

    # ---- one mutation, in place; returns a description ----
    def _apply(self, rng: random.Random, kind: str, data: bytearray) -> str:
        if kind == "truncate":
            cut = rng.randrange(0, max(len(data), 1))
            del data[cut:]
            return f"truncate@{cut}"
        if not data:
            return "empty"
        if kind == "bitflip":
            for _ in range(rng.randint(1, 16)):
                pos = rng.randrange(len(data))
                data[pos] ^= 1 << rng.randrange(8)
            return "bitflip"
        if kind == "bytes":
            pos = rng.randrange(len(data))
            n = rng.randint(1, 16)
            data[pos:pos + n] = bytes(rng.choice((0, 0xFF, 0x7F, 0x80, rng.randrange(256)))
                                      for _ in range(n))[:len(data) - pos]
            return f"bytes@{pos}"
        if kind == "append":
            data += rng.randbytes(rng.randint(1, 4096))
            return "append"
        if kind == "ehdr":
            name = rng.choice(list(_EHDR_FIELDS))
            return self._set(rng, data, 0, _EHDR_FIELDS[name], f"ehdr.{name}")
        if kind == "shdr":
            i = rng.randrange(self.shnum)
            name = rng.choice(list(_SHDR_FIELDS))
            return self._set(rng, data, self.shoff + i * self.shentsize, _SHDR_FIELDS[name],
                             f"shdr[{i}].{name}")
        if kind == "sym" and self.symbols and self.symbols.count:
            return self._record(rng, data, self.symbols, _SYM_FIELDS, "sym")
        if kind == "rel" and self.relocations:
            span = rng.choice(self.relocations)
            if span.count:
                return self._record(rng, data, span, _REL_FIELDS, "rel")
        if kind == "btf_hdr" and self.btf and self.btf.count >= 24:
            name = rng.choice(list(_BTF_HDR_FIELDS))
            return self._set(rng, data, self.btf.offset, _BTF_HDR_FIELDS[name], f"btf.{name}")
        if kind == "btf_word" and self.btf and self.btf.count >= 28:
            return self._word(rng, data, self.btf, "btf")
        if kind == "btf_ext" and self.btf_ext and self.btf_ext.count >= 8:
            return self._word(rng, data, self.btf_ext, "btf_ext")
        if kind == "blowup":
            return self._blowup(rng, data)
        if kind == "insn" and self.code:
            span = rng.choice(self.code)
            if span.count:
                at = span.offset + rng.randrange(span.count) * 8
                field = rng.choice(((0, "<B"), (1, "<B"), (2, "<h"), (4, "<i")))
                return self._set(rng, data, at, field, "insn")
        # The object has no such part: flip a bit instead, so every index is a real mutant.
        return self._apply(rng, "bitflip", data)

    def _record(self, rng, data, span: Span, fields: dict, what: str) -> str:
        i = rng.randrange(span.count)
        name = rng.choice(list(fields))
        return self._set(rng, data, span.offset + i * span.size, fields[name], f"{what}[{i}].{name}")

    def _word(self, rng, data, span: Span, what: str) -> str:
        at = span.offset + rng.randrange(span.count // 4) * 4
        return self._set(rng, data, at, (0, "<I"), f"{what}@{at - span.offset}")

    def _blowup(self, rng, data) -> str:
        """A size or count field set to something enormous."""
        choices = [("shdr.sh_size", lambda: self.shoff + rng.randrange(self.shnum) * self.shentsize,
                    _SHDR_FIELDS["sh_size"])]
        if self.symbols and self.symbols.count:
            choices.append(("sym.st_size", lambda: self.symbols.offset
                            + rng.randrange(self.symbols.count) * 24, _SYM_FIELDS["st_size"]))
        if self.btf and self.btf.count >= 24:
            choices.append(("btf.type_len", lambda: self.btf.offset, _BTF_HDR_FIELDS["type_len"]))
            choices.append(("btf.str_len", lambda: self.btf.offset, _BTF_HDR_FIELDS["str_len"]))
            choices.append(("btf.size_or_vlen", lambda: self.btf.offset + 24
                            + rng.randrange(max((self.btf.count - 24) // 4, 1)) * 4, (0, "<I")))
        if self.btf_ext and self.btf_ext.count >= 8:
            choices.append(("btf_ext.word", lambda: self.btf_ext.offset
                            + rng.randrange(self.btf_ext.count // 4) * 4, (0, "<I")))
        name, where, field = rng.choice(choices)
        at = where()
        off, fmt = field
        size = struct.calcsize(fmt)
        if at + off + size > len(data):
            return "blowup-skipped"
        big = rng.choice((2**16 - 1, 2**24, 2**31 - 1, 2**31, 2**32 - 1))
        big = min(big, 2 ** (8 * size) - 1)
        struct.pack_into(fmt, data, at + off, big)
        return f"blowup.{name}={big}"

    def _set(self, rng, data, base: int, field: tuple[int, str], what: str) -> str:
        off, fmt = field
        size = struct.calcsize(fmt)
        at = base + off
        if at + size > len(data):
            return f"{what}-skipped"
        bits = 8 * size
        signed = fmt[-1].islower()
        top = 2 ** (bits - 1) if signed else 2 ** bits
        lo = -top if signed else 0
        old = struct.unpack_from(fmt, data, at)[0]
        value = rng.choice((0, 1, 7, 8, 0x7F, 0x80, 0xFF, 0xFFFF, 2**31 - 1, 2**32 - 1, 2**63,
                            old + 1, old - 1, old * 2, old + 8, len(data), len(data) + 1,
                            rng.randrange(lo, top), old ^ (1 << rng.randrange(bits))))
        value = min(max(value, lo), top - 1)
        struct.pack_into(fmt, data, at, value)
        return f"{what}={value}"
