"""The JIT against the reference interpreter: same r0, same faults (kind, pc, message, access), same
instruction count, same memory afterwards.

- the whole bpf_conformance suite (`<repo>/../shared/conformance`, skipped with a reason if absent);
- random valid programs (hypothesis): ALU/JMP/memory mixes on the stack and on a region, with
  helper calls, BPF-to-BPF calls, backward jumps (so budget faults happen) and wild accesses.
"""
from __future__ import annotations

import errno
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from conformance_data import SUITE, SUITE_FILES, SUITE_HELPERS, load_case
from pybpfuring.abi import isa
from pybpfuring.abi.isa import Insn
from pybpfuring.runtime.engine.faults import HelperFault, VmFault
from pybpfuring.runtime.engine.interp import Program, Vm
from pybpfuring.runtime.engine.jit import JitVm
from pybpfuring.runtime.engine.memory import Memory, Region

M64 = (1 << 64) - 1


# --- comparing ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    result: int | None
    fault: tuple[object, ...] | None
    insn_count: int
    memory: tuple[bytes, ...]


def outcome(vm: Vm, program: Program, regions: list[Region], **regs: int) -> Outcome:
    result, fault = None, None
    try:
        result = vm.run(program, **regs)
    except VmFault as exc:
        access, message = exc.access, exc.message
        where = None
        if access is not None:
            where = access.addr
            if abs(access.addr - vm.stacks[0].start) < 16 * 1024:  # each Vm has its own stacks
                where = ("stack", access.addr - vm.stacks[0].start)
                message = message.replace(f"0x{access.addr:x}", str(where))
            where = (where, access.size, access.is_write, access.reason)
        fault = (exc.kind, exc.pc, message, exc.errno, where)
    memory = tuple(bytes(region.view) for region in regions) + (bytes(vm.stacks[0].view),)  # frame 0
    return Outcome(result, fault, vm.last_insn_count, memory)


@dataclass
class Engines:
    """An interpreter and a JIT over one memory table, so addresses (and fault messages) agree."""

    memory: Memory
    interp: Vm
    jit: JitVm

    def compare(self, program: Program, init: bytes, **regs: int) -> Outcome:
        """Run on both engines from the same memory contents; r1 = the region's address if any."""
        region = self.memory.allocate(len(init), "mem") if init else None
        try:
            if region is not None:
                regs = {**regs, "r1": region.start}
            results = []
            for vm in (self.interp, self.jit):
                if region is not None:
                    region.view[:] = init
                results.append(outcome(vm, program, [region] if region else [], **regs))
        finally:
            if region is not None:
                self.memory.remove(region)
        interp, jit = results
        assert jit == interp
        return interp


@pytest.fixture(scope="module")
def engines() -> Engines:
    memory = Memory()
    return Engines(memory, Vm(memory, budget=100_000), JitVm(memory, budget=100_000))


# --- the conformance suite ----------------------------------------------------------------------
@pytest.mark.skipif(not SUITE.is_dir(), reason=f"bpf_conformance suite not found at {SUITE} (the "
                    "project's shared/ folder beside the repository)")
@pytest.mark.parametrize("path", SUITE_FILES, ids=[p.stem for p in SUITE_FILES])
def test_conformance_suite_program_runs_the_same_on_the_jit(path: Path, engines: Engines) -> None:
    case = load_case(path)
    program = Program(isa.decode(case.code), helpers=SUITE_HELPERS, name=path.stem)
    got = engines.compare(program, case.mem, r2=len(case.mem))
    if case.result is not None:
        assert got.result == case.result


# --- random programs ----------------------------------------------------------------------------
REGION_SIZE = 64
BUDGET = 400
DATA_REGS = [0, 1, 2, 3, 4, 5, 7, 8, 9]  # r6 keeps the region's address, r10 is the frame pointer
ALU_OPS = [isa.BPF_ADD, isa.BPF_SUB, isa.BPF_MUL, isa.BPF_DIV, isa.BPF_OR, isa.BPF_AND, isa.BPF_LSH,
           isa.BPF_RSH, isa.BPF_NEG, isa.BPF_MOD, isa.BPF_XOR, isa.BPF_MOV, isa.BPF_ARSH]
JUMP_OPS = [isa.BPF_JEQ, isa.BPF_JGT, isa.BPF_JGE, isa.BPF_JSET, isa.BPF_JNE, isa.BPF_JSGT,
            isa.BPF_JSGE, isa.BPF_JLT, isa.BPF_JLE, isa.BPF_JSLT, isa.BPF_JSLE]
SIZES = [isa.BPF_B, isa.BPF_H, isa.BPF_W, isa.BPF_DW]
INTERESTING = [0, 1, -1, 2, 7, 31, 32, 63, 64, -2**31, 2**31 - 1, 0x7F, 0x80, 0xFF, 0xFFFF, -0x8000]
imm32 = st.one_of(st.sampled_from(INTERESTING), st.integers(-2**31, 2**31 - 1))
data_reg = st.sampled_from(DATA_REGS)
any_reg = st.integers(0, 9)  # not r10 as data: the two engines' stacks are at different addresses


def pure_helper(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    return (r1 * 3 + r2 - (r3 ^ r4)) ^ (r5 << 1)


def memory_helper(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """Reads a byte through the checked accessors (r1 may be wild: then the call faults)."""
    if r2 & 0xFF == 0x13:
        raise HelperFault("refused", errno.EINVAL)
    return vm.memory.load(r1, 1) + r2


HELPERS = {1: pure_helper, 2: memory_helper}


@st.composite
def alu(draw: st.DrawFn) -> list[Insn]:
    wide = draw(st.booleans())
    cls = isa.BPF_ALU64 if wide else isa.BPF_ALU
    op = draw(st.sampled_from(ALU_OPS + [isa.BPF_END]))
    dst = draw(data_reg)
    if op == isa.BPF_END:
        to_be = draw(st.booleans()) and not wide
        return [Insn(cls | op | (isa.BPF_X if to_be else 0), dst, 0, 0, draw(st.sampled_from([16, 32, 64])))]
    if op == isa.BPF_NEG:
        return [Insn(cls | op, dst)]
    off = 0
    if op in (isa.BPF_DIV, isa.BPF_MOD):
        off = draw(st.sampled_from([0, 1]))
    if draw(st.booleans()):
        if op == isa.BPF_MOV and draw(st.booleans()):
            off = draw(st.sampled_from([8, 16, 32] if wide else [8, 16]))
        return [Insn(cls | op | isa.BPF_X, dst, draw(any_reg), off, 0)]
    return [Insn(cls | op, dst, 0, off, draw(imm32))]


@st.composite
def memory_op(draw: st.DrawFn) -> list[Insn]:
    size = draw(st.sampled_from(SIZES))
    n = isa.SIZE_BYTES[size]
    where = draw(st.sampled_from(["stack", "stack", "region", "region", "wild"]))
    if where == "stack":
        base, off = 10, draw(st.one_of(st.integers(-512, -n), st.sampled_from([-520, -516, -4, 0, 8])))
    elif where == "region":
        base, off = 6, draw(st.one_of(st.integers(0, REGION_SIZE - n), st.integers(-8, REGION_SIZE + 8)))
    else:
        base, off = draw(data_reg), draw(st.integers(-16, 16))
    kind = draw(st.sampled_from(["ldx", "ldxsx", "st", "stx", "atomic"]))
    if kind == "ldx":
        return [Insn(isa.BPF_LDX | isa.BPF_MEM | size, draw(data_reg), base, off)]
    if kind == "ldxsx" and n < 8:
        return [Insn(isa.BPF_LDX | isa.BPF_MEMSX | size, draw(data_reg), base, off)]
    if kind == "st":
        return [Insn(isa.BPF_ST | isa.BPF_MEM | size, base, 0, off, draw(imm32))]
    if kind == "atomic" and n >= 4:
        op = draw(st.sampled_from([isa.BPF_ADD, isa.BPF_OR, isa.BPF_AND, isa.BPF_XOR, isa.BPF_XCHG,
                                   isa.BPF_CMPXCHG]))
        fetch = isa.BPF_FETCH if op in (isa.BPF_XCHG, isa.BPF_CMPXCHG) or draw(st.booleans()) else 0
        return [Insn(isa.BPF_STX | isa.BPF_ATOMIC | size, base, draw(data_reg), off, op | fetch)]
    return [Insn(isa.BPF_STX | isa.BPF_MEM | size, base, draw(any_reg), off)]


@st.composite
def straight(draw: st.DrawFn) -> list[Insn]:
    """One non-jump unit: ALU, memory, a 64-bit constant or a helper call."""
    kind = draw(st.sampled_from(["alu"] * 6 + ["mem"] * 4 + ["lddw", "call"]))
    if kind == "alu":
        return draw(alu())
    if kind == "mem":
        return draw(memory_op())
    if kind == "lddw":
        value = draw(st.one_of(st.sampled_from([1 << 63, M64, (1 << 63) - 1, 0xFFFF_FFFF, 0x8000_0000]),
                               st.integers(0, M64)))  # LLONG_MIN and friends, for sdiv/smod/shifts
        return list(isa.ld_imm64(draw(data_reg), value))
    return [Insn(isa.OP_CALL, 0, 0, 0, draw(st.sampled_from([1, 2, 3])))]  # 3 is missing: no_helper


@st.composite
def programs(draw: st.DrawFn) -> list[Insn]:
    """A body of units with jumps between unit boundaries, then exit, then a small callee."""
    units: list[list[Insn] | tuple[str, ...]] = []
    for _ in range(draw(st.integers(1, 30))):
        choice = draw(st.sampled_from(["straight"] * 6 + ["jump", "jump", "local call"]))
        if choice == "straight":
            units.append(draw(straight()))
        elif choice == "local call":
            units.append(("call",))
        else:
            units.append(("jump", draw(st.integers(-6, 8)), draw(st.sampled_from(JUMP_OPS + [isa.BPF_JA])),
                          draw(st.booleans()), draw(data_reg), draw(any_reg), draw(imm32)))
    callee = [draw(alu()) for _ in range(draw(st.integers(0, 3)))]
    return _lay_out(units, callee)


def _lay_out(units: list, callee: list[list[Insn]]) -> list[Insn]:
    prologue = [Insn(isa.BPF_ALU64 | isa.BPF_MOV | isa.BPF_X, 6, 1)]  # r6 = the region
    starts, slot = [], len(prologue)
    for unit in units:
        starts.append(slot)
        slot += len(unit) if isinstance(unit, list) else 1
    exit_slot = slot
    callee_slot = exit_slot + 1
    insns = list(prologue)
    for index, unit in enumerate(units):
        here = starts[index]
        if isinstance(unit, list):
            insns.extend(unit)
        elif unit[0] == "call":
            insns.append(Insn(isa.OP_CALL, 0, isa.BPF_PSEUDO_CALL, 0, callee_slot - here - 1))
        else:
            _, delta, op, wide, dst, src, imm = unit
            target_index = min(max(index + delta, 0), len(units))
            target = starts[target_index] if target_index < len(units) else exit_slot
            cls = isa.BPF_JMP if wide or op == isa.BPF_JA else isa.BPF_JMP32
            off = target - here - 1
            if op == isa.BPF_JA:
                insns.append(Insn(isa.OP_JA, 0, 0, off, 0))
            elif src % 2:
                insns.append(Insn(cls | op | isa.BPF_X, dst, src, off, 0))
            else:
                insns.append(Insn(cls | op, dst, 0, off, imm))
    insns.append(Insn(isa.OP_EXIT))
    for unit in callee:
        insns.extend(unit)
    insns.append(Insn(isa.OP_EXIT))
    return insns


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(insns=programs(), init=st.binary(min_size=REGION_SIZE, max_size=REGION_SIZE),
       r2=st.integers(0, M64))
def test_random_programs_agree(engines: Engines, insns: list[Insn], init: bytes, r2: int) -> None:
    program = Program(insns, helpers=HELPERS, name="random")
    engines.interp.budget = engines.jit.budget = BUDGET
    try:
        got = engines.compare(program, init, r2=r2)
        event(f"outcome: {got.fault[0] if got.fault else 'result'}")  # shown by --hypothesis-show-statistics
        event(f"instructions run: {'<10' if got.insn_count < 10 else '<50' if got.insn_count < 50 else '50+'}")
    finally:
        engines.interp.budget = engines.jit.budget = 100_000


def test_the_random_programs_reach_every_outcome(engines: Engines) -> None:
    """The generator is not vacuous: hand-picked programs of its shape end in a result and in each
    fault kind it can produce, on both engines alike."""
    ja_back = ("jump", 0, isa.BPF_JA, True, 0, 0, 0)
    cases = {
        "result": [[Insn(isa.BPF_ALU64 | isa.BPF_ADD, 0, 0, 0, 5)]],
        "memory": [[Insn(isa.BPF_LDX | isa.BPF_MEM | isa.BPF_DW, 0, 6, REGION_SIZE - 4)]],
        "budget": [[Insn(isa.BPF_ALU64 | isa.BPF_ADD, 0, 0, 0, 1)], ja_back],
        "no_helper": [[Insn(isa.OP_CALL, 0, 0, 0, 3)]],
        "helper": [[Insn(isa.BPF_ALU64 | isa.BPF_MOV, 2, 0, 0, 0x13)], [Insn(isa.OP_CALL, 0, 0, 0, 2)]],
    }
    engines.interp.budget = engines.jit.budget = BUDGET
    try:
        for expected, units in cases.items():
            got = engines.compare(Program(_lay_out(units, []), helpers=HELPERS, name=expected), bytes(64))
            assert (got.fault[0] if got.fault else "result") == expected
    finally:
        engines.interp.budget = engines.jit.budget = 100_000
