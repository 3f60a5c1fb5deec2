"""`NativeBackend`: the emulated backend with its event loop, CQs and io_uring helpers in native code.

Ring(engine="native") (the default where a C compiler is available). The semantics are the emulated
backend's (`backends/emulated.py`, the reference, which this class extends): programs run as JIT'd
code, called by the native loop through the JIT's entry points; the hot helpers (submit, emit_cqe,
reap_cqe, copy_{from,to}_user, array-map lookup/update/delete, ktime, prandom) are native
`NativeHelper`s over the loop's data. Python keeps the control plane: set-up, registration, user
submissions, link chains (their continuations), pinned memory, fault reports, and user-space reads
of the CQs. The loop returns to Python with an event whenever one of those is needed.
"""
from __future__ import annotations

import ctypes
import errno
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from pybpfuring.errors import ProgramFault
from pybpfuring.runtime.backends import explain as why
from pybpfuring.runtime.backends.emulated import (_CTX, _CTX_RES, _CTX_RES_AT, DEFAULT_RUN_BUDGET, RUN_OK, RUN_WAIT, BpfRequest,
                                                  EmulatedBackend, RingStalledError, _Continuation,
                                                  livelock_fault)
from pybpfuring.runtime.backends.engine_maps import EngineMap
from pybpfuring.runtime.backends.helpers_2021 import (HELPER_COPY_TO_USER, HELPER_EMIT_CQE,
                                                      HELPER_REAP_CQE, HELPER_SUBMIT, Helpers2021)
from pybpfuring.runtime.backends.usermem import UserArena
from pybpfuring.runtime.backends.programs import build_programs, open_object, select_programs
from pybpfuring.runtime.backends.sigint import SIGINT_DEFERRAL
from pybpfuring.runtime.engine import jit_abi as J
from pybpfuring.runtime.engine.faults import StopProgram, VmFault
from pybpfuring.runtime.engine.interp import DEFAULT_BUDGET, M64
from pybpfuring.runtime.engine.jit import JitVm, NativeHelper, _Binding
from pybpfuring.runtime.engine.memory import Memory
from pybpfuring.uring import IoUring, IoUringError, RingClosedError
from pybpfuring.uring import ring as ring_module
from pybpfuring.uring.buffers import pin
from pybpfuring.abi.structs import Cqe
from pybpfuring.uring.syscalls import IoUringEnterError

from .build import load
from .conditions import CqAtLeast
from .maps import create_native_maps, map_descriptors

log = logging.getLogger("pybpfuring.runtime")
NL_DONE, NL_NEED_PY, NL_STALLED, NL_TIMEOUT, NL_ERROR, NL_INTR, NL_YIELD = range(7)
EV_CONT, EV_RELEASE, EV_RUN, EV_LIVELOCK, EV_BADWAIT = 1, 2, 3, 4, 5
QUIET_BIT = 1 << 63
_M32 = 0xFFFF_FFFF
NATIVE_OPT = 2  # JIT level: with Python out of the loop the programs' own code shows; 2 is ~2x level 1
NATIVE_OPT_MAX_SLOTS = 2000  # larger programs are compiled at level 1 (level 2: ~2 s at this size)
NATIVE_HELPER_IDS = (1, 2, 3, 5, 7, 148, HELPER_SUBMIT, HELPER_EMIT_CQE, HELPER_REAP_CQE,
                     HELPER_COPY_TO_USER)
_MAP_CB = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint64,
                           ctypes.c_uint64, ctypes.c_uint64, ctypes.c_uint64)
_TRAMPOLINE = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p, ctypes.c_int64, ctypes.c_uint64,
                               ctypes.c_uint64, ctypes.c_uint64, ctypes.c_uint64, ctypes.c_uint64,
                               ctypes.c_uint64)


class _CqeOut(ctypes.Structure):
    _fields_ = [("user_data", ctypes.c_uint64), ("res", ctypes.c_int32), ("flags", ctypes.c_uint32)]


class NativeCq:
    """A CQ living in the native loop, with CompletionQueue's user-facing interface."""

    __slots__ = ("_backend", "index", "capacity", "_out")

    def __init__(self, backend: "NativeBackend", index: int, capacity: int) -> None:
        self._backend = backend
        self.index = index
        self.capacity = capacity
        self._out = _CqeOut()

    def _live_loop(self) -> int:
        loop = self._backend._loop
        if loop is None:
            raise RingClosedError("this Ring is closed")
        return loop

    @property
    def ready(self) -> int:
        return int(self._backend._lib.nl_cq_ready(self._live_loop(), self.index))

    def _take(self, consume: bool) -> Cqe | None:
        out = self._out
        if not self._backend._lib.nl_cq_take(self._live_loop(), self.index, ctypes.byref(out), consume):
            return None
        return Cqe(out.user_data, out.res, out.flags)

    def reap(self) -> Cqe | None:
        return self._take(True)

    def peek(self) -> Cqe | None:
        return self._take(False)

    def _info(self) -> list[int]:
        out = (ctypes.c_uint64 * 5)()
        self._backend._lib.nl_cq_info(self._live_loop(), self.index, out)
        return list(out)

    @property
    def drops(self) -> int:
        return self._info()[0]

    @property
    def overflowed(self) -> int:
        return self._info()[1]

    @property
    def posted(self) -> int:
        return self._info()[4]

    @property
    def waiting(self) -> int:
        return self._info()[2]

    def clear_waiters(self) -> list[Any]:
        return []  # the native loop's memory goes with it


class _NativeReady:
    """Stands for EmulatedBackend._ready: requests the reference code queues (new and refused BPF
    requests) join the native ready queue, so runs and refusals keep one FIFO order."""

    __slots__ = ("_backend",)

    def __init__(self, backend: "NativeBackend") -> None:
        self._backend = backend

    def append(self, request: BpfRequest) -> None:
        b = self._backend
        b._lib.nl_add_request(b._loop, max(request.prog, 0), request.user_data, request.cq_idx,
                              request.flags, b._cont_id(request.cont), request.fail)

    def __len__(self) -> int:
        return 0  # the native queue is counted by in_flight()

    def clear(self) -> None:
        pass


class NativeBackend(EmulatedBackend):
    """The emulated backend, event loop in native code. Driven by `Ring`; not thread-safe."""

    name = "emulated"

    def __init__(self, entries: int, cq_capacities: list[int], budget: int = DEFAULT_BUDGET,
                 engine: str = "native") -> None:
        self._lib = load()
        self._loop: int | None = None
        self._closed = True
        self.io = IoUring(entries)
        try:
            self.memory = Memory()
            self.vm = JitVm(self.memory, budget, opt=NATIVE_OPT)
            self._loop = self._new_loop([self.io.cq_entries, *cq_capacities])
        except BaseException:
            self.io.close()
            raise
        self._closed = False
        self.engine = "native"
        self.cqs = [NativeCq(self, i, cap) for i, cap in enumerate([self.io.cq_entries, *cq_capacities])]
        self._ctx = self.memory.allocate(_CTX.size, "io_uring_bpf_ctx")
        self._ctx_addr = self._ctx.start
        self._budget = budget
        self.helpers = Helpers2021(self)  # the Python helpers: hash maps, trace_printk
        self.user_arena = UserArena()
        self._buffer_spans: list[tuple[int, int]] = []
        self.programs = None
        self.maps: dict[str, EngineMap] = {}
        self.faults: deque[ProgramFault] = deque(maxlen=1000)
        self.fault_count = 0
        self.explanations = why.Explanations()
        self._staged = []
        self._link_in_run = []
        self._in_runs, self._late = False, []   # unused here: the native loop orders its wakes
        self._sigint = SIGINT_DEFERRAL
        self._ready = _NativeReady(self)  # type: ignore[assignment]
        self._bindings: list[_Binding] = []
        self._conts: dict[int, _Continuation] = {}
        self._next_cont = 1
        self._pins: dict[int, list[object]] = {}
        self._lifetime_pins: list[object] = []
        self._event = (ctypes.c_uint64 * 4)()
        self._counters = (ctypes.c_uint64 * 8)()
        self._tag_out = ctypes.c_uint64()
        # Callbacks from native code into Python (kept referenced for the loop's lifetime).
        self._map_cb = _MAP_CB(self._map_helper)
        self._trampoline = _TRAMPOLINE(self._py_helper)
        self.vm.set_context_field(J.CTX_PYHELPER, ctypes.cast(self._trampoline, ctypes.c_void_p).value or 0)
        self._lib.nl_set_engine(self._loop, self.vm.context_address, self._ctx_addr, budget,
                                ctypes.cast(self._map_cb, ctypes.c_void_p))
        self.run_budget = DEFAULT_RUN_BUDGET

    @property
    def run_budget(self) -> int:
        """See EmulatedBackend: consecutive runs without a kernel completion before a live-lock
        is ended (the native loop keeps the count)."""
        return self._run_budget

    @run_budget.setter
    def run_budget(self, value: int) -> None:
        self._run_budget = value
        self._lib.nl_set_run_budget(self._loop, value)

    def _new_loop(self, capacities: list[int]) -> int:
        io, p = self.io, self.io.params
        sq, cq = io.sq_ring_addr, io.cq_ring_addr
        sq_mask = ctypes.c_uint32.from_address(sq + p.sq_off.ring_mask).value
        cq_mask = ctypes.c_uint32.from_address(cq + p.cq_off.ring_mask).value
        caps = (ctypes.c_uint32 * len(capacities))(*capacities)
        loop = self._lib.nl_new(io.fd, sq + p.sq_off.head, sq + p.sq_off.tail, sq + p.sq_off.flags,
                                sq_mask, io.sq_entries, io.sqes_addr, cq + p.cq_off.head,
                                cq + p.cq_off.tail, cq_mask, cq + p.cq_off.cqes, caps, len(capacities))
        if not loop:
            raise MemoryError("cannot allocate the native event loop")
        return int(loop)

    # --- counters (Ring.stats) -------------------------------------------------------------------
    def _count(self) -> ctypes.Array[ctypes.c_uint64]:
        self._lib.nl_counters(self._loop, self._counters)
        return self._counters

    @property
    def runs(self) -> int:
        return int(self._count()[3])

    @property
    def insns(self) -> int:
        return int(self._count()[4])

    @property
    def waits(self) -> int:
        return int(self._count()[6])

    @property
    def program_sqes(self) -> int:
        return int(self._count()[7])

    def in_flight(self) -> int:
        c = self._count()
        return int(c[0] + c[1] + c[2])

    # --- set-up ---------------------------------------------------------------------------------
    def register_programs(self, elf: bytes, names: list[str] | None,
                          functions: list[Any] | None = None) -> list[str]:
        obj = open_object(elf)
        chosen = select_programs(obj, names)
        images = {name: bytes(gd.image) for name, gd in obj.global_data.items()}
        maps = create_native_maps(obj.maps, images, self.memory, self._lib)
        table: dict[int, Any] = dict(self.helpers.table())
        for hid in NATIVE_HELPER_IDS:
            table[hid] = NativeHelper(int(self._lib.nl_helper(hid)), f"native helper {hid}", self._lib)
        self.programs = build_programs(chosen, maps, table)
        self.maps = maps
        self.helpers.maps_by_handle = {m.handle: m for m in maps.values()}
        self._bindings = []
        for p in self.programs:
            # Level 2 costs ~2.5x level 1's compile time, which grows with size: big programs get 1.
            self.vm.opt = NATIVE_OPT if len(p.program.insns) <= NATIVE_OPT_MAX_SLOTS else 1
            self._bindings.append(self.vm.bind(p.program, 0))
        n = len(self._bindings)
        fns = (ctypes.c_uint64 * max(n, 1))(*[b.code.entries[0] for b in self._bindings])
        consts = (ctypes.c_uint64 * max(n, 1))(*[b.consts_addr for b in self._bindings])
        self._lib.nl_set_programs(self._loop, fns, consts, n)
        desc = map_descriptors(maps)
        table_arr = (ctypes.c_uint64 * max(len(desc), 1))(*desc)
        self._lib.nl_set_maps(self._loop, table_arr, len(maps))
        return [p.name for p in self.programs]

    def user_memory(self, size: int, align: int) -> tuple[Any, int]:
        place = self.user_arena.take(size, align)
        self._tell_known()
        return place

    def register_buffers(self, buffers: list[Any]) -> None:
        super().register_buffers(buffers)
        # pinned by the IoUring until close(): valid for the loop's whole life
        self._buffer_spans = [pin(b, writable=True, what=f"registered buffer {i}")[:2]
                              for i, b in enumerate(buffers)]
        self._tell_known()

    def _tell_known(self) -> None:
        """Give the loop the user memory it may copy with plain loads and stores (sorted, merged)."""
        spans = sorted((a, a + n) for a, n in self.user_arena.spans() + self._buffer_spans if n)
        merged: list[list[int]] = []
        for lo, hi in spans:
            if merged and lo <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        flat = [v for lo, hi in merged for v in (lo, hi, 1)]
        table = (ctypes.c_uint64 * max(len(flat), 1))(*flat)
        self._lib.nl_set_known(self._loop, table, len(merged))

    def copy_counts(self) -> tuple[int, int]:
        """(copy_{from,to}_user served as plain copies, copies through process_vm_*)."""
        out = (ctypes.c_uint64 * 2)()
        self._lib.nl_copy_counts(self._loop, out)
        return int(out[0]), int(out[1])

    # --- callbacks from native code -----------------------------------------------------------------
    def _py_helper(self, ctx: int, pc: int, r1: int, r2: int, r3: int, r4: int, r5: int, extra: int) -> int:
        """The JIT's Python-helper trampoline during a native run: bind the running program first."""
        binding = self._bindings[self._lib.nl_current_prog(self._loop)]
        return self.vm.hosted_helper(binding, self._budget, ctx, pc, r1, r2, r3, r4, r5, extra)

    def _map_helper(self, ctx: int, helper: int, handle: int, a: int, b: int, c: int) -> int:
        """Map helpers on maps the native code does not hold (hash maps): the Python ones. Never
        raises: a fault becomes the pending exception the run reports, as for any Python helper."""
        vm = self.vm
        binding = self._bindings[self._lib.nl_current_prog(self._loop)]
        pc = vm.context_field(J.CTX_PC)
        fn = (self.helpers.map_lookup_elem, self.helpers.map_update_elem, self.helpers.map_delete_elem)
        try:
            return int(fn[helper - 1](vm, handle, a, b, c, 0)) & M64
        except BaseException as exc:  # faults and bugs alike become the run's pending fault
            vm.hosted_failure(binding, exc, pc)
        return 0

    # --- dispatch (the reference's, onto native structures) -------------------------------------
    def _cont_id(self, cont: _Continuation | None) -> int:
        if cont is None:
            return 0
        cid = self._next_cont
        self._next_cont = cid + 1
        self._conts[cid] = cont
        return cid

    def _kernel_sqe(self, raw: bytes, flags: int, user_data: int, cq_idx: int,
                    keep: list[object] | None, cont: _Continuation | None, fail: int = 0) -> None:
        cid = self._cont_id(cont)
        out = self._tag_out
        err = self._lib.nl_kernel_sqe(self._loop, raw, flags, user_data, cq_idx, cid, 1 if keep else 0,
                                      fail, ctypes.byref(out))
        if err:
            self._conts.pop(cid, None)
            raise IoUringError("the kernel accepts no more submissions (SQ stays full)", -err)
        tag = out.value
        if keep:
            if tag & QUIET_BIT:
                self._lifetime_pins.append(keep)
            else:
                self._pins[tag] = keep

    def post(self, cq_idx: int, user_data: int, res: int, flags: int) -> bool:
        return bool(self._lib.nl_post(self._loop, cq_idx, user_data, res, flags & _M32))

    # --- events from the loop -----------------------------------------------------------------------
    def _drain_events(self) -> None:
        lib, loop, ev = self._lib, self._loop, self._event
        while lib.nl_pop_event(loop, ev):
            kind, a, b, c = ev[0], ev[1], ev[2], ev[3]
            if kind == EV_RELEASE:
                self._pins.pop(a, None)
            elif kind == EV_CONT:
                self._continue(self._conts.pop(a), b - (1 << 64) if b >> 63 else b)
            elif kind == EV_RUN:
                self._finish_run(a, b, c)
            elif kind == EV_LIVELOCK:   # the loop already completed the request with -EDEADLK
                assert self.programs is not None
                self._record(livelock_fault(self.programs[a].program, self._run_budget), b, a)
            elif kind == EV_BADWAIT:    # the loop completed it with -EINVAL; note why
                self._note_bad_wait(a, b, c)

    def _note_bad_wait(self, user_data: int, wait: int, info: int) -> None:
        # The line comes with the event: the ctx may hold later runs' by now.
        at = self._where(info & 0xFF, info >> 32)
        self.explanations.note((info >> 8) & 0xFFFF, user_data, -errno.EINVAL,
                               self._bad_wait_text(at, wait & _M32, wait >> 32))

    def _finish_run(self, req: int, r0: int, status: int) -> None:
        """A run the native loop handed over: dispatch its deferred SQEs, then its fault or result
        (what EmulatedBackend._run does after vm.run)."""
        lib, loop = self._lib, self._loop
        ptr = ctypes.c_void_p()
        n = lib.nl_deferred(loop, ctypes.byref(ptr))
        raws = ctypes.string_at(ptr.value, 64 * n) if n else b""
        for i in range(n):
            self.submit_from_program(raws[64 * i:64 * (i + 1)])
        self._end_run_links()
        info = (ctypes.c_uint64 * 3)()
        lib.nl_request(loop, req, info)
        prog, user_data = int(info[0]), int(info[1])
        if status:
            try:
                self.vm.raise_status(self._bindings[prog], self._budget)
            except VmFault as fault:
                self._record(fault, user_data, prog)
                self._complete_native(req, -(fault.errno or errno.EFAULT))
                return
            except StopProgram as stop:
                r0 = stop.value & M64
        ret = r0 & _M32
        if ret == RUN_OK:
            self._complete_native(req, _CTX_RES.unpack_from(self._ctx.view, _CTX_RES_AT)[0])
        elif ret == RUN_WAIT:
            _, wait_nr, wait_idx = _CTX.unpack_from(self._ctx.view)[:3]
            lib.nl_wait(loop, req, wait_nr, wait_idx)
            self._drain_events()
        else:
            assert self.programs is not None
            log.warning("program %r returned %d (neither OK=0 nor WAIT=1): its request fails "
                        "with -EINVAL", self.programs[prog].name, ret)
            self.explanations.note(int(info[2]), user_data, -errno.EINVAL,
                                   why.bad_return(self._where(prog), ret))
            self._complete_native(req, -errno.EINVAL)

    def _complete_native(self, req: int, res: int) -> None:
        self._lib.nl_complete(self._loop, req, res)
        self._drain_events()

    def _record(self, fault: VmFault, user_data: int, prog: int) -> None:
        request = BpfRequest.__new__(BpfRequest)  # only what the reference's report reads
        request.user_data, request.prog, request.cq_idx = user_data, prog, 0
        self._record_fault(fault, request)

    # --- the event loop ---------------------------------------------------------------------------
    def pump(self, until: Callable[[], bool] | None = None, timeout: float | None = None) -> None:
        """As EmulatedBackend.pump, in native code: returns when `until()` holds (at once when None)."""
        if self._closed:
            return
        self._sigint.ensure_installed()
        self._pump_native(until, timeout)

    def _pump_native(self, until: Callable[[], bool] | None, timeout: float | None) -> None:
        deadline = -1 if timeout is None else time.monotonic_ns() + int(timeout * 1e9)
        native_cond = isinstance(until, CqAtLeast) and isinstance(until.cq, NativeCq) \
            and until.cq._backend is self
        if until is None:
            cond_cq, cond_n = -1, 0
        elif native_cond:
            assert isinstance(until, CqAtLeast)
            cond_cq, cond_n = until.cq.index, until.n
        else:
            cond_cq, cond_n = -1, 0  # a Python condition: run until idle, check it, then block once
        self._drain_events()
        self.vm.sync_regions()
        lib, loop = self._lib, self._loop
        # As the Python loop: a non-blocking call stops after its share of runs (the rest stay
        # ready); the loop yields every few ms so Ctrl-C and the deadline are seen while it spins.
        attempt_limit = lib.nl_attempts(loop) + self._run_budget + 1 if until is None else 0
        while True:
            sigint = self._sigint
            sigint.enter_run()   # Python helpers called from the run must not take Ctrl-C
            try:
                rc = lib.nl_run(loop, cond_cq, cond_n, deadline, attempt_limit)
                self._drain_events()
            finally:
                sigint.leave_run()   # between nl_run calls the loop's state is consistent
            if rc in (NL_NEED_PY, NL_INTR, NL_YIELD) and 0 <= deadline <= time.monotonic_ns():
                lib.nl_flush(loop)   # the loop leaves SQEs unsubmitted when it hands work to Python
                if until is None or until():
                    return
                raise TimeoutError(f"no completion within {timeout} s")
            if rc == NL_YIELD and until is not None and not native_cond and until():
                return
            if rc in (NL_NEED_PY, NL_INTR, NL_YIELD):
                continue
            if rc == NL_DONE:
                if until is None or native_cond or until():
                    return
                cond_cq = -2
                continue
            if rc == NL_STALLED:
                if until is not None and until():
                    return
                if timeout is not None:
                    raise TimeoutError(f"no completion within {timeout} s: nothing is in flight")
                raise RingStalledError(self._stall_message())
            if rc == NL_TIMEOUT:
                raise TimeoutError(f"no io_uring completion within {timeout} s")
            raise IoUringEnterError("io_uring_enter (native event loop)", lib.nl_error(loop))

    def _stall_message(self) -> str:
        waiting = []
        ids = (ctypes.c_uint32 * 5)()
        info = (ctypes.c_uint64 * 3)()
        for cq in self.cqs:
            for i in range(self._lib.nl_cq_waiters(self._loop, cq.index, ids, 5)):
                self._lib.nl_request(self._loop, ids[i], info)
                waiting.append(f"<BpfRequest prog={info[0]} user_data={info[1]:#x} cq_idx={info[2]}> "
                               f"waits on CQ {cq.index}")
        detail = "; ".join(waiting) if waiting else "no BPF request is waiting either"
        return ("this wait would never end: no request is in flight in the kernel and no BPF "
                f"request can run ({detail})")

    # --- lifetime ---------------------------------------------------------------------------------
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._staged = []
        io, lib, loop = self.io, self._lib, self._loop
        try:
            # Hand the SQ position and the pinned memory of requests still in the kernel back to the
            # IoUring, so that its close() cancels and reaps them before the pins go.
            lib.nl_flush(loop)
            counters = self._count()
            io._sqe_tail = io._sqe_flushed = int(counters[5])
            tags = (ctypes.c_uint64 * max(len(self._pins), 1))()
            for i in range(lib.nl_pinned_tags(loop, tags, len(self._pins))):
                keep = self._pins.pop(int(tags[i]), None)
                if keep is not None:
                    io._inflight[int(tags[i])] = [1, keep]
            ring_module._ORPHANED_PINS.extend(self._lifetime_pins)
            self._pins.clear()
            self._lifetime_pins = []
            io.close()
        finally:
            self._conts.clear()
            self._loop = None
            lib.nl_free(loop)
            self.vm.close()


__all__ = ["NativeBackend", "NativeCq"]
