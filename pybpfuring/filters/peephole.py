"""Peephole passes over the back end's pseudo-instructions, then assembly into cBPF.

Passes (repeated until nothing changes): thread jumps whose target is a `ja`; turn a `ja` to a `ret`
into that `ret`; drop a `ja` to the next instruction; drop code no jump or fall-through reaches; drop a
load of a value A already holds (same context word or constant, no label or ALU op in between).
Assembly resolves labels to forward offsets and inserts a `ja` trampoline where a conditional jump's
8-bit offset cannot reach.
"""
from __future__ import annotations

from ..errors import CompileError, SourceLocation
from . import cbpf as C
from .backend import Label, Op


def _targets(op: Op) -> list[Label]:
    if op.kind == "jcond":
        return [op.true, op.false]
    if op.kind == "ja":
        return [op.true]
    return []


def _falls_through(op: Op) -> bool:
    """Whether the op after `op` can be reached from it without a label (jcond names both targets)."""
    return op.kind == "label" or (op.kind == "insn" and op.insn.code & 0x07 != C.RET)


def _label_index(ops: list[Op]) -> dict[int, int]:
    return {op.true.n: i for i, op in enumerate(ops) if op.kind == "label"}


def _first_real(ops: list[Op], i: int) -> int:
    while i < len(ops) and ops[i].kind == "label":
        i += 1
    return i


def thread_jumps(ops: list[Op]) -> bool:
    where = _label_index(ops)
    changed = False

    def final(lab: Label) -> Label:
        seen = set()
        while lab.n not in seen:
            seen.add(lab.n)
            j = _first_real(ops, where[lab.n])
            if j < len(ops) and ops[j].kind == "ja":
                lab = ops[j].true
            else:
                break
        return lab

    for op in ops:
        if op.kind in ("jcond", "ja"):
            for attr in ("true", "false") if op.kind == "jcond" else ("true",):
                new = final(getattr(op, attr))
                if new is not getattr(op, attr):
                    setattr(op, attr, new)
                    changed = True
    return changed


def ja_to_ret(ops: list[Op]) -> bool:
    where = _label_index(ops)
    changed = False
    for i, op in enumerate(ops):
        if op.kind == "ja":
            j = _first_real(ops, where[op.true.n])
            if j < len(ops) and ops[j].kind == "insn" and ops[j].insn.code & 0x07 == C.RET:
                ops[i] = Op("insn", op.loc, ops[j].insn)
                changed = True
    return changed


def drop_ja_next(ops: list[Op]) -> bool:
    for i, op in enumerate(ops):
        if op.kind == "ja":
            j = i + 1
            while j < len(ops) and ops[j].kind == "label":
                if ops[j].true is op.true:
                    del ops[i]
                    return True
                j += 1
    return False


def drop_unreachable(ops: list[Op]) -> bool:
    used = {t.n for op in ops for t in _targets(op)}
    out, live, changed = [], True, False
    for op in ops:
        if op.kind == "label":
            if op.true.n not in used:
                changed = True          # an unused label is dropped
                continue
            live = True
        if live:
            out.append(op)
        else:
            changed = True
        if not _falls_through(op):
            live = False
    ops[:] = out
    return changed


def _a_state(op: Op, known):
    """What A holds after `op` (("abs", k), ("imm", k) or None), given what it held before."""
    if op.kind != "insn":
        return known
    code, k = op.insn.code, op.insn.k
    if code == C.LD | C.W | C.ABS:
        return ("abs", k)
    if code == C.LD | C.IMM:
        return ("imm", k)
    if code & 0x07 in (C.ALU, C.LD) or code == C.MISC | C.TXA:
        return None
    return known


def drop_reloads(ops: list[Op]) -> bool:
    """Forward dataflow (jumps only go forward, so one pass sees every edge into a label first)."""
    incoming: dict[int, list] = {}
    known, reachable = None, True
    for i, op in enumerate(ops):
        if op.kind == "label":
            states = incoming.get(op.true.n, []) + ([known] if reachable else [])
            known = states[0] if states and all(s == states[0] for s in states) else None
            reachable = True
            continue
        if op.kind == "insn" and op.insn.code in (C.LD | C.W | C.ABS, C.LD | C.IMM) \
                and _a_state(op, None) == known:
            del ops[i]
            return True
        known = _a_state(op, known)
        for t in _targets(op):
            incoming.setdefault(t.n, []).append(known)
        reachable = _falls_through(op)
    return False


def merge_rets(ops: list[Op]) -> bool:
    """A `ret k` reached only by jumps: send those jumps to a later identical `ret k`."""
    for i, op in enumerate(ops):
        if op.kind != "insn" or op.insn.code & 0x07 != C.RET or i == 0 or ops[i - 1].kind != "label":
            continue
        j = i - 1
        while j >= 0 and ops[j].kind == "label":
            j -= 1
        if j < 0 or _falls_through(ops[j]):
            continue                      # reached by falling through: keep it
        mine = {ops[x].true.n for x in range(j + 1, i)}
        for later in range(i + 1, len(ops)):
            if ops[later].kind == "insn" and ops[later].insn == op.insn and ops[later - 1].kind == "label":
                target = ops[later - 1].true
                for o in ops[:i]:
                    for attr in ("true", "false") if o.kind == "jcond" else ("true",) if o.kind == "ja" else ():
                        if getattr(o, attr).n in mine:
                            setattr(o, attr, target)
                return True
    return False


PASSES = (thread_jumps, ja_to_ret, drop_ja_next, drop_unreachable, drop_reloads, merge_rets)


def optimize(ops: list[Op]) -> list[Op]:
    ops = list(ops)
    for _ in range(10_000):
        if not any(p(ops) for p in PASSES):
            break
    return ops


def assemble(ops: list[Op], func_loc: SourceLocation) -> tuple[list[C.Insn], list[SourceLocation | None]]:
    """Labels -> offsets; trampolines for conditional jumps that cannot reach."""
    ops = list(ops)
    nlab = max((t.n for op in ops for t in _targets(op)), default=0) + 1
    while True:
        pos, where = [], {}
        n = 0
        for op in ops:
            pos.append(n)
            if op.kind == "label":
                where[op.true.n] = n
            else:
                n += 1
        far = None
        for i, op in enumerate(ops):
            if op.kind == "jcond":
                for attr in ("true", "false"):
                    if where[getattr(op, attr).n] - pos[i] - 1 > 255:
                        far = (i, attr)
                        break
            if far:
                break
        if far is None:
            break
        i, attr = far
        tramp = Label(nlab)
        nlab += 1
        target = getattr(ops[i], attr)
        setattr(ops[i], attr, tramp)
        ops[i + 1:i + 1] = [Op("label", None, true=tramp), Op("ja", ops[i].loc, true=target)]
    prog: list[C.Insn] = []
    locs: list[SourceLocation | None] = []
    for i, op in enumerate(ops):
        if op.kind == "label":
            continue
        here = pos[i]
        if op.kind == "insn":
            prog.append(op.insn)
        elif op.kind == "ja":
            prog.append(C.Insn(C.JMP | C.JA, k=where[op.true.n] - here - 1))
        else:
            prog.append(C.Insn(op.insn.code, where[op.true.n] - here - 1,
                               where[op.false.n] - here - 1, op.insn.k))
        locs.append(op.loc or func_loc)
    if len(prog) > C.MAXINSNS:
        raise CompileError(f"the filter compiles to {len(prog)} classic BPF instructions; the kernel "
                           f"accepts at most {C.MAXINSNS}", func_loc,
                           "split the policy, or use fewer alternatives in `in (...)`")
    return prog, locs
