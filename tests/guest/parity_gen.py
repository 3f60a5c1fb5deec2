"""Random model programs for the parity suite: hypothesis draws them, this module writes them out as
a Python module (a private temporary folder: backend bpf_ops compiles a program's source), runs
them through `Ring` and returns what a user sees, so two backends can be compared program by program.

A module holds up to PROGRAMS_PER_MODULE programs sharing one ring (one compile, one scheduler load).
Each program runs in phases, one per run: a phase is a few model operations (emit_cqe, reap_cqe,
submit of NOPs, of linked chains, of a failing read, of a BPF request with a bad program index, to
any CQ or one the ring lacks), every result logged in the program's own map slots, and an ending:
WAIT for CQEs its own operations make sure will be there, OK, or an ending the 2021 model refuses
(-EINVAL). "Instance" programs are started several times at once; each instance waits on its own
CQ for a token user space posts, in a drawn order. User space starts the programs one after another,
sometimes on a CQ the ring lacks, with a bad program index, or linked to a NOP, and after each one
drains every CQ.

The generator keeps a small model of CQ occupancy only to choose WAITs that can end; the backends'
results are compared with each other, never with this model.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

NCQ = 4                   # CQ 0 and extra CQs 1..3
BAD_CQ = 9
BAD_PROGRAM = 99
SLOTS = 32                # log slots per (program, instance); slot 0 counts runs
INSTANCES = 3             # instances of an instance program (user_data & 3 = 0..2, own CQ 1 + i)
PROGRAMS_PER_MODULE = 40
CQ_SIZES = (4, 8, 16)
ENOENT, EINVAL, ENOMEM = -2, -22, -12


@dataclass
class Op:
    kind: str             # emit | reap | nop | chain | badchain | badbpf
    cq: int | str         # a CQ number, or "own" (1 + instance)
    ud: int = 0
    res: int = 0
    flags: int = 0
    cq2: int | str = 0    # second SQE of a chain


@dataclass
class Phase:
    ops: list[Op]
    end: tuple[str, int, int]    # ("ok"|"wait"|"badret"|"badwait", wait_idx, wait_nr)


@dataclass
class Program:
    name: str
    phases: list[Phase]
    instances: int = 0           # 0: one plain start; >= 2: instance program
    start: str = "plain"         # plain | badcq | link | badindex
    order: list[int] = field(default_factory=list)   # instance release order


@dataclass
class Module:
    cq_sizes: list[int]          # extra CQs 1..3
    programs: list[Program]


# ---- drawing ----------------------------------------------------------------------------------

class _Occupancy:
    """CQE counts per CQ while one program (instance) runs (the generator's guide, not an oracle)."""

    def __init__(self, caps: list[int]) -> None:
        self.caps = caps                      # CQ 0: unlimited (None)
        self.count = [0] * NCQ
        self.arriving = [0] * NCQ             # CQEs of SQEs submitted in this run
        # Every CQE ever headed for each CQ (reaps not subtracted), and the CQs kernel CQEs go to.
        # A CQ that takes kernel CQEs must never fill: which of two independent completions gets
        # the last slot is the kernel's order, not the model's (docs/kernel.md, Completion order).
        self.high = [0] * NCQ
        self.kernel_fed: set[int] = set()

    def safe(self, cq: int, kernel: bool) -> int:
        """`cq`, or CQ 0 where one more CQE could make a CQ that takes kernel CQEs drop one."""
        if not 1 <= cq < NCQ:
            return cq
        if (kernel or cq in self.kernel_fed) and self.high[cq] + 1 > self.cap(cq):
            return 0
        return cq

    def heads_for(self, cq: int, kernel: bool) -> None:
        if 1 <= cq < NCQ:
            self.high[cq] += 1
            if kernel:
                self.kernel_fed.add(cq)

    def cap(self, cq: int) -> int:
        return 1 << 30 if cq == 0 else self.caps[cq - 1]

    def emit(self, cq: int) -> None:
        if 0 <= cq < NCQ and self.count[cq] < self.cap(cq):
            self.count[cq] += 1

    def reap(self, cq: int) -> None:
        if 0 <= cq < NCQ and self.count[cq]:
            self.count[cq] -= 1

    def arrive(self, cq: int) -> None:
        self.arriving[cq if 0 <= cq < NCQ else 0] += 1

    def end_run(self) -> None:
        for cq in range(NCQ):
            self.count[cq] = min(self.count[cq] + self.arriving[cq], self.cap(cq))
            self.arriving[cq] = 0


_CQ_ANY = st.sampled_from([0, 1, 1, 2, 2, 3, 3, BAD_CQ])


@st.composite
def _op(draw: Any, occ: _Occupancy, own: int | None, adds: bool = True) -> Op:
    """One operation (`adds`=False: none that adds a CQE); its effect applied to `occ`."""
    kinds = (["emit", "emit", "reap", "reap", "nop", "nop", "chain", "badchain", "badbpf"]
             if own is None else ["emit", "reap", "reap", "nop"])
    kind = draw(st.sampled_from(kinds if adds else ["reap"]))
    cq: int | str = draw(_CQ_ANY) if own is None else "own"
    real = own if cq == "own" else cq
    assert isinstance(real, int)
    ud = draw(st.integers(1, 999))
    if own is None and kind != "reap":     # plain programs: no CQ that takes kernel CQEs fills
        cq = real = occ.safe(real, kernel=kind != "emit")
        occ.heads_for(real, kernel=kind != "emit")
    op = Op(kind, cq, ud, draw(st.integers(-40, 40)), draw(st.sampled_from([0, 0, 1, 4])))
    if kind == "emit":
        occ.emit(real)
    elif kind == "reap":
        occ.reap(real)
    elif kind == "nop":
        occ.arrive(real)
    elif kind in ("chain", "badchain"):
        cq2 = draw(_CQ_ANY)
        if own is None:
            cq2 = occ.safe(cq2, kernel=True)
            occ.heads_for(cq2, kernel=True)
        op.cq2 = cq2
        occ.arrive(real)
        occ.arrive(cq2)
    elif kind == "badbpf":
        occ.arrive(real)
    return op


@st.composite
def _plain_phases(draw: Any, caps: list[int]) -> list[Phase]:
    occ = _Occupancy(caps)
    phases = []
    nphases = draw(st.integers(1, 3))
    for p in range(nphases):
        ops = [draw(_op(occ, None)) for _ in range(draw(st.integers(0, 5 if p else 6)))]
        occ.end_run()
        last = p == nphases - 1
        waitable = [cq for cq in range(NCQ) if occ.count[cq] > 0]
        if not last and waitable:
            cq = draw(st.sampled_from(waitable))
            nr = draw(st.integers(1, occ.count[cq]))
            phases.append(Phase(ops, ("wait", cq, nr)))
            continue
        end = draw(st.sampled_from(["ok", "ok", "ok", "badret", "badwait"]))
        if end == "badwait":
            idx, nr = draw(st.sampled_from([(BAD_CQ, 1), (1, 0), (1, 100000)]))
            phases.append(Phase(ops, ("badwait", idx, nr)))
        else:
            phases.append(Phase(ops, (end, 0, 0)))
        break
    return phases


@st.composite
def _instance_phases(draw: Any) -> list[Phase]:
    # Phase 0: at most 2 CQEs on the own CQ, then WAIT for one more (the user's token): it fits
    # every CQ size. Phase 1: anything on the own CQ, then OK.
    occ = _Occupancy([4, 4, 4])
    first = []
    for _ in range(draw(st.integers(0, 3))):
        first.append(draw(_op(occ, 1, adds=occ.count[1] + occ.arriving[1] < 2)))
    occ.end_run()
    nr = occ.count[1] + 1
    occ.count[1] += 1                         # the token
    second = [draw(_op(occ, 1)) for _ in range(draw(st.integers(0, 4)))]
    return [Phase(first, ("waitown", 0, nr)), Phase(second, ("ok", 0, 0))]


@st.composite
def modules(draw: Any, programs: int = PROGRAMS_PER_MODULE) -> Module:
    caps = [draw(st.sampled_from(CQ_SIZES)) for _ in range(NCQ - 1)]
    progs = []
    for k in range(programs):
        if draw(st.integers(0, 5)) == 0:
            n = draw(st.integers(2, INSTANCES))
            order = draw(st.permutations(list(range(n))))
            progs.append(Program(f"g{k}", draw(_instance_phases()), n, "plain", list(order)))
        else:
            start = draw(st.sampled_from(["plain"] * 6 + ["badcq", "link", "badindex"]))
            progs.append(Program(f"g{k}", draw(_plain_phases(caps)), 0, start))
    return Module(caps, progs)


# ---- writing the module -------------------------------------------------------------------------

HEADER = '''"""Generated by tests/guest/parity_gen.py (random model programs)."""
from pybpfuring import ArrayMap, Cqe, Ctx, OK, Sqe, WAIT, i32, i64, iouring_program, u32
from pybpfuring.lang import (IOSQE_IO_LINK, complete, emit_cqe, prep_nop, prep_read, reap_cqe, submit,
                             wait)

log = ArrayMap(i64, {entries})
'''


def _cq(cq: int | str) -> str:
    return "own" if cq == "own" else str(cq)


def _op_source(op: Op, slot: int) -> tuple[list[str], int]:
    """Lines of one operation (each result logged at `slot`...), and the slots it used."""
    at = f"log[base + {slot}]"
    if op.kind == "emit":
        return [f"r = emit_cqe(ctx, {_cq(op.cq)}, {op.ud}, {op.res}, {op.flags})", f"{at} = r"], 1
    if op.kind == "reap":
        return [f"r = reap_cqe(ctx, {_cq(op.cq)}, cqe)", f"{at} = r",
                f"log[base + {slot + 1}] = i64(cqe.user_data) * 1000 + cqe.res"], 2
    lines: list[str] = []

    def sqe(prep: str, ud: int, cq: int | str, flags: str) -> None:
        lines.extend([prep, f"sqe.user_data = {ud}", f"sqe.cq_idx = {_cq(cq)}", f"sqe.flags = {flags}"])

    if op.kind == "nop":
        sqe("prep_nop(sqe)", op.ud, op.cq, "0")
    elif op.kind == "badbpf":
        sqe("prep_nop(sqe)", op.ud, op.cq, "0")
        lines += ["sqe.opcode = 37", f"sqe.off = {BAD_PROGRAM}"]
    else:
        head = "prep_nop(sqe)" if op.kind == "chain" else "prep_read(sqe, -1, 0, 0, 0)"
        sqe(head, op.ud, op.cq, "IOSQE_IO_LINK")
        lines += ["r = submit(ctx, sqe)", f"{at} = r"]
        sqe("prep_nop(sqe)", op.ud + 1000, op.cq2, "0")
        lines += ["r = submit(ctx, sqe)", f"log[base + {slot + 1}] = r"]
        return lines, 2
    return lines + ["r = submit(ctx, sqe)", f"{at} = r"], 1


def _end_source(end: tuple[str, int, int]) -> list[str]:
    kind, idx, nr = end
    if kind == "ok":
        return ["return OK"]
    if kind == "badret":
        return ["return i32(run) + 5"]      # neither OK nor WAIT (a constant would not compile)
    if kind == "waitown":
        return ["ctx.wait_idx = u32(own)", f"ctx.wait_nr = {nr}", "return WAIT"]
    return [f"ctx.wait_idx = {idx}", f"ctx.wait_nr = {nr}", "return WAIT"]


def program_source(index: int, prog: Program) -> str:
    lines = ["@iouring_program", f"def {prog.name}(ctx: Ctx) -> int:",
             "    inst = ctx.user_data & 3",
             f"    base = ({index} * 4 + inst) * {SLOTS}",
             "    own = 1 + inst",
             "    run = log[base]",
             "    log[base] = run + 1",
             "    r: i64 = 0",
             "    cqe = Cqe()",
             "    sqe = Sqe()"]
    slot = 1
    for n, phase in enumerate(prog.phases):
        body: list[str] = []
        for op in phase.ops:
            op_lines, used = _op_source(op, slot)
            slot += used
            body += op_lines
        body += _end_source(phase.end)
        if n == len(prog.phases) - 1:
            lines += ["    " + line for line in body]
        else:
            lines.append(f"    if run == {n}:")
            lines += ["        " + line for line in body]
    assert slot <= SLOTS, f"{prog.name} uses {slot} slots"
    return "\n".join(lines) + "\n"


def _gen_end_source(end: tuple[str, int, int], generator: bool) -> list[str]:
    """The same ending in a generator: a wait is a yield (the next phase follows it), a result a
    return; the CQEs a user sees are the classic program's. Without any yield the function is not
    a generator (Python's rule): its result goes out with complete()."""
    kind, idx, nr = end
    if kind == "ok":
        return ["return 0" if generator else "return OK"]
    if kind == "badret":                      # what the classic form's request completes with
        return ["return -22" if generator else "return complete(ctx, -22)"]
    if kind == "waitown":
        return [f"yield wait(ctx, u32(own), {nr})", "log[base] = log[base] + 1"]
    return [f"yield wait(ctx, {idx}, {nr})", "log[base] = log[base] + 1"]


def generator_source(index: int, prog: Program) -> str:
    """`prog` as a generator program: its phases in sequence, separated by yields. Stack objects
    are made again in each phase (a reference cannot cross a yield)."""
    lines = ["@iouring_program", f"def {prog.name}(ctx: Ctx) -> i32:",
             "    inst = ctx.user_data & 3",
             f"    base = ({index} * 4 + inst) * {SLOTS}",
             "    own = 1 + inst",
             "    log[base] = log[base] + 1",
             "    r: i64 = 0"]
    slot = 1
    generator = any(p.end[0] in ("wait", "waitown", "badwait") for p in prog.phases)
    for phase in prog.phases:
        lines += ["    cqe = Cqe()", "    sqe = Sqe()"]
        for op in phase.ops:
            op_lines, used = _op_source(op, slot)
            slot += used
            lines += ["    " + line for line in op_lines]
        lines += ["    " + line for line in _gen_end_source(phase.end, generator)]
    return "\n".join(lines) + "\n"


def module_source(module: Module, style: str = "classic") -> str:
    """The programs as classic state machines (`if run == n:` per phase), or as generators."""
    entries = len(module.programs) * 4 * SLOTS
    parts = [HEADER.format(entries=entries)]
    render = program_source if style == "classic" else generator_source
    parts += [render(i, p) for i, p in enumerate(module.programs)]
    return "\n\n".join(parts)


def write_module(module: Module, directory: str, style: str = "classic") -> Path:
    """The module's source in `directory` (a private mkdtemp folder), named by its content."""
    text = module_source(module, style)
    path = Path(directory) / f"gen_{hashlib.sha256(text.encode()).hexdigest()[:16]}.py"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:       # drawn before: the name is the content's hash
        return path
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def private_dir() -> str:
    return tempfile.mkdtemp(prefix="pybpfuring-parity-gen-")


# ---- running it ---------------------------------------------------------------------------------

WAIT_SECONDS = 30


def _drain(ring: Any) -> dict[int, list[tuple[int, int, int]]]:
    return {cq: [(c.user_data, c.res, c.flags) for c in ring.cqes(cq)] for cq in range(NCQ)}


def _settle(ring: Any, seconds: float = 20.0) -> None:
    """In the kernel a NOP submitted last can complete before SQEs linked earlier (their
    completions run from task work): run the loop until nothing is in flight."""
    import time
    deadline = time.monotonic() + seconds
    while ring.in_flight() and time.monotonic() < deadline:
        ring.submit_and_wait(0)
        ring.peek_cqe(0)


def _wait_for(ring: Any, user_data: int, seen: list[tuple[int, int, int]]) -> None:
    while True:
        c = ring.wait_cqe(0, timeout=WAIT_SECONDS)
        seen.append((c.user_data, c.res, c.flags))
        if c.user_data == user_data:
            return


def _start(ring: Any, index: int, prog: Program, marker: int, cq0: list[tuple[int, int, int]]) -> None:
    """Start a plain program the way its `start` says and wait for its completion on CQ 0."""
    from pybpfuring.lang import IOSQE_IO_LINK
    from pybpfuring.runtime import prep_nop
    ud = index << 8
    if prog.start == "badindex":
        ring.prep_bpf(BAD_PROGRAM, user_data=ud)
    elif prog.start == "badcq":
        ring.prep_bpf(index, user_data=ud, cq_idx=BAD_CQ)
    elif prog.start == "link":
        ring.prep_bpf(index, user_data=ud, flags=IOSQE_IO_LINK)
        sqe = ring.get_sqe(0)
        prep_nop(sqe)
        sqe.user_data = marker + 1
    else:
        ring.prep_bpf(index, user_data=ud)
    ring.submit()
    _wait_for(ring, ud, cq0)
    if prog.start == "link":
        _wait_for(ring, marker + 1, cq0)


def _run_instances(ring: Any, index: int, prog: Program, cq0: list[tuple[int, int, int]]) -> None:
    from pybpfuring.runtime import prep_nop
    for inst in range(prog.instances):
        ring.prep_bpf(index, user_data=(index << 8) | inst)
    ring.submit()
    for inst in prog.order:                      # one token at a time, in the drawn order
        sqe = ring.get_sqe(1 + inst)
        prep_nop(sqe)
        sqe.user_data = 7000 + inst
        ring.submit()
        _wait_for(ring, (index << 8) | inst, cq0)


def run_module(module: Module, path: Path, backend: str, engine: str = "auto") -> list[Any]:
    """One observation per program (or one error for the whole module, e.g. a refused load):
    every CQE per CQ after it ran, its log slots, CQ drops so far."""
    from pybpfuring.compiler import driver
    from pybpfuring.runtime import Ring, prep_nop
    loaded = driver.load_module(str(path))
    functions = [getattr(loaded, p.name) for p in module.programs]
    seen: list[Any] = []
    with Ring(16, cqs=module.cq_sizes, backend=backend, engine=engine) as ring:
        try:
            ring.register_programs(functions)
        except Exception as err:
            return [f"register_programs raised {type(err).__name__}: {err}"]
        log = loaded.log
        for index, prog in enumerate(module.programs):
            marker = 900000 + 10 * index
            cq0: list[tuple[int, int, int]] = []
            try:
                if prog.instances:
                    _run_instances(ring, index, prog, cq0)
                else:
                    _start(ring, index, prog, marker, cq0)
                sqe = ring.get_sqe(0)              # everything submitted before it has completed
                prep_nop(sqe)
                sqe.user_data = marker
                ring.submit()
                _wait_for(ring, marker, cq0)
                _settle(ring)
            except Exception as err:               # a stall or hang: the ring is not usable after
                seen.append({"cq0": cq0, "error": f"{type(err).__name__}: {err}"})
                break
            cqs = _drain(ring)
            cqs[0] = cq0 + cqs[0]
            base = index * 4 * SLOTS
            seen.append({"cqs": cqs, "log": [log[base + i] for i in range(4 * SLOTS)],
                         "drops": [ring.cq_drops(cq) for cq in range(1, NCQ)]})
    return seen

