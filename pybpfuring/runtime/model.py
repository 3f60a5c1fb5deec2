"""`Ring`: the talk's model (IORING_OP_BPF requests, extra CQs, cq_idx routing) on any kernel.

    from pybpfuring.runtime import Ring, prep_nop
    with Ring(64, cqs=[128, 128]) as ring:
        ring.register_programs([test, counting])     # @iouring_program functions (or an ELF)
        ring.prep_bpf(test, user_data=ptr)           # an IORING_OP_BPF request
        ring.submit_and_wait(1)
        print(ring.wait_cqe(), ring.maps["arr"][0])

CQ 0 is the main CQ; `cqs` gives the sizes of the extra CQs 1..N. Every user-space wait pumps the
event loop (docs/runtime.md): programs run, their SQEs reach the kernel, CQEs are routed to CQs.
"""
from __future__ import annotations

import ctypes
import os
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

from pybpfuring.abi.bpf2021 import IORING_OP_BPF_2021, MAX_BPF_PROGS, MAX_EXTRA_CQS
from pybpfuring.compiler import driver
from pybpfuring.errors import ArgumentError, ProgramFault, check_int_arg, check_timeout_arg
from pybpfuring.filters.kernel import apply_filter
from pybpfuring.lang.decorators import BpfFunction
from pybpfuring.lang.maps import MapDef
from pybpfuring.loader.elf import read_elf, read_object_file
from pybpfuring.loader.object import BpfObject
from pybpfuring.runtime.engine.interp import DEFAULT_BUDGET, MAX_BUDGET
from pybpfuring.uring import RingClosedError
from pybpfuring.abi.structs import Cqe, Sqe

from .aio import RingEventFd, cqes_async, wait_cqe_async
from .backends import BackendFallbackWarning, RingBackend, choose_backend
from .backends.emulated import DEFAULT_RUN_BUDGET
from .backends.cqs import cq_capacity
from .backends.programs import RegistrationError
from .backends.retained import RetainedMap, retain
from pybpfuring.runtime.backends.native.conditions import CqAtLeast

@dataclass(frozen=True)
class RingStats:
    """Per-ring counters since the ring opened, the same on every backend (docs/trace.md)."""

    program_runs: int   # program runs (a WAIT and its re-run count as two)
    instructions: int   # BPF instructions those runs executed (0 on bpf_ops: the kernel runs them)
    faults: int
    in_flight: int
    submitted: int = 0          # SQEs user space submitted plus SQEs programs submitted
    program_submitted: int = 0  # of those, the ones programs submitted (the `submit` helper)
    completed: tuple[int, ...] = ()   # CQEs posted to each CQ (index = CQ), reaped or not
    waits: int = 0              # program runs that returned WAIT (valid or not)
    overflows: tuple[int, ...] = ()   # per CQ: CQ 0's overflow backlog entries, extra CQs' drops

    @property
    def user_submitted(self) -> int:
        """SQEs user space submitted: `submitted` less those programs submitted."""
        return self.submitted - self.program_submitted

    def as_dict(self) -> dict[str, Any]:
        """Plain values for JSON (`pybpfuring trace --json` prints the same names)."""
        return {"submitted": self.submitted, "user_submitted": self.user_submitted,
                "program_submitted": self.program_submitted, "completed": list(self.completed),
                "program_runs": self.program_runs, "waits": self.waits,
                "overflows": list(self.overflows), "instructions": self.instructions,
                "faults": self.faults, "in_flight": self.in_flight}


ProgramSource = bytes | str | os.PathLike[str] | Sequence[BpfFunction]
ProgramRef = int | str | BpfFunction
CData = TypeVar("CData")  # a ctypes type's instance


class Ring:
    """An io_uring with extra CQs that runs IORING_OP_BPF requests (context manager; not thread-safe).

    Args:
        entries: SQ size of the underlying io_uring (CQ 0 gets 2 * entries, as io_uring sets it up).
        cqs: sizes of the extra CQs 1..N, each rounded up to a power of two (1..65536; at most 1024 CQs).
        backend: "auto" ("bpf_ops" where the kernel runs it and the ring fits, else "emulated", with a
            BackendFallbackWarning when the kernel has it but the ring does not fit), or a backend name.
            `ring.backend` names the one in use, `ring.backend_reason` says why.
        budget: instructions one program run may execute before its request fails (-ELOOP);
            1..2**24 (a run must stay short enough for Ctrl-C and timeouts to be seen).
        run_budget: program runs the event loop makes one after another with no kernel completion
            in between before it ends the request about to run with -EDEADLK (a live-lock: programs
            waking themselves or each other without I/O); also the most runs one non-blocking call
            (submit, peek_cqe, cqes) makes. 1..2**32-1, default 100,000. Not used by "bpf_ops".
        engine: how the emulated backend runs programs: "interp" (the reference interpreter), "jit"
            (LLVM-compiled, same behaviour, about twice as fast end to end on examples/cp.py), both with
            the Python event loop (the reference); "native" (JIT'd programs driven by the native event
            loop of runtime/backends/native, with native helpers; built with the package); "auto" (the
            default): "native" where it loads, else "jit".
    """

    def __init__(self, entries: int = 64, cqs: Sequence[int] = (), backend: str = "auto", *,
                 budget: int = DEFAULT_BUDGET, engine: str = "auto",
                 run_budget: int = DEFAULT_RUN_BUDGET) -> None:
        self._impl: RingBackend | None = None
        check_int_arg(entries, 1, 32768, "entries")
        if len(cqs) > MAX_EXTRA_CQS:
            raise ArgumentError(f"{len(cqs)} extra CQs requested; a ring has at most {MAX_EXTRA_CQS} "
                                "(IO_MAX_CQRINGS of the 2021 patches)")
        capacities = [cq_capacity(size, f"extra CQ {i + 1}") for i, size in enumerate(cqs)]
        check_int_arg(budget, 1, MAX_BUDGET, "budget")
        check_int_arg(run_budget, 1, MAX_RUN_BUDGET, "run_budget")
        choice = choose_backend(backend, entries, capacities, budget, engine)
        if choice.skipped:   # never a silent fallback: say which backend was passed over and why
            warnings.warn(f"Ring runs on backend {choice.name!r}, not the kernel's: {choice.reason}",
                          BackendFallbackWarning, stacklevel=2)
        self._impl = choice.backend
        self._backend_reason = choice.reason
        self._impl.run_budget = run_budget
        self._program_names: list[str] | None = None
        self._functions: list[BpfFunction] = []
        self._bound: list[tuple[str, MapDef, Any]] = []   # (name, declaration, the map bound)
        self._user_sqes = 0   # SQEs user space submitted (Ring.stats)

    # --- lifetime -----------------------------------------------------------------------------
    def __enter__(self) -> "Ring":
        self._backend()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # never raise from a finaliser
            pass

    def close(self) -> None:
        """Cancel what is in flight and release the ring. Bound maps keep their last values
        (readable, not writable, from user space) until another ring binds them. Idempotent."""
        impl, self._impl = getattr(self, "_impl", None), None
        if impl is None:
            return
        self._notes = getattr(impl, "explanations", None)   # ring.explain() after close
        efd = getattr(self, "_efd", None)
        if efd is not None:
            efd.close(ring_open=True)
        retained = self._retain_maps()      # before the backend closes: kernel maps go with it
        try:
            impl.close()
        finally:
            for name, declared, live in self._bound:
                # Not where another ring bound the declaration since (it is that ring's now).
                if name in retained and declared.live_map in (live, None):
                    declared.bind(retained[name])

    def _retain_maps(self) -> dict[str, RetainedMap]:
        retained: dict[str, RetainedMap] = {}
        for name, _, live in self._bound:
            if name not in retained:
                try:
                    retained[name] = retain(live, name)
                except OSError:      # no descriptor left to keep a kernel map: it goes
                    pass
        return retained

    @property
    def closed(self) -> bool:
        """True once `close()` ran (or the context manager exited)."""
        return self._impl is None

    def _backend(self) -> RingBackend:
        if self._impl is None:
            raise RingClosedError("this Ring is closed")
        return self._impl

    @property
    def backend(self) -> str:
        """The backend running this ring: `"emulated"` or `"bpf_ops"` (what `backend="auto"` chose)."""
        return self._backend().name

    @property
    def engine(self) -> str:
        """What runs the programs: "native", "jit" or "interp" on emulated (what engine="auto"
        chose: native where it can be built, else jit), "kernel" on bpf_ops."""
        return str(getattr(self._backend(), "engine", "kernel"))

    @property
    def backend_reason(self) -> str:
        """Why this backend runs the ring, e.g. "bpf_ops: kernel has io_uring_bpf_ops" or
        "emulated: bpf_ops cannot take this ring: ..." (readable after close too)."""
        return self._backend_reason

    @property
    def cq_count(self) -> int:
        """Number of CQs: 1 (the main CQ) + the extra CQs."""
        return len(self._backend().cqs)

    def cq_size(self, cq: int = 0) -> int:
        """How many CQEs CQ `cq` holds (extra CQ sizes are rounded up to a power of two)."""
        return self._cq(cq).capacity

    # --- programs and maps ----------------------------------------------------------------------
    def register_programs(self, programs: ProgramSource) -> list[str]:
        """Register the ring's program table (once per ring, at most 100 programs; index = position).

        `programs`: a list of @iouring_program functions (compiled for the op_bpf target, cached),
        a compiled ELF (bytes or path; programs in ELF order) or a .py file (its programs in source
        order). Maps are created and every MapDef of the functions' modules is bound to its live
        map, so `arr[0]` works from user space. Returns the program names in table order.
        """
        impl = self._backend()
        if self._program_names is not None:
            raise RegistrationError("this ring already has a program table (IORING_REGISTER_BPF "
                                    "works once per ring: -EBUSY); open another Ring")
        elf, functions, names = _compile_source(programs)
        by_name = {fn.name: fn for fn in functions}
        table = [by_name[n] for n in names] if names is not None and functions else None
        self._program_names = impl.register_programs(elf, names, table)
        self._functions = functions
        self._bind_maps(impl, functions)
        return list(self._program_names)

    def _bind_maps(self, impl: RingBackend, functions: list[BpfFunction]) -> None:
        for fn in functions:
            for name, live in impl.maps.items():
                declared = fn.globals.get(name)
                if isinstance(declared, MapDef):
                    declared.bind(live)
                    self._bound.append((name, declared, live))

    @property
    def maps(self) -> dict[str, Any]:
        """The live maps by name (dict-like: `ring.maps["arr"][0]`)."""
        return dict(self._backend().maps)

    @property
    def programs(self) -> list[str]:
        """The registered programs' names, in table order (empty before `register_programs`)."""
        return list(self._program_names or [])

    def program_index(self, prog: ProgramRef) -> int:
        """The table index of a program given by index, name or function."""
        names = self._program_names or []
        if isinstance(prog, bool):
            raise TypeError("a program is an index, a name or an @iouring_program function")
        if isinstance(prog, int):
            if not 0 <= prog < 65536 * 65536:
                raise ArgumentError(f"program index {prog} is out of range")
            return prog
        name = prog.name if isinstance(prog, BpfFunction) else prog
        if name not in names:
            raise RegistrationError(f"no registered program {name!r} (registered: "
                                    f"{', '.join(names) or 'none; call register_programs first'})")
        return names.index(name)

    def user_memory(self, ctype: type[CData]) -> CData:
        """A zeroed instance of the ctypes type `ctype` (c_uint64, c_uint8 * 4096, a Structure)
        in memory programs may write with copy_to_user on every backend: on bpf_ops the ring's
        MEM region (256 KiB per ring, docs/kernel.md), elsewhere plain process memory. It stays
        valid while the object is referenced, also after close()."""
        if not isinstance(ctype, type) or not issubclass(ctype, ctypes._SimpleCData | ctypes.Array
                                                         | ctypes.Structure | ctypes.Union):
            raise TypeError(f"user_memory takes a ctypes type (e.g. ctypes.c_uint64), not {ctype!r}")
        impl = self._backend()
        place = getattr(impl, "user_memory", None)
        if place is None:
            return ctype()
        buffer, offset = place(ctypes.sizeof(ctype), ctypes.alignment(ctype))
        return ctype.from_buffer(buffer, offset)

    # --- submission ----------------------------------------------------------------------------
    def get_sqe(self, cq_idx: int = 0) -> Sqe | None:
        """A zeroed SQE to fill with a prep_* function, its completion going to CQ `cq_idx`
        (stored in byte 48, the 2021 `cq_idx`); None when `sq_entries` SQEs are already waiting
        for submit(). A cq_idx past the last CQ fails that request with -EINVAL (on CQ 0)."""
        _check_u16(cq_idx, "cq_idx")
        return self._backend().get_sqe(cq_idx)

    def _sqe(self, cq_idx: int) -> Sqe:
        sqe = self.get_sqe(cq_idx)
        if sqe is None:
            self.submit()
            sqe = self.get_sqe(cq_idx)
            assert sqe is not None
        return sqe

    def prep_bpf(self, prog: ProgramRef, user_data: int = 0, cq_idx: int = 0,
                 flags: int = 0) -> Sqe:
        """Queue an IORING_OP_BPF request (opcode 37, sqe->off = program index) running `prog`;
        its completion (res 0, or -errno) goes to CQ `cq_idx`. Submits queued SQEs first if the
        queue is full. Returns the SQE (set e.g. IOSQE_IO_LINK in `flags` or on it)."""
        index = self.program_index(prog)
        _check_u64(user_data, "user_data")
        if not isinstance(flags, int) or not 0 <= flags <= 0xFF:
            raise ArgumentError(f"flags must be IOSQE_* bits (0..255), not {flags!r}")
        sqe = self._sqe(cq_idx)
        sqe.opcode = IORING_OP_BPF_2021
        sqe.fd = -1
        sqe.off = index
        sqe.user_data = user_data
        sqe.flags = flags
        return sqe

    def submit(self) -> int:
        """Start every queued SQE and run what is ready without blocking; returns how many."""
        submitted = self._backend().submit()
        self._user_sqes += submitted
        return submitted

    def submit_and_wait(self, wait_nr: int = 1, timeout: float | None = None) -> int:
        """submit(), then run the event loop until CQ 0 holds at least `wait_nr` CQEs
        (TimeoutError after `timeout` s; RingStalledError if they can never arrive)."""
        check_int_arg(wait_nr, 0, MAX_WAIT_NR, "wait_nr")
        check_timeout_arg(timeout)
        impl = self._backend()
        if timeout is None:
            submitted = impl.submit(run=wait_nr == 0)
            self._user_sqes += submitted
            if wait_nr > 0:
                impl.pump(CqAtLeast(impl.cqs[0], wait_nr))
            return submitted
        deadline = time.monotonic() + timeout   # one timeout for the submit and the wait
        submitted = impl.submit(timeout, run=wait_nr == 0)
        self._user_sqes += submitted
        if wait_nr > 0:
            impl.pump(CqAtLeast(impl.cqs[0], wait_nr), max(deadline - time.monotonic(), 0.0))
        return submitted

    def register_files(self, fds: Sequence[int]) -> None:
        """The fixed file table (IOSQE_FIXED_FILE uses fd = index), for user and BPF SQEs."""
        self._backend().register_files(list(fds))

    def register_buffers(self, buffers: Sequence[Any]) -> None:
        """Register fixed buffers (IORING_REGISTER_BUFFERS), for requests that use `buf_index`."""
        self._backend().register_buffers(list(buffers))

    def register_filter(self, filt: Any, deny_rest: bool = False) -> None:
        """Apply an @iouring_filter to this ring's real io_uring (every SQE that reaches the kernel
        through it, the BPF programs' too); see docs/filters.md."""
        apply_filter(_real_ring_fd(self._backend()), filt, deny_rest=deny_rest)

    # --- completion ----------------------------------------------------------------------------
    def _cq(self, cq: int) -> Any:
        cqs = self._backend().cqs
        if not isinstance(cq, int) or isinstance(cq, bool) or not 0 <= cq < len(cqs):
            raise ArgumentError(f"CQ {cq!r} does not exist: this ring has CQs 0..{len(cqs) - 1}")
        return cqs[cq]

    def wait_cqe(self, cq: int = 0, timeout: float | None = None) -> Cqe:
        """Consume and return the oldest CQE of CQ `cq`, running the event loop until there is
        one. TimeoutError after `timeout` s; RingStalledError if none can ever arrive."""
        queue = self._cq(cq)
        check_timeout_arg(timeout)
        if not queue.ready:
            self._backend().pump(CqAtLeast(queue, 1), timeout)
        cqe: Cqe = queue.reap()
        return cqe

    def peek_cqe(self, cq: int = 0) -> Cqe | None:
        """The oldest CQE of CQ `cq` without consuming it (runs what is ready first)."""
        queue = self._cq(cq)
        self._backend().pump()
        result: Cqe | None = queue.peek()
        return result

    def cqe_seen(self, cq: int = 0) -> None:
        """Consume the CQE peek_cqe(cq) returned."""
        if self._cq(cq).reap() is None:
            raise ValueError(f"CQ {cq} holds no CQE to consume")

    def cq_ready(self, cq: int = 0) -> int:
        """CQEs waiting in CQ `cq` (does not run the event loop)."""
        ready: int = self._cq(cq).ready
        return ready

    def cqes(self, cq: int = 0) -> Iterator[Cqe]:
        """Consume and yield every CQE of CQ `cq` that is ready (after running what is ready)."""
        queue = self._cq(cq)
        self._backend().pump()
        return _drain(queue)

    # --- asyncio (runtime/aio.py): an eventfd registered with the real io_uring -------------------
    async def wait_cqe_async(self, cq: int = 0, timeout: float | None = None) -> Cqe:
        """As wait_cqe, awaited: the event loop runs other tasks until CQ `cq` holds a CQE
        (TimeoutError after `timeout` s). One task at a time per CQ, as for wait_cqe."""
        check_timeout_arg(timeout)
        return await wait_cqe_async(self, cq, timeout)

    def cqes_async(self, cq: int = 0) -> Any:
        """`async for cqe in ring.cqes_async(cq)`: CQ `cq`'s CQEs as they arrive."""
        self._cq(cq)
        return cqes_async(self, cq)

    def _eventfd(self) -> Any:
        efd = getattr(self, "_efd", None)
        if efd is None:
            efd = self._efd = RingEventFd(_real_ring_fd(self._backend()))
        return efd

    def cq_overflow(self, cq: int = 0) -> int:
        """CQEs CQ `cq` took beyond its size and kept in its backlog (CQ 0 never drops, like a
        kernel with IORING_FEAT_NODROP: its overflow counter); 0 for extra CQs, which drop."""
        overflowed: int = self._cq(cq).overflowed
        return overflowed

    def cq_drops(self, cq: int) -> int:
        """CQEs an extra CQ dropped because it was full (CQ 0 never drops)."""
        drops: int = self._cq(cq).drops
        return drops

    def in_flight(self) -> int:
        """Requests not completed yet (kernel requests + BPF requests ready or waiting)."""
        return self._backend().in_flight()

    # --- diagnostics -----------------------------------------------------------------------------
    def explain(self, cqe: Any, cq: int | None = None) -> str:
        """Why `cqe` (a Cqe, or (user_data, res)) carries its error: the rule the request broke
        and where, for every error completion the runtime or scheduler made ("-EINVAL: WAIT for 8
        CQEs on CQ 1 returned by chase at chase.py:41: CQ 1 holds at most 4 CQEs..."); for other
        results, that the kernel or the program chose them. Works after close() too."""
        user_data, res = (cqe.user_data, cqe.res) if hasattr(cqe, "res") else (int(cqe[0]), int(cqe[1]))
        notes = getattr(self._impl, "explanations", None) if self._impl is not None else \
            getattr(self, "_notes", None)
        if notes is None:
            return "this backend keeps no notes of its error completions"
        return notes.explain(user_data, res, cq)

    # --- faults ----------------------------------------------------------------------------------
    @property
    def faults(self) -> list[ProgramFault]:
        """The last (up to 1000) program faults, oldest first, each with the Python file:line."""
        return list(self._backend().faults)

    @property
    def fault_count(self) -> int:
        """How many program runs faulted on this ring (0 on bpf_ops: the verifier rejects such
        programs instead)."""
        return self._backend().fault_count

    def stats(self) -> RingStats:
        """Counters since the ring was opened, the same on every backend (docs/trace.md): SQEs
        submitted (by user space and by programs), CQEs posted per CQ, program runs and WAITs,
        overflows per CQ (CQ 0's backlog, extra CQs' drops). Counts kept in the kernel (bpf_ops)
        are 32-bit and wrap after 2**32."""
        impl = self._backend()
        program_sqes = impl.program_sqes
        return RingStats(impl.runs, impl.insns, impl.fault_count, impl.in_flight(),
                         submitted=self._user_sqes + program_sqes, program_submitted=program_sqes,
                         completed=tuple(cq.posted for cq in impl.cqs), waits=impl.waits,
                         overflows=tuple(cq.overflowed + cq.drops for cq in impl.cqs))

    def __repr__(self) -> str:
        if self._impl is None:
            return "<Ring closed>"
        sizes = [cq.capacity for cq in self._impl.cqs]
        return f"<Ring backend={self._impl.name} cqs={sizes} programs={self.programs}>"


def _real_ring_fd(impl: Any) -> int:
    """The fd of the io_uring a backend submits real SQEs to (emulated: `io`; bpf_ops: its loop's)."""
    io = getattr(impl, "io", None)
    if io is None and hasattr(impl, "_ring"):
        io = impl._ring().loop.ring
    if io is None:
        raise ArgumentError(f"backend {type(impl).__name__} has no real io_uring to filter")
    return io.fd


def _drain(queue: Any) -> Iterator[Cqe]:
    while True:
        cqe = queue.reap()
        if cqe is None:
            return
        yield cqe


def _compile_source(programs: ProgramSource) -> tuple[bytes, list[BpfFunction], list[str] | None]:
    """(ELF, functions whose modules declare the maps, names in table order or None = ELF order)."""
    if isinstance(programs, bytes):
        return programs, [], None
    if isinstance(programs, (str, os.PathLike)):
        path = os.fspath(programs)
        if path.endswith(".py"):
            module = driver.load_module(path)
            functions = [f for f in driver.programs_in(module) if f.kind == "iouring"]
            if not functions:
                raise RegistrationError(f"{path} defines no @iouring_program functions")
            return driver.compile_functions(functions, "op_bpf"), functions, [f.name for f in functions]
        # Read once (a regular file of sane size, never a FIFO or a device) and parse it here, so
        # a malformed object's error names the file rather than the bytes a backend gets.
        elf = read_object_file(path)
        with BpfObject(read_elf(elf, path), path):
            pass
        return elf, [], None
    functions = list(programs)
    if not functions:
        raise RegistrationError("register_programs needs at least one program")
    if len(functions) > MAX_BPF_PROGS:
        raise RegistrationError(f"{len(functions)} programs given; a ring takes at most "
                                f"{MAX_BPF_PROGS} (IORING_MAX_BPF_PROGS of the 2021 patches)")
    for fn in functions:
        if not isinstance(fn, BpfFunction) or fn.kind != "iouring":
            raise RegistrationError(f"{fn!r} is not an @iouring_program function")
    names = [fn.name for fn in functions]
    if len(set(names)) != len(names):
        raise RegistrationError(f"the same program is listed twice: {names}")
    unique = list({id(fn): fn for fn in functions}.values())
    return driver.compile_functions(unique, "op_bpf"), unique, names


MAX_RUN_BUDGET = 2**32 - 1
MAX_WAIT_NR = 2**32 - 1          # io_uring_enter's min_complete is a u32


def _check_u16(value: int, what: str) -> None:
    check_int_arg(value, 0, 0xFFFF, what)


def _check_u64(value: int, what: str) -> None:
    check_int_arg(value, 0, 2**64 - 1, what)
