"""The emulated backend: the 2021 IORING_OP_BPF model on any kernel with io_uring.

One real io_uring carries every I/O request. Everything the 2021 patches added lives here, in
process memory: the extra CQs (`cqs.py`), the program table, BPF requests and their WAITs, and the
`cq_idx` routing. The compiled BPF bytecode runs in the engine (`runtime/engine`), its helpers in
`helpers_2021.py`.

Routing. An SQE's `cq_idx` (byte 48, the 2021 field; upstream's `addr3`) is stripped before the kernel
sees it, and its `user_data` is replaced by an internal tag; the tag table remembers the caller's
user_data, the CQ and what to start next in a link chain. Each kernel CQE is translated back and
posted to its CQ (`_route`).

The event loop (`pump`) is the seam a native engine replaces later:
  1. run every ready BPF request (new ones, and WAITers whose CQ now holds >= wait_nr CQEs);
  2. hand the SQEs they queued to the kernel (one io_uring_enter);
  3. route every ready kernel CQE to its CQ, waking waiters and continuing link chains;
  4. repeat while anything is ready; then return, or block in io_uring_enter for one completion if
     the caller waits for a condition that does not hold yet.
"""
from __future__ import annotations

import ctypes
import errno
import heapq
import logging
import struct
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from pybpfuring.abi.bpf2021 import IORING_OP_BPF_2021
from pybpfuring.errors import ProgramFault, PyBpfUringError
from pybpfuring.runtime.engine.faults import VmFault
from pybpfuring.runtime.engine.interp import DEFAULT_BUDGET, Vm
from pybpfuring.runtime.engine.jit import JitVm
from pybpfuring.runtime.engine.memory import Memory
from pybpfuring.uring import IoUring, IoUringError
from pybpfuring.abi import uring as C
from pybpfuring.abi.structs import SQE_CQ_IDX, SQE_CQ_IDX_AT, SQE_HEAD, Cqe, Sqe

from . import explain as why
from .cqs import CompletionQueue, bad_cq_idx, completion_cq, refuse_bad_cq
from .engine_maps import EngineMap
from .helpers_2021 import Helpers2021
from .sigint import SIGINT_DEFERRAL
from .usermem import UserArena
from .requests import LINK_FLAGS, malformed_bpf_sqe
from .programs import (EngineProgram, build_programs, create_maps, open_object,
                       select_programs)

log = logging.getLogger("pybpfuring.runtime")
_M32 = 0xFFFF_FFFF
# io_uring_bpf_ctx: user_data, wait_nr, wait_idx (2021), then res, req, runs (lang/structs.py, Ctx)
_CTX = struct.Struct("<QIIiIII")
_CTX_RES = struct.Struct("<i")           # ctx.res alone (read after every OK run) ...
_CTX_RES_AT, _CTX_LINE = 16, 28          # ... and the offsets of ctx.res and ctx.__line
_STAND_IN_NOP = bytes([C.IORING_OP_NOP]) + bytes(47)   # in a refused SQE's place (_start_stage)
RUN_OK, RUN_WAIT = 0, 1
# Program runs the loop may make one after another with no kernel completion arriving in between
# (`Ring(run_budget=...)`): beyond it, programs are waking each other or themselves without doing
# I/O (a live-lock), and the request about to run fails with -EDEADLK instead of spinning for ever.
# It is also the most runs one non-blocking call (submit(), peek_cqe(), cqes()) makes.
DEFAULT_RUN_BUDGET = 100_000
QUIET_TAGS_MAX = 1 << 20


ENGINES = ("interp", "jit")  # + "native" and "auto": runtime/backends/native, chosen in backends/select.py


def _vm_class(engine: str) -> type[Vm]:
    """The interpreter (the semantic reference) or the LLVM JIT (same behaviour, faster)."""
    if engine == "interp":
        return Vm
    if engine == "jit":
        return JitVm
    raise ValueError(f"unknown engine {engine!r}; choose one of: auto, native, {', '.join(ENGINES)}")


def livelock_fault(program: Any, run_budget: int) -> VmFault:
    """The fault a request gets when the run budget ends a live-lock (located at the program)."""
    locate = getattr(program, "locate", None)
    return VmFault(program.name, "livelock",
                   f"not run: {run_budget} program runs in a row without a kernel completion "
                   "(the ring's run_budget; e.g. a program waiting on a CQ it fills itself)",
                   0, loc=locate(0) if locate else None)


class RingStalledError(PyBpfUringError):
    """A wait can never end: nothing is in flight in the kernel and no BPF request can run."""


class _Entry:
    """One SQE waiting to be dispatched (from user space or from a program)."""

    __slots__ = ("raw", "opcode", "flags", "user_data", "cq_idx", "keep")

    def __init__(self, raw: bytes, keep: list[object] | None = None) -> None:
        self.raw = raw
        self.opcode, self.flags = raw[0], raw[1]
        self.user_data = SQE_HEAD.unpack_from(raw)[8]
        self.cq_idx = SQE_CQ_IDX.unpack_from(raw, SQE_CQ_IDX_AT)[0]
        self.keep = keep


class _Continuation:
    """The rest of a link chain, started when the stage before it completes."""

    __slots__ = ("chain", "next")

    def __init__(self, chain: list[_Entry], nxt: int) -> None:
        self.chain = chain
        self.next = nxt


class _Tag:
    """A kernel request in flight: whose it is and where its CQE goes."""

    __slots__ = ("user_data", "cq_idx", "cont", "skip_success", "fail")

    def __init__(self, user_data: int, cq_idx: int, cont: _Continuation | None,
                 skip_success: bool = False, fail: int = 0) -> None:
        self.user_data = user_data
        self.cq_idx = cq_idx
        self.cont = cont
        self.skip_success = skip_success  # post no CQE for res >= 0 (IOSQE_CQE_SKIP_SUCCESS)
        self.fail = fail                  # < 0: a refusal's stand-in NOP, completes with this


class BpfRequest:
    """An IORING_OP_BPF request: which program, its SQE's user_data/cq_idx/flags, how often it ran."""

    __slots__ = ("prog", "user_data", "cq_idx", "flags", "cont", "runs", "claim_cq", "claim_nr",
                 "fail", "slot")

    def __init__(self, prog: int, entry: _Entry, cont: _Continuation | None) -> None:
        self.prog = prog
        self.user_data = entry.user_data
        self.cq_idx = entry.cq_idx
        self.flags = entry.flags
        self.cont = cont
        self.runs = 0
        self.claim_cq: CompletionQueue | None = None  # the CQ whose CQEs woke it, and how many
        self.claim_nr = 0
        self.fail = 0  # < 0: complete with this instead of running (a request refused at start)
        self.slot = -1  # ctx.req: taken at the first run, given back at completion

    def __repr__(self) -> str:
        return f"<BpfRequest prog={self.prog} user_data={self.user_data:#x} cq_idx={self.cq_idx}>"


class EmulatedBackend:
    """See the module docstring. Driven by `pybpfuring.runtime.Ring`; not thread-safe."""

    name = "emulated"

    def __init__(self, entries: int, cq_capacities: list[int], budget: int = DEFAULT_BUDGET,
                 engine: str = "interp") -> None:
        vm_class = _vm_class(engine)
        self.engine = engine      # ring.engine: which engine runs the programs
        self.io = IoUring(entries)
        try:
            self.cqs = [CompletionQueue(0, self.io.cq_entries)]
            self.cqs += [CompletionQueue(i + 1, size) for i, size in enumerate(cq_capacities)]
            self.memory = Memory()
            self.vm = vm_class(self.memory, budget)
        except BaseException:
            self.io.close()
            raise
        self._ctx = self.memory.allocate(_CTX.size, "io_uring_bpf_ctx")
        self.explanations = why.Explanations()
        self._free_slots: list[int] = []    # a heap of the request slots given back
        self._next_slot = 0
        self._ctx_addr = self._ctx.start
        self.helpers = Helpers2021(self)
        self.user_arena = UserArena()
        self.programs: list[EngineProgram] | None = None
        self.maps: dict[str, EngineMap] = {}
        self.faults: deque[ProgramFault] = deque(maxlen=1000)
        self.fault_count = 0
        self.runs = 0            # program runs, and the instructions they executed (for benchmarks)
        self.insns = 0
        self.waits = 0           # runs that returned WAIT, and SQEs programs submitted (Ring.stats)
        self.program_sqes = 0
        self.run_budget = DEFAULT_RUN_BUDGET
        self._spin = 0           # program runs since the last kernel completion (live-lock guard)
        self._attempts = 0       # requests taken from the ready queue (runs and refusals)
        self._run_limit: int | None = None    # a non-blocking pump returns at this many attempts
        self._deadline: float | None = None   # a timed pump's end (time.monotonic())
        # Runs in native code (the JIT) take Ctrl-C only between runs; the interpreter at once.
        self._sigint = SIGINT_DEFERRAL
        self._defer_sigint = type(self.vm) is not Vm
        self._staged: list[tuple[Sqe, int]] = []
        self._tags: dict[int, _Tag] = {}
        # IOSQE_CQE_SKIP_SUCCESS requests: the kernel posts a CQE only if they fail, so they are not
        # counted as in flight; the oldest are forgotten beyond QUIET_TAGS_MAX.
        self._quiet_tags: dict[int, _Tag] = {}
        self._next_tag = 1
        self._ready: deque[BpfRequest] = deque()
        self._waiting_cqs: set[CompletionQueue] = set()  # CQs with parked requests
        self._in_runs = False                            # a pass over the ready requests is on
        self._late: list[BpfRequest] = []                # woken during it: run after the routing
        self._link_in_run: list[_Entry] = []  # linked SQEs a running program submitted so far
        self._closed = False

    # --- set-up ---------------------------------------------------------------------------------
    def register_programs(self, elf: bytes, names: list[str] | None,
                          functions: list[Any] | None = None) -> list[str]:
        """Create the object's maps and programs; returns the program names in table order."""
        obj = open_object(elf)
        chosen = select_programs(obj, names)
        maps = create_maps(obj, self.memory)
        self.programs = build_programs(chosen, maps, self.helpers.table())
        self.maps = maps
        self.helpers.maps_by_handle = {m.handle: m for m in maps.values()}
        return [p.name for p in self.programs]

    def register_files(self, fds: list[int]) -> None:
        self.io.register_files(fds)

    def register_buffers(self, buffers: list[Any]) -> None:
        self.io.register_buffers(buffers)

    def user_memory(self, size: int, align: int) -> tuple[Any, int]:
        """Ring.user_memory: (buffer, offset) in this ring's arena (backends/usermem.UserArena)."""
        return self.user_arena.take(size, align)

    @property
    def sq_entries(self) -> int:
        return self.io.sq_entries

    # --- user-space submission --------------------------------------------------------------------
    def get_sqe(self, cq_idx: int) -> Sqe | None:
        if len(self._staged) >= self.io.sq_entries:
            return None
        sqe = Sqe()
        sqe._keep = None
        sqe.cq_idx = cq_idx
        self._staged.append((sqe, cq_idx))
        return sqe

    def submit(self, timeout: float | None = None, run: bool = True) -> int:
        """Dispatch every staged SQE (chains split at BPF requests), then (with `run`) pump without
        blocking (for at most `timeout` s, if given). submit_and_wait passes run=False: its blocking
        pump does the same work first, and one pump instead of two saved 4 us a call."""
        staged, self._staged = self._staged, []
        chain: list[_Entry] = []
        for sqe, _ in staged:
            entry = _Entry(ctypes.string_at(ctypes.addressof(sqe), 64), sqe._keep)
            sqe._keep = None
            chain.append(entry)
            if not entry.flags & LINK_FLAGS:
                self._start_stage(chain, 0)
                chain = []
        if chain:
            self._start_stage(chain, 0)
        if run:
            self.pump(None, timeout)
        return len(staged)

    # --- the event loop ---------------------------------------------------------------------------
    def pump(self, until: Callable[[], bool] | None = None, timeout: float | None = None) -> None:
        """Run, submit and route until nothing is ready; with `until`, block until it holds."""
        self._sigint.ensure_installed()
        self._pump(until, timeout)

    def _pump(self, until: Callable[[], bool] | None, timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        # A non-blocking call does a bounded amount of work: what stays ready runs on the next call.
        self._run_limit = self._attempts + self.run_budget + 1 if until is None else None
        self._deadline = deadline
        io = self.io
        while True:
            if self._ready:
                self._in_runs = True
                try:
                    self._run_ready()
                finally:
                    self._in_runs = False
            self._route_batch()
            if deadline is not None and time.monotonic() >= deadline:
                if until is None or until():
                    return
                raise TimeoutError(f"no completion within {timeout} s")
            if until is None and self._attempts >= self._run_limit:
                return
            if self._ready or self._wake_idle_waiters():
                continue
            if until is None or until():
                return
            if not self._tags:
                if deadline is not None:
                    raise TimeoutError(f"no completion within {timeout} s: nothing is in flight")
                raise RingStalledError(self._stall_message())
            # Block (Ctrl-C may end the wait) without consuming: the CQE is consumed and routed
            # together inside the deferral, so a Ctrl-C cannot fall between the two and lose it.
            io.wait_ready(None if deadline is None else max(deadline - time.monotonic(), 0.0))
            self._route_batch()

    def _route_batch(self) -> None:
        """Submit, consume and route every kernel CQE, then queue the requests runs woke, with
        Ctrl-C deferred: a CQE consumed but not yet routed, or a request between two queues, would
        be lost (its request would wait for ever)."""
        io, sigint = self.io, self._sigint
        sigint.enter_run()
        try:
            io.submit()
            self._drain_kernel()
            while io.sq_ready() and io.submit():
                # Chains the routing continued to kernel SQEs (a refusal's stand-in NOP among
                # them): still this routing batch, before any run.
                self._drain_kernel()
            if self._late:
                # Woken by a CQE a run posted: as in the kernel, after the next routing batch
                # (the scheduler wakes a CQ's waiters in the step after the run that filled it).
                self._ready.extendleft(reversed(self._late))
                self._late.clear()
        finally:
            sigint.leave_run()

    def _wake_idle_waiters(self) -> bool:
        """Wake waiters whose condition holds although no new CQE arrived (see cqs.py). Ctrl-C is
        deferred: a waiter taken off its CQ but not yet queued would be lost."""
        sigint = self._sigint
        sigint.enter_run()
        try:
            for cq in list(self._waiting_cqs):
                if not cq._waiters:
                    self._waiting_cqs.discard(cq)
                elif cq.entries:
                    self._wake(cq)
        finally:
            sigint.leave_run()
        return bool(self._ready)

    def _stall_message(self) -> str:
        waiting = [f"{req!r} waits on CQ {cq.index}" for cq in self.cqs
                   for req in cq.waiting_requests()[:5]]
        detail = "; ".join(waiting) if waiting else "no BPF request is waiting either"
        return ("this wait would never end: no request is in flight in the kernel and no BPF "
                f"request can run ({detail})")

    def _drain_kernel(self) -> None:
        io = self.io
        while True:
            cqe = io.peek_cqe()
            if cqe is None:
                return
            io.cq_advance(1)
            self._route(cqe)

    def _route(self, cqe: Cqe) -> None:
        self._spin = 0   # a kernel completion: the programs are doing I/O, not spinning
        tag_id = cqe[0]
        tag = self._tags.get(tag_id)
        if tag is None:
            quiet = self._quiet_tags.pop(tag_id, None)
            if quiet is not None:  # a skip-success request that failed
                self.post(quiet.cq_idx, quiet.user_data, cqe[1], cqe[2])
            return  # else: the ring's own quiesce cancel at close
        more = cqe[2] & C.IORING_CQE_F_MORE
        if not more:
            del self._tags[tag_id]
        res = tag.fail if tag.fail and cqe[1] >= 0 else cqe[1]   # cancelled stays cancelled
        if not (tag.skip_success and res >= 0):
            self.post(tag.cq_idx, tag.user_data, res, cqe[2])
        if tag.cont is not None and not more:
            self._continue(tag.cont, res)

    def post(self, cq_idx: int, user_data: int, res: int, flags: int) -> bool:
        """Post a CQE to CQ `cq_idx` and wake the waiters it satisfies; False if it was dropped."""
        cq = self.cqs[cq_idx]
        posted = cq.post(user_data, res, flags)
        if cq._waiters:
            self._wake(cq)
        return posted

    def _wake(self, cq: CompletionQueue) -> None:
        ready = self._late if self._in_runs else self._ready
        for wait_nr, request in cq.satisfied_waiters():
            request.claim_cq, request.claim_nr = cq, wait_nr
            ready.append(request)

    # --- dispatch: kernel stages and BPF stages of a chain -------------------------------------
    def _start_stage(self, chain: list[_Entry], i: int) -> None:
        """Start chain[i]: a BPF request, or the kernel SQEs from it up to the next BPF request
        (one kernel link; a refused one ends it)."""
        entry, ncq = chain[i], len(self.cqs)
        if entry.opcode == IORING_OP_BPF_2021 and not bad_cq_idx(entry.cq_idx, ncq):
            self._start_bpf(entry, _Continuation(chain, i + 1) if i + 1 < len(chain) else None)
            return
        j = i
        while True:
            refused = bad_cq_idx(chain[j].cq_idx, ncq)
            j += 1
            if refused or j == len(chain) or (chain[j].opcode == IORING_OP_BPF_2021
                                                        and not bad_cq_idx(chain[j].cq_idx, ncq)):
                break
        for k in range(i, j):
            e = chain[k]
            cont = _Continuation(chain, j) if k == j - 1 and j < len(chain) else None
            flags = e.flags & ~LINK_FLAGS if k == j - 1 else e.flags
            if bad_cq_idx(e.cq_idx, ncq):
                # Fails with -EINVAL on CQ 0 where it stands in the SQ (a BPF request too: the
                # 2021 patches check cq_idx at submission): a NOP takes its place at the end of
                # the kernel link and its CQE is posted as the refusal, in order with the inline
                # completions around it (bpf_ops: a NOP with IORING_NOP_INJECT_RESULT).
                fail = refuse_bad_cq(self.explanations, e.user_data, e.cq_idx, ncq)
                self._kernel_sqe(_STAND_IN_NOP, 0, e.user_data, completion_cq(e.cq_idx, ncq), None, cont,
                                 fail=fail)
            else:
                self._kernel_sqe(e.raw, flags, e.user_data, e.cq_idx, e.keep, cont)
            e.keep = None

    def _continue(self, cont: _Continuation, res: int) -> None:
        chain, nxt = cont.chain, cont.next
        if nxt >= len(chain):
            return
        if res < 0 and not chain[nxt - 1].flags & C.IOSQE_IO_HARDLINK:
            ncq = len(self.cqs)
            for entry in chain[nxt:]:
                cq = completion_cq(entry.cq_idx, ncq)
                self.explanations.note(cq, entry.user_data, -errno.ECANCELED, why.canceled(res))
                self.post(cq, entry.user_data, -errno.ECANCELED, 0)
                entry.keep = None
            return
        self._start_stage(chain, nxt)

    def _kernel_sqe(self, raw: bytes, flags: int, user_data: int, cq_idx: int,
                    keep: list[object] | None, cont: _Continuation | None, fail: int = 0) -> None:
        """Queue a kernel SQE whose CQE goes to CQ `cq_idx` as `user_data`, then `cont`; with
        `fail` < 0 its CQE is posted with that res (a refusal's stand-in)."""
        io = self.io
        sqe = io.get_sqe()
        if sqe is None:
            io.submit()
            sqe = io.get_sqe()
            if sqe is None:
                self._drain_kernel()
                io.submit()
                sqe = io.get_sqe()
                if sqe is None:
                    raise IoUringError("the kernel accepts no more submissions (SQ stays full)",
                                       errno.EBUSY)
        # The slot was zeroed by get_sqe: copying up to cq_idx leaves it and the padding at zero.
        ctypes.memmove(ctypes.addressof(sqe), raw, SQE_CQ_IDX_AT)
        tag = self._next_tag
        self._next_tag = tag + 1
        sqe.user_data = tag
        if keep:
            sqe._keep = keep
        if flags & C.IOSQE_CQE_SKIP_SUCCESS:
            if cont is not None:  # its completion starts the rest of the chain: we need the CQE
                flags &= ~C.IOSQE_CQE_SKIP_SUCCESS
                self._tags[tag] = _Tag(user_data, cq_idx, cont, skip_success=True)
            else:
                quiet = self._quiet_tags
                quiet[tag] = _Tag(user_data, cq_idx, None)
                if len(quiet) > QUIET_TAGS_MAX:
                    del quiet[next(iter(quiet))]
        else:
            self._tags[tag] = _Tag(user_data, cq_idx, cont, fail=fail)
        sqe.flags = flags

    def submit_from_program(self, raw: bytes) -> int:
        """The `submit` helper: a program's SQE joins a chain or is dispatched at once."""
        entry = _Entry(raw)
        if entry.flags & LINK_FLAGS:
            self._link_in_run.append(entry)
            return 0
        if self._link_in_run:
            chain, self._link_in_run = self._link_in_run + [entry], []
        else:
            chain = [entry]
        self._start_stage(chain, 0)
        return 0

    # --- BPF requests -----------------------------------------------------------------------------
    def _start_bpf(self, entry: _Entry, cont: _Continuation | None) -> None:
        off = SQE_HEAD.unpack_from(entry.raw)[4]
        programs = self.programs
        request = BpfRequest(off, entry, cont)
        if malformed_bpf_sqe(entry.raw):
            request.fail = -errno.EINVAL
            self.explanations.note(entry.cq_idx, entry.user_data, request.fail, why.bad_bpf_sqe())
        elif programs is None or off >= len(programs):
            request.fail = -errno.EFAULT  # an empty slot of the program table
            self.explanations.note(entry.cq_idx, entry.user_data, request.fail,
                                   why.bad_program(off, len(programs or [])))
        self._ready.append(request)  # refused ones complete from there (no deep recursion)

    def _complete(self, request: BpfRequest, res: int) -> None:
        if request.slot >= 0:
            heapq.heappush(self._free_slots, request.slot)
            request.slot = -1
        if res < 0 or not request.flags & C.IOSQE_CQE_SKIP_SUCCESS:
            self.post(request.cq_idx, request.user_data, res, 0)
        if request.cont is not None:
            self._continue(request.cont, res)

    def _run_ready(self) -> None:
        """Run the ready requests, stopping early (they stay ready) when a timed call's deadline
        passed or a non-blocking call made its share of runs, so neither can spin for ever."""
        ready, limit, deadline = self._ready, self._run_limit, self._deadline
        while ready:
            self._run_next(ready)
            if (limit is not None and self._attempts >= limit) or \
                    (deadline is not None and time.monotonic() >= deadline):
                return

    def _run_next(self, ready: deque[BpfRequest]) -> None:
        # Ctrl-C waits until this request's bookkeeping is consistent (and, on the JIT, until the
        # run returns: see sigint.py); only the interpreter's run itself takes it at once. The
        # request leaves the ready queue inside that window: a Ctrl-C between the pop and the run
        # lost it (seen once: no CQE, nothing in flight).
        sigint = self._sigint
        sigint.enter_run()
        try:
            self._run_one(ready.popleft())
        finally:
            sigint.leave_run()

    def _run_one(self, request: BpfRequest) -> None:
        self._attempts += 1
        if request.fail:
            self._complete(request, request.fail)
            return
        assert self.programs is not None
        program = self.programs[request.prog].program
        claim = request.claim_cq
        if claim is not None:
            claim.promised -= request.claim_nr
            request.claim_cq = None
        self._spin += 1
        if self._spin > self.run_budget:
            self._spin = 0
            self._record_fault(livelock_fault(program, self.run_budget), request)
            self._complete(request, -errno.EDEADLK)
            return
        ctx = self._ctx.view
        if request.slot < 0:
            request.slot = self._take_slot()
        _CTX.pack_into(ctx, 0, request.user_data, 0, 0, 0, request.slot, request.runs, 0)
        request.runs += 1
        self.runs += 1
        if not self._defer_sigint:
            self._sigint.run_interruptible()
        try:
            r0 = self.vm.run(program, r1=self._ctx_addr)
        except KeyboardInterrupt:
            # Ctrl-C in the middle of a run: the request ends (-EINTR) rather than vanishing.
            self._sigint.enter_run()
            self._end_run_links()
            self.explanations.note(request.cq_idx, request.user_data, -errno.EINTR,
                                   "-EINTR: Ctrl-C (SIGINT) arrived while the program ran")
            self._complete(request, -errno.EINTR)
            raise
        except VmFault as fault:
            self._sigint.enter_run()
            self.insns += self.vm.last_insn_count
            self._end_run_links()
            self._record_fault(fault, request)
            self._complete(request, -fault.errno)
            return
        self._sigint.enter_run()
        self.insns += self.vm.last_insn_count
        self._end_run_links()
        ret = r0 & _M32
        if ret == RUN_OK:
            self._complete(request, _CTX_RES.unpack_from(ctx, _CTX_RES_AT)[0])
        elif ret == RUN_WAIT:
            _, wait_nr, wait_idx = _CTX.unpack_from(ctx)[:3]
            self._wait(request, wait_nr, wait_idx)
        else:
            log.warning("program %r returned %d (neither OK=0 nor WAIT=1): its request fails "
                        "with -EINVAL", program.name, ret)
            self.explanations.note(request.cq_idx, request.user_data, -errno.EINVAL,
                                   why.bad_return(self._where(request.prog), ret))
            self._complete(request, -errno.EINVAL)

    def _take_slot(self) -> int:
        """The lowest free request slot (ctx.req): slots stay below REQUEST_SLOTS unless that
        many requests are in flight at once, and then the program's per-request state refuses
        the request (-EBUSY)."""
        if self._free_slots:
            return heapq.heappop(self._free_slots)
        self._next_slot += 1
        return self._next_slot - 1

    def _wait(self, request: BpfRequest, wait_nr: int, wait_idx: int) -> None:
        self.waits += 1
        # A wait that can never end (bad CQ, nothing to wait for, more than an extra CQ holds)
        # fails the request instead of hanging it.
        if wait_idx >= len(self.cqs) or wait_nr == 0 or \
                (wait_idx and wait_nr > self.cqs[wait_idx].capacity):
            self.explanations.note(request.cq_idx, request.user_data, -errno.EINVAL,
                                   self._bad_wait_text(self._where(request.prog), wait_idx, wait_nr))
            self._complete(request, -errno.EINVAL)
            return
        cq = self.cqs[wait_idx]
        if cq.ready >= wait_nr:
            self._ready.append(request)
        else:
            cq.add_waiter(wait_nr, request)
            self._waiting_cqs.add(cq)

    def _end_run_links(self) -> None:
        if self._link_in_run:
            chain, self._link_in_run = self._link_in_run, []
            self._start_stage(chain, 0)

    def _where(self, prog: int, line: int | None = None) -> str:
        """Program `prog` and the line of the return that ended its run (ctx.__line, unless the
        caller has it from elsewhere)."""
        assert self.programs is not None
        program = self.programs[prog].program
        if line is None:
            line = int.from_bytes(self._ctx.view[_CTX_LINE:_CTX_LINE + 4], "little")
        return why.where(why.file_of(program.locate), program.name, line)

    def _bad_wait_text(self, at: str, wait_idx: int, wait_nr: int) -> str:
        cap = self.cqs[wait_idx].capacity if wait_idx < len(self.cqs) else 0
        return why.bad_wait(at, wait_idx, wait_nr, len(self.cqs), cap)

    def _record_fault(self, fault: VmFault, request: BpfRequest) -> None:
        self.explanations.note(request.cq_idx, request.user_data, -(fault.errno or errno.EFAULT),
                               f"-{errno.errorcode.get(fault.errno or errno.EFAULT, '?')}: "
                               f"{fault.render()}")
        self.faults.append(fault)
        self.fault_count += 1
        count = self.fault_count
        # Logged like the kernel's ratelimited warnings: the first 10, then every 1000th.
        if count <= 10 or count % 1000 == 0:
            more = f" ({count} faults on this ring so far)" if count > 10 else ""
            log.warning("BPF request %#x (program %d) failed with -%s%s: %s", request.user_data,
                        request.prog, errno.errorcode.get(fault.errno, fault.errno), more,
                        fault.render())

    # --- state for users and tests ------------------------------------------------------------
    def in_flight(self) -> int:
        """Kernel requests not completed yet plus BPF requests ready or waiting."""
        return (len(self._tags) + len(self._ready) + len(self._late)
                + sum(cq.waiting for cq in self.cqs))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._staged = []
        self._ready.clear()
        self._late.clear()
        self._waiting_cqs.clear()
        for cq in self.cqs:
            cq.clear_waiters()
        try:
            self.io.close()
        finally:
            self._tags.clear()
            self._quiet_tags.clear()
            self.vm.close()
