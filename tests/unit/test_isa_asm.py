"""The instruction model, the assembler and the disassembler."""
from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance_data import SUITE, SUITE_FILES, sections
from pybpfuring.abi import isa
from pybpfuring.abi.asm import AsmError, assemble, assemble_insns, disassemble, disassemble_slots
from pybpfuring.abi.isa import Insn


def slots(*values: int) -> bytes:
    return b"".join(struct.pack("<Q", v) for v in values)


# --- encodings checked against hand-encoded slots (RFC 9669 layout) ---------------------------------
@pytest.mark.parametrize("text, raw", [
    ("mov32 %r0, 1", 0x00000001000000B4),
    ("mov %r1, -1", 0xFFFFFFFF000001B7),
    ("add %r1, %r2", 0x000000000000210F),
    ("ldxw %r0, [%r1+4]", 0x0000000000041061),
    ("stxdw [%r10-8], %r1", 0x00000000FFF81A7B),
    ("jeq %r1, 2, +3", 0x0000000200030115),
    ("ja -1", 0x00000000FFFF0005),
    ("ja32 +7", 0x0000000700000006),
    ("exit", 0x0000000000000095),
    ("call 5", 0x0000000500000085),
    ("call local +2", 0x0000000200001085),
    ("call runtime 99", 0x0000006300002085),
    ("call %r2", 0x000000000000028D),
    ("be16 %r3", 0x00000010000003DC),
    ("le32 %r3", 0x00000020000003D4),
    ("bswap64 %r3", 0x00000040000003D7),
    ("sdiv32 %r0, -3", 0xFFFFFFFD00010034),
    ("smod %r0, %r1", 0x000000000001109F),
    ("movsx832 %r0, %r1", 0x00000000000810BC),
    ("movsx3264 %r0, %r1", 0x00000000002010BF),
    ("ldxsb %r0, [%r10-1]", 0x00000000FFFFA091),
    ("lock fetch add32 [%r10-4], %r1", 0x00000001FFFC1AC3),
    ("lock cmpxchg [%r10-8], %r1", 0x000000F1FFF81ADB),
    ("lock xchg32 [%r1+0], %r2", 0x000000E1000021C3),
    ("stw [%r1+2], 0x80000000", 0x8000000000020162),
])
def test_known_encodings(text: str, raw: int) -> None:
    assert assemble(text) == slots(raw)


def test_ja_minus_one_is_a_one_slot_loop() -> None:
    assert isa.decode(assemble("ja -1")) == [Insn(isa.OP_JA, off=-1)]


def test_ld_imm64_takes_two_slots_and_indices_stay_slot_indices() -> None:
    insns = assemble_insns("mov %r0, 0\nlddw %r1, 0x1122334455667788\nexit")
    assert len(insns) == 4
    assert insns[1] == Insn(isa.OP_LD_IMM64, 1, 0, 0, 0x55667788)
    assert insns[2] == Insn(0, imm=0x11223344)
    assert isa.ld_imm64_value(insns[1], insns[2]) == 0x1122334455667788
    assert isa.is_ld_imm64(insns[1]) and isa.is_ld_imm64_second_slot(insns, 2)
    assert not isa.is_ld_imm64_second_slot(insns, 3)
    assert isa.slot_kinds(insns) == [True, True, False, True]
    assert disassemble_slots(insns) == [(0, "mov %r0, 0"), (1, "lddw %r1, 0x1122334455667788"),
                                        (3, "exit")]


def test_decode_encode_are_inverse_and_reject_partial_slots() -> None:
    data = assemble("mov %r0, 7\nlddw %r2, 0xffffffffffffffff\nexit")
    assert isa.encode(isa.decode(data)) == data
    with pytest.raises(isa.IsaError):
        isa.decode(data[:-3])
    with pytest.raises(isa.IsaError):
        isa.slot_kinds(isa.decode(assemble("lddw %r0, 1"))[:1])


def test_call_classification() -> None:
    helper, local, kfunc, callx = (assemble_insns(t)[0] for t in
                                   ("call 1", "call local +0", "call runtime 5", "call %r3"))
    assert isa.is_helper_call(helper) and not isa.is_pseudo_call(helper)
    assert isa.is_pseudo_call(local) and isa.jump_target(10, local) == 11
    assert isa.is_kfunc_call(kfunc) and not isa.is_helper_call(kfunc)
    assert all(isa.is_call(i) for i in (helper, local, kfunc, callx))
    assert isa.is_jump(assemble_insns("jne %r1, 0, +4")[0])
    assert not isa.is_jump(helper) and isa.is_exit(assemble_insns("exit")[0])
    assert isa.jump_target(3, assemble_insns("ja32 -2")[0]) == 2


def test_labels_resolve_forward_and_backward_and_exit_names_first_exit() -> None:
    insns = assemble_insns("""
        start: mov %r0, 0     # label on the same line
        jeq %r0, 0, done
        ja start
        exit
        done:
        ja32 start
        ja exit
        call local start
    """)
    assert insns[1].off == 2  # slot 1 -> slot 4 (`done`)
    assert insns[2].off == -3
    assert insns[4].imm == -5
    assert insns[5].off == -3  # `exit` is the first exit instruction, slot 3
    assert insns[6].src == isa.BPF_PSEUDO_CALL and insns[6].imm == -7


def test_pseudo_ld_imm64_forms_round_trip() -> None:
    text = ["lddw %r1, map_fd(3)", "lddw %r2, map_value(3, 16)", "lddw %r3, btf_id(77)",
            "lddw %r4, func(+4)", "lddw %r5, map_idx(0)", "lddw %r6, map_idx_value(1, 8)"]
    insns = assemble_insns("\n".join(text))
    assert [i.src for i in insns[::2]] == [1, 2, 3, 4, 5, 6]
    assert insns[3].imm == 16 and insns[2].imm == 3
    assert disassemble(insns) == text


def test_load_acquire_store_release_round_trip() -> None:
    text = ["load_acquirew %r0, [%r1+4]", "store_releasedw [%r2-8], %r3"]
    insns = assemble_insns("\n".join(text))
    assert insns[0] == Insn(0xC3, 0, 1, 4, isa.BPF_LOAD_ACQ)
    assert insns[1] == Insn(0xDB, 2, 3, -8, isa.BPF_STORE_REL)
    assert disassemble(insns) == text


def test_raw_slot_directive_keeps_any_bytes() -> None:
    junk = slots(0x0123456789ABCDEF, 0x000000000000FF20)
    lines = disassemble(junk)
    assert all(line.startswith(".insn ") for line in lines)
    assert assemble("\n".join(lines)) == junk


@pytest.mark.parametrize("text, line, words", [
    ("mov %r0, 1\nfrob %r1, 2", 2, "unknown mnemonic 'frob'"),
    ("mov %r11, 1", 1, "register"),
    ("exit\nja nowhere", 2, "unknown label 'nowhere'"),
    ("add32 %r1, 0x100000000", 1, "out of range"),
    ("a:\na:\nexit", 2, "defined twice"),
    ("ldxw %r0, %r1", 1, "memory operand"),
    ("add %r1", 1, "takes 2 operand"),
    ("jeq %r1, 1, +70000", 1, "out of range"),
    ("lddw %r1, map_thing(3)", 1, "unknown ld_imm64 kind"),
    ("lock nand [%r1+0], %r2", 1, "unknown atomic operation"),
    ("call far 3", 1, "call mode"),
])
def test_assembly_errors_name_the_line(text: str, line: int, words: str) -> None:
    with pytest.raises(AsmError) as info:
        assemble(text)
    assert info.value.line == line
    assert words in str(info.value)
    assert str(info.value).startswith(f"line {line}: ")


# --- random valid instructions ----------------------------------------------------------------
REG = st.integers(0, 10)
WREG = st.integers(0, 9)  # registers an instruction may write (r10 is read-only)
IMM = st.integers(-(1 << 31), (1 << 31) - 1)
OFF = st.integers(-(1 << 15), (1 << 15) - 1)
SIZE = st.sampled_from([isa.BPF_B, isa.BPF_H, isa.BPF_W, isa.BPF_DW])
ALU_OPS = [isa.BPF_ADD, isa.BPF_SUB, isa.BPF_MUL, isa.BPF_DIV, isa.BPF_OR, isa.BPF_AND, isa.BPF_LSH,
           isa.BPF_RSH, isa.BPF_MOD, isa.BPF_XOR, isa.BPF_MOV, isa.BPF_ARSH]
JMP_OPS = [isa.BPF_JEQ, isa.BPF_JGT, isa.BPF_JGE, isa.BPF_JSET, isa.BPF_JNE, isa.BPF_JSGT,
           isa.BPF_JSGE, isa.BPF_JLT, isa.BPF_JLE, isa.BPF_JSLT, isa.BPF_JSLE]
CLS_ALU = st.sampled_from([isa.BPF_ALU, isa.BPF_ALU64])


@st.composite
def alu(draw: st.DrawFn) -> list[Insn]:
    cls, op = draw(CLS_ALU), draw(st.sampled_from(ALU_OPS))
    off = draw(st.sampled_from([0, 1])) if op in (isa.BPF_DIV, isa.BPF_MOD) else 0
    if draw(st.booleans()):
        return [Insn(cls | op | isa.BPF_X, draw(WREG), draw(REG), off)]
    return [Insn(cls | op | isa.BPF_K, draw(WREG), 0, off, draw(IMM))]


@st.composite
def special_alu(draw: st.DrawFn) -> list[Insn]:
    kind = draw(st.sampled_from(["neg", "end", "bswap", "movsx"]))
    cls, dst = draw(CLS_ALU), draw(WREG)
    width = draw(st.sampled_from([16, 32, 64]))
    if kind == "neg":
        return [Insn(cls | isa.BPF_NEG, dst)]
    if kind == "end":
        return [Insn(isa.BPF_ALU | isa.BPF_END | draw(st.sampled_from([0, 8])), dst, imm=width)]
    if kind == "bswap":
        return [Insn(isa.BPF_ALU64 | isa.BPF_END, dst, imm=width)]
    widths = [8, 16, 32] if cls == isa.BPF_ALU64 else [8, 16]
    return [Insn(cls | isa.BPF_MOV | isa.BPF_X, dst, draw(REG), draw(st.sampled_from(widths)))]


@st.composite
def jump(draw: st.DrawFn) -> list[Insn]:
    kind = draw(st.sampled_from(["cond", "ja", "ja32", "call", "local", "kfunc", "callx", "exit"]))
    if kind == "cond":
        cls, op = draw(st.sampled_from([isa.BPF_JMP, isa.BPF_JMP32])), draw(st.sampled_from(JMP_OPS))
        if draw(st.booleans()):
            return [Insn(cls | op | isa.BPF_X, draw(REG), draw(REG), draw(OFF))]
        return [Insn(cls | op, draw(REG), 0, draw(OFF), draw(IMM))]
    return [{
        "ja": lambda: Insn(isa.OP_JA, off=draw(OFF)),
        "ja32": lambda: Insn(isa.OP_JA32, imm=draw(IMM)),
        "call": lambda: Insn(isa.OP_CALL, imm=draw(IMM)),
        "local": lambda: Insn(isa.OP_CALL, src=1, imm=draw(IMM)),
        "kfunc": lambda: Insn(isa.OP_CALL, src=2, imm=draw(IMM)),
        "callx": lambda: Insn(isa.OP_CALLX, dst=draw(REG)),
        "exit": lambda: Insn(isa.OP_EXIT),
    }[kind]()]


@st.composite
def memory(draw: st.DrawFn) -> list[Insn]:
    kind = draw(st.sampled_from(["ldx", "ldxs", "st", "stx", "atomic", "lddw"]))
    size = draw(SIZE)
    if kind == "ldx":
        return [Insn(isa.BPF_LDX | isa.BPF_MEM | size, draw(WREG), draw(REG), draw(OFF))]
    if kind == "ldxs":
        size = draw(st.sampled_from([isa.BPF_B, isa.BPF_H, isa.BPF_W]))
        return [Insn(isa.BPF_LDX | isa.BPF_MEMSX | size, draw(WREG), draw(REG), draw(OFF))]
    if kind == "st":
        return [Insn(isa.BPF_ST | isa.BPF_MEM | size, draw(REG), 0, draw(OFF), draw(IMM))]
    if kind == "stx":
        return [Insn(isa.BPF_STX | isa.BPF_MEM | size, draw(REG), draw(REG), draw(OFF))]
    if kind == "atomic":
        imm = draw(st.sampled_from([0x00, 0x01, 0x40, 0x41, 0x50, 0x51, 0xA0, 0xA1, 0xE1, 0xF1]))
        size = draw(st.sampled_from([isa.BPF_W, isa.BPF_DW]))
        return [Insn(isa.BPF_STX | isa.BPF_ATOMIC | size, draw(REG), draw(WREG), draw(OFF), imm)]
    src = draw(st.integers(0, 6))
    return [Insn(isa.OP_LD_IMM64, draw(WREG), src, 0, draw(IMM)), Insn(0, imm=draw(IMM))]


PROGRAMS = st.lists(st.one_of(alu(), special_alu(), jump(), memory()), min_size=1, max_size=30)


@settings(max_examples=300, deadline=None)
@given(PROGRAMS)
def test_disassemble_then_assemble_is_identity_on_valid_programs(chunks: list[list[Insn]]) -> None:
    insns = [insn for chunk in chunks for insn in chunk]
    data = isa.encode(insns)
    text = disassemble(data)
    assert not any(line.startswith(".insn") for line in text), text
    assert assemble("\n".join(text)) == data


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=240).map(lambda b: b[: len(b) // 8 * 8]))
def test_disassemble_then_assemble_is_identity_on_any_bytes(data: bytes) -> None:
    assert assemble("\n".join(disassemble(data))) == data


# --- the conformance suite's own sources ------------------------------------------------------
def _section(path: Path, name: str) -> str:
    return "\n".join(sections(path).get(name, []))


@pytest.mark.skipif(not SUITE.is_dir(), reason=f"conformance suite not found at {SUITE}")
def test_every_conformance_source_assembles_and_round_trips() -> None:
    assert len(SUITE_FILES) > 300
    for path in SUITE_FILES:
        data = assemble(_section(path, "asm"))
        assert assemble("\n".join(disassemble(data))) == data, path.name


@pytest.mark.skipif(not SUITE.is_dir(), reason=f"conformance suite not found at {SUITE}")
def test_assembly_matches_the_suites_raw_bytes() -> None:
    path = SUITE / "lddw.data"
    raw = slots(*(int(tok, 16) for tok in _section(path, "raw").split()))
    assert assemble(_section(path, "asm")) == raw
