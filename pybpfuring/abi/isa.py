"""The eBPF instruction set (RFC 9669; kernel `Documentation/bpf/standardization/instruction-set.rst`).

Covers the cpu v1..v4 conformance groups: base32/base64, atomic32/atomic64, divmul32/divmul64 (incl.
signed div/mod), sign-extending moves and loads, byte swaps, `gotol`. Legacy packet access
(BPF_ABS/BPF_IND) is named but executed nowhere.

Slot model: a program is a sequence of 8-byte *slots*. `decode` returns one `Insn` per slot, so list
indices are slot indices: ELF relocation offsets / 8, BTF line_info `insn_off / 8`, jump targets and the
`pc` of a fault all index the same list. The wide `ld_imm64` (opcode 0x18) occupies two slots: the
first `Insn` carries opcode, dst, src and the low 32 bits of the constant in `imm`; the second is a
pseudo instruction with opcode 0, dst 0, src 0, off 0 and the high 32 bits in `imm`.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Iterable

# --- opcode byte layout -------------------------------------------------------------------------
# Low 3 bits: instruction class.
BPF_LD = 0x00
BPF_LDX = 0x01
BPF_ST = 0x02
BPF_STX = 0x03
BPF_ALU = 0x04
BPF_JMP = 0x05
BPF_JMP32 = 0x06
BPF_ALU64 = 0x07
CLASS_MASK = 0x07

# ALU / JMP: bit 3 is the source (K = imm, X = src register), high 4 bits the operation.
BPF_K = 0x00
BPF_X = 0x08
SOURCE_MASK = 0x08
OP_MASK = 0xF0

BPF_ADD = 0x00
BPF_SUB = 0x10
BPF_MUL = 0x20
BPF_DIV = 0x30
BPF_OR = 0x40
BPF_AND = 0x50
BPF_LSH = 0x60
BPF_RSH = 0x70
BPF_NEG = 0x80
BPF_MOD = 0x90
BPF_XOR = 0xA0
BPF_MOV = 0xB0
BPF_ARSH = 0xC0
BPF_END = 0xD0

# BPF_END in class ALU: the source bit chooses the target byte order; in class ALU64 it is bswap.
BPF_TO_LE = 0x00
BPF_TO_BE = 0x08

BPF_JA = 0x00
BPF_JEQ = 0x10
BPF_JGT = 0x20
BPF_JGE = 0x30
BPF_JSET = 0x40
BPF_JNE = 0x50
BPF_JSGT = 0x60
BPF_JSGE = 0x70
BPF_CALL = 0x80
BPF_EXIT = 0x90
BPF_JLT = 0xA0
BPF_JLE = 0xB0
BPF_JSLT = 0xC0
BPF_JSLE = 0xD0

# Load/store: bits 3-4 are the size, bits 5-7 the mode.
BPF_W = 0x00
BPF_H = 0x08
BPF_B = 0x10
BPF_DW = 0x18
SIZE_MASK = 0x18
SIZE_BYTES = {BPF_B: 1, BPF_H: 2, BPF_W: 4, BPF_DW: 8}

BPF_IMM = 0x00
BPF_ABS = 0x20  # legacy packet access, not supported
BPF_IND = 0x40  # legacy packet access, not supported
BPF_MEM = 0x60
BPF_MEMSX = 0x80  # cpu v4 sign-extending load
BPF_ATOMIC = 0xC0
MODE_MASK = 0xE0

# Atomic operations live in `imm` of a BPF_STX | BPF_ATOMIC instruction.
BPF_FETCH = 0x01
BPF_XCHG = 0xE0 | BPF_FETCH
BPF_CMPXCHG = 0xF0 | BPF_FETCH
BPF_LOAD_ACQ = 0x100  # kernel >= 6.15 extension: load-acquire
BPF_STORE_REL = 0x110  # kernel >= 6.15 extension: store-release
ATOMIC_RMW_OPS = (BPF_ADD, BPF_OR, BPF_AND, BPF_XOR)

# Whole opcodes used by name elsewhere.
OP_LD_IMM64 = BPF_LD | BPF_IMM | BPF_DW  # 0x18
OP_CALL = BPF_JMP | BPF_CALL  # 0x85
OP_CALLX = BPF_JMP | BPF_CALL | BPF_X  # 0x8d, ubpf/bpf_conformance extension: helper id in dst
OP_EXIT = BPF_JMP | BPF_EXIT  # 0x95
OP_JA = BPF_JMP | BPF_JA  # 0x05
OP_JA32 = BPF_JMP32 | BPF_JA  # 0x06, `gotol`: 32-bit offset in imm

# `src` of a call instruction.
BPF_HELPER_CALL = 0
BPF_PSEUDO_CALL = 1  # BPF-to-BPF call, imm = slot offset relative to the next slot
BPF_PSEUDO_KFUNC_CALL = 2  # imm = BTF id of the kernel function, off = BTF fd index

# `src` of ld_imm64.
BPF_PSEUDO_MAP_FD = 1
BPF_PSEUDO_MAP_VALUE = 2
BPF_PSEUDO_BTF_ID = 3
BPF_PSEUDO_FUNC = 4
BPF_PSEUDO_MAP_IDX = 5
BPF_PSEUDO_MAP_IDX_VALUE = 6
LD_IMM64_SRC_NAMES = {
    0: "imm64",
    BPF_PSEUDO_MAP_FD: "map_fd",
    BPF_PSEUDO_MAP_VALUE: "map_value",
    BPF_PSEUDO_BTF_ID: "btf_id",
    BPF_PSEUDO_FUNC: "func",
    BPF_PSEUDO_MAP_IDX: "map_idx",
    BPF_PSEUDO_MAP_IDX_VALUE: "map_idx_value",
}

SLOT_SIZE = 8
STACK_SIZE = 512  # bytes of stack per frame
MAX_CALL_FRAMES = 8
REG_FP = 10

_SLOT = struct.Struct("<BBhi")


class IsaError(ValueError):
    """Bytes that cannot be a BPF program (bad length, truncated ld_imm64)."""


@dataclass(frozen=True, slots=True)
class Insn:
    """One 8-byte slot. `off` is a signed 16-bit and `imm` a signed 32-bit value, as encoded."""

    opcode: int
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0

    def __post_init__(self) -> None:
        if not (0 <= self.opcode <= 0xFF and 0 <= self.dst <= 0xF and 0 <= self.src <= 0xF
                and -0x8000 <= self.off <= 0x7FFF and -0x8000_0000 <= self.imm <= 0x7FFF_FFFF):
            raise IsaError(f"instruction field out of range: {self!r}")

    @property
    def cls(self) -> int:
        return self.opcode & CLASS_MASK

    def encode(self) -> bytes:
        return _SLOT.pack(self.opcode, self.dst | (self.src << 4), self.off, self.imm)


def decode(data: bytes) -> list[Insn]:
    """Split `data` into one `Insn` per 8-byte slot (an ld_imm64 yields two, see the module doc)."""
    if len(data) % SLOT_SIZE:
        raise IsaError(f"program length {len(data)} is not a multiple of {SLOT_SIZE}")
    insns = []
    for opcode, regs, off, imm in _SLOT.iter_unpack(data):
        insns.append(Insn(opcode, regs & 0xF, regs >> 4, off, imm))
    return insns


def encode(insns: Iterable[Insn]) -> bytes:
    """Inverse of `decode`: concatenate the slots."""
    return b"".join(insn.encode() for insn in insns)


def ld_imm64(dst: int, value: int, src: int = 0) -> tuple[Insn, Insn]:
    """The two slots of `dst = value` (value taken modulo 2**64), optionally with a pseudo `src`."""
    value &= 0xFFFF_FFFF_FFFF_FFFF
    return (Insn(OP_LD_IMM64, dst, src, 0, to_s32(value & 0xFFFF_FFFF)),
            Insn(0, 0, 0, 0, to_s32(value >> 32)))


def ld_imm64_value(first: Insn, second: Insn) -> int:
    """The unsigned 64-bit constant held by an ld_imm64 pair."""
    return (first.imm & 0xFFFF_FFFF) | ((second.imm & 0xFFFF_FFFF) << 32)


def to_s32(value: int) -> int:
    """Reinterpret the low 32 bits of `value` as signed."""
    value &= 0xFFFF_FFFF
    return value - 0x1_0000_0000 if value & 0x8000_0000 else value


def to_s16(value: int) -> int:
    """Reinterpret the low 16 bits of `value` as signed."""
    value &= 0xFFFF
    return value - 0x1_0000 if value & 0x8000 else value


# --- classification -----------------------------------------------------------------------------
def is_ld_imm64(insn: Insn) -> bool:
    return insn.opcode == OP_LD_IMM64


def is_call(insn: Insn) -> bool:
    """Any call: helper, BPF-to-BPF, kfunc, or the register-indirect helper call."""
    return insn.opcode in (OP_CALL, OP_CALLX)


def is_helper_call(insn: Insn) -> bool:
    return insn.opcode == OP_CALL and insn.src == BPF_HELPER_CALL


def is_pseudo_call(insn: Insn) -> bool:
    """A BPF-to-BPF call (src=1); the callee starts at slot `pc + imm + 1`."""
    return insn.opcode == OP_CALL and insn.src == BPF_PSEUDO_CALL


def is_kfunc_call(insn: Insn) -> bool:
    return insn.opcode == OP_CALL and insn.src == BPF_PSEUDO_KFUNC_CALL


def is_exit(insn: Insn) -> bool:
    return insn.opcode == OP_EXIT


def is_jump(insn: Insn) -> bool:
    """A (conditional or unconditional) jump, not call/exit."""
    if insn.cls not in (BPF_JMP, BPF_JMP32):
        return False
    return (insn.opcode & OP_MASK) not in (BPF_CALL, BPF_EXIT)


def jump_target(pc: int, insn: Insn) -> int:
    """Slot a jump or pseudo call at `pc` goes to (`gotol` and calls use imm, other jumps off)."""
    if insn.opcode == OP_JA32 or is_pseudo_call(insn):
        return pc + insn.imm + 1
    return pc + insn.off + 1


def is_ld_imm64_second_slot(insns: list[Insn], index: int) -> bool:
    """Whether slot `index` is the high half of an ld_imm64 (scans from the start to be exact)."""
    pc = 0
    while pc < index:
        pc += 2 if insns[pc].opcode == OP_LD_IMM64 else 1
    return pc != index


def slot_kinds(insns: list[Insn]) -> list[bool]:
    """For every slot, True if an instruction starts there (False for ld_imm64 high halves)."""
    starts = [False] * len(insns)
    pc = 0
    while pc < len(insns):
        starts[pc] = True
        if insns[pc].opcode == OP_LD_IMM64:
            if pc + 1 >= len(insns):
                raise IsaError(f"ld_imm64 at slot {pc} is missing its second slot")
            pc += 2
        else:
            pc += 1
    return starts
