"""The JIT's view of a program before any IR is written: functions, basic blocks, validity.

A BPF "function" here is what one native function executes: every slot reachable from an entry slot
by fall-through and jumps (not into callees: a BPF-to-BPF call is a native call of the callee's own
function). Blocks are cut so that every instruction that can fault is the *last* of its block; the
budget is charged once per block on entry, so when a run has fewer instructions left than the block
holds, the budget fault lands on exactly the instruction the interpreter would report (no earlier
instruction of the block can fault) and `last_insn_count` stays exact.

Validity is decided by the interpreter's own slot compiler (`codegen.SlotCompiler`), so both engines
accept and refuse exactly the same instructions, with the same messages.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from pybpfuring.abi import isa
from pybpfuring.abi.isa import Insn
from pybpfuring.runtime.engine import codegen

STACK_SIZE = isa.STACK_SIZE


@dataclass
class Plan:
    """What the IR writer needs: per slot, whether it is valid, and the functions to emit."""

    insns: list[Insn]
    starts: list[bool]
    invalid: dict[int, str]  # slot -> message of the `invalid` fault it raises when reached
    pseudo_slots: list[int]  # ld_imm64 slots with src != 0, in order (index into the consts table)
    functions: dict[int, "Function"] = field(default_factory=dict)  # entry slot -> function

    @property
    def n(self) -> int:
        return len(self.insns)


@dataclass
class Function:
    entry: int
    blocks: dict[int, list[int]]  # leader slot -> slots of the instructions in the block, in order


def fell_off_message(n: int) -> str:
    return f"execution ran past the last slot ({n - 1}) without exit"


def bad_jump_message(pc: int, target: int) -> str:
    return f"jump from slot {pc} to slot {target}, which starts no instruction"


def make_plan(insns: list[Insn], entries: list[int]) -> Plan:
    """Validate every slot and lay out the functions reachable from `entries`."""
    checker = codegen.SlotCompiler(insns)
    invalid: dict[int, str] = {}
    for pc in range(len(insns)):
        if not checker.starts[pc]:
            invalid[pc] = f"slot {pc} is the second half of an ld_imm64"
            continue
        try:
            checker._body(pc)  # the interpreter's validation, so both engines refuse the same slots
        except codegen._Invalid as exc:
            invalid[pc] = str(exc)
    invalid[len(insns)] = fell_off_message(len(insns))
    plan = Plan(list(insns), checker.starts, invalid, sorted(checker.pseudo_slots))
    todo = list(entries) + pseudo_func_targets(plan)  # callbacks a helper may run
    while todo:
        entry = todo.pop()
        if entry in plan.functions:
            continue
        function = _layout(plan, entry)
        plan.functions[entry] = function
        todo.extend(callee for callee in _callees(plan, function) if callee not in plan.functions)
    return plan


def valid_target(plan: Plan, target: int) -> bool:
    return 0 <= target < plan.n and plan.starts[target]


def is_r10_access_in_frame(insn: Insn, base: int, size: int) -> bool:
    """[r10+off, +size) lies inside the frame's 512 bytes: proven at JIT time, no check needed."""
    return base == isa.REG_FP and -STACK_SIZE <= insn.off and insn.off + size <= 0


def _memory_base_and_size(insn: Insn) -> tuple[int, int] | None:
    cls = insn.cls
    if cls == isa.BPF_LDX:
        return insn.src, isa.SIZE_BYTES[insn.opcode & isa.SIZE_MASK]
    if cls in (isa.BPF_ST, isa.BPF_STX):
        return insn.dst if not _is_load_acquire(insn) else insn.src, isa.SIZE_BYTES[insn.opcode & isa.SIZE_MASK]
    return None


def _is_load_acquire(insn: Insn) -> bool:
    return (insn.cls == isa.BPF_STX and insn.opcode & isa.MODE_MASK == isa.BPF_ATOMIC
            and insn.imm == isa.BPF_LOAD_ACQ)


def can_fault(plan: Plan, pc: int) -> bool:
    """Whether the instruction at `pc` may stop the run (so it must end its block)."""
    if pc in plan.invalid:
        return True
    insn = plan.insns[pc]
    if insn.opcode == isa.OP_LD_IMM64:
        return insn.src != 0  # an unresolved pseudo load faults
    if isa.is_call(insn):
        return True
    access = _memory_base_and_size(insn)
    if access is None:
        return False
    is_atomic_rmw = (insn.cls == isa.BPF_STX and insn.opcode & isa.MODE_MASK == isa.BPF_ATOMIC
                     and insn.imm not in (isa.BPF_LOAD_ACQ, isa.BPF_STORE_REL))
    return is_atomic_rmw or not is_r10_access_in_frame(insn, *access)


def successors(plan: Plan, pc: int) -> list[int]:
    """Slots control may reach next from `pc` inside the same function (callees excluded)."""
    if pc in plan.invalid:
        return []
    insn = plan.insns[pc]
    nxt = pc + (2 if insn.opcode == isa.OP_LD_IMM64 else 1)
    if insn.opcode == isa.OP_EXIT:
        return []
    if insn.cls in (isa.BPF_JMP, isa.BPF_JMP32) and isa.is_jump(insn):
        target = isa.jump_target(pc, insn)
        targets = [target] if valid_target(plan, target) else []
        if insn.opcode & isa.OP_MASK == isa.BPF_JA:
            return targets
        return targets + [nxt]
    if isa.is_pseudo_call(insn) and not valid_target(plan, isa.jump_target(pc, insn)):
        return []
    return [nxt]


def ends_block(plan: Plan, pc: int) -> bool:
    insn = plan.insns[pc] if pc < plan.n else None
    if insn is None or can_fault(plan, pc) or insn.opcode == isa.OP_EXIT:
        return True
    return insn.cls in (isa.BPF_JMP, isa.BPF_JMP32) and isa.is_jump(insn)


def _layout(plan: Plan, entry: int) -> Function:
    reachable: set[int] = set()
    todo = [entry]
    while todo:
        pc = todo.pop()
        if pc in reachable:
            continue
        reachable.add(pc)
        todo.extend(successors(plan, pc))
    leaders = {entry}
    for pc in reachable:
        if ends_block(plan, pc):
            leaders.update(successors(plan, pc))
    blocks: dict[int, list[int]] = {}
    for leader in sorted(leaders & reachable):
        slots, pc = [], leader
        while True:
            slots.append(pc)
            if ends_block(plan, pc):
                break
            nxt = successors(plan, pc)[0]
            if nxt in leaders:
                break
            pc = nxt
        blocks[leader] = slots
    return Function(entry, blocks)


def _callees(plan: Plan, function: Function) -> list[int]:
    found = []
    for slots in function.blocks.values():
        for pc in slots:
            insn = plan.insns[pc] if pc < plan.n else None
            if insn is not None and pc not in plan.invalid and isa.is_pseudo_call(insn):
                target = isa.jump_target(pc, insn)
                if valid_target(plan, target):
                    found.append(target)
    return found


def pseudo_func_targets(plan: Plan) -> list[int]:
    """Slots named by `ld_imm64 func(...)`: the callbacks a helper may run through call_function."""
    out = []
    for pc in plan.pseudo_slots:
        insn = plan.insns[pc]
        target = pc + insn.imm + 1
        if insn.src == isa.BPF_PSEUDO_FUNC and valid_target(plan, target):
            out.append(target)
    return out
