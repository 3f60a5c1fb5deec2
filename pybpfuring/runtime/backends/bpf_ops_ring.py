"""`Ring(backend="bpf_ops")`: the `RingBackend` protocol over `ModelRing` (Linux >= 7.1).

The programs run in the kernel's io_uring loop (a generated loop_step scheduler, bpf_ops_model.py);
this adapter gives `Ring` what it expects from a backend: IORING_OP_BPF SQEs start programs, other
SQEs are routed by their cq_idx, `pump` runs the kernel loop until its condition holds, and the
virtual CQs are copied into `CompletionQueue`s after each run. "auto" picks it where the probe
passes and the ring fits its limits (docs/kernel.md).

copy_to_user has no kernel helper: programs write into the ring's MEM region, USER_MEMORY bytes of
user memory registered with every ring of this backend; `Ring.user_memory(ctype)` hands out objects
placed there (copy_to_user elsewhere gives -EFAULT).
"""
from __future__ import annotations

import ctypes
import errno
import mmap
import sys
import time
from pathlib import Path
from collections import deque
from typing import Any, Callable

from ...compiler import kernel_loop
from ...compiler import driver
from pybpfuring.abi.bpf2021 import IORING_OP_BPF_2021
from ...errors import PyBpfUringError
from ...lang import loop_model as M
from ...lang.decorators import BpfFunction
from pybpfuring.loader import BpfObject
from ..machine import check_bpf
from pybpfuring.abi import uring as C
from pybpfuring.abi.structs import Sqe
from . import explain as why
from .bpf_ops import kernel_has_loop_ops
from .bpf_ops_model import ModelRing, ModelStalled
from .bpf_ops_scheduler import ProgramEntry
from .cqs import CompletionQueue, bad_cq_idx, completion_cq, refuse_bad_cq
from .emulated import RingStalledError
from .requests import LINK_FLAGS, malformed_bpf_sqe


_PACKAGE = str(Path(__file__).resolve().parents[2]) + "/"
USER_MEMORY = 256 * 1024       # the MEM region of each ring (pinned by the kernel while it lives)


def probe() -> str | None:
    """None if this machine can run the backend, else why not."""
    if not kernel_has_loop_ops():
        return ("the kernel has no io_uring_bpf_ops struct_ops in its BTF (Linux >= 7.1 with "
                "CONFIG_IO_URING_BPF_OPS)")
    bpf = check_bpf()                  # the right to load programs (root or CAP_BPF + CAP_SYS_ADMIN)
    return None if bpf.available else bpf.why


def programs_of(elf: bytes, names: list[str] | None) -> list[ProgramEntry]:
    """The programs of an op_bpf ELF for the scheduler: the bodies its kernel-loop form carries
    (`pybpfuring compile` makes it), or else the @iouring_program functions it was compiled from,
    found through its BTF line info."""
    bodies = kernel_loop.read(elf, names)
    if bodies is not None:
        return list(bodies)
    obj = BpfObject.open(elf)
    try:
        order = names or list(obj.programs)
        found = []
        for name in order:
            prog = obj.programs[name]
            # Inlined library code (prep_*) has line info too: only user files can define it.
            files = sorted({line.file for line in prog.line_info.values()
                            if line.file.endswith(".py") and not line.file.startswith(_PACKAGE)
                            and Path(line.file).is_file()})
            fn = None
            for file in files:
                fn = getattr(_module_of(file) or driver.load_module(file), name, None)
                if isinstance(fn, BpfFunction) and fn.kind == "iouring":
                    break
            if not isinstance(fn, BpfFunction):
                raise PyBpfUringError(
                    f"backend bpf_ops cannot find program {name!r}: the object carries no "
                    "kernel-loop form and its Python source is not at hand; make the object "
                    "with `pybpfuring compile` (or register the @iouring_program functions)")
            found.append(fn)
        return found
    finally:
        obj.close()


def _module_of(file: str) -> Any:
    """The module already imported from `file`, if any: a second import would be a second copy of
    everything it defines (two `submit_sock`s where the programs share one)."""
    want = Path(file).resolve()
    for module in list(sys.modules.values()):
        origin = getattr(module, "__file__", None)
        if origin and origin.endswith(".py") and Path(origin).resolve() == want:
            return module
    return None




class _Chain:
    """A user-space link chain cut where the kernel cannot carry the link (at a BPF request): the
    rest starts when the request before the cut completes (docs/kernel.md, "Links")."""

    __slots__ = ("entries", "next")

    def __init__(self, entries: list[tuple[bytes, int]], nxt: int) -> None:
        self.entries = entries
        self.next = nxt


class BpfOpsBackend:
    """What `Ring` needs, with programs run by the kernel (see the module docstring)."""

    name = "bpf_ops"

    def __init__(self, entries: int, cq_capacities: list[int], budget: int, engine: str = "auto"):
        self.entries = entries
        self.cq_sizes = [2 * entries] + list(cq_capacities)
        # Until register_programs builds the kernel loop, CQs are empty queues of the right sizes.
        self.cqs: list[Any] = [CompletionQueue(i, size) for i, size in enumerate(self.cq_sizes)]
        self.faults: deque[Any] = deque(maxlen=64)
        self.fault_count = 0
        self.explanations = why.Explanations()
        self.insns = 0
        self.maps: dict[str, Any] = {}
        self._model: ModelRing | None = None
        self._pending: list[tuple[bytes, int]] = []
        self._chains: dict[int, _Chain] = {}
        self._next_link = 1
        self._deadlines: list[int] = []     # CLOCK_MONOTONIC ns of the timers armed in the kernel
        self.memory = mmap.mmap(-1, USER_MEMORY)
        self._memory_used = 0

    @property
    def runs(self) -> int:
        return self._model.program_runs() if self._model is not None else 0

    @property
    def waits(self) -> int:      # Ring.stats(): counted by the scheduler (CTL_WAITS, CTL_PROG_SQES)
        return self._model._ctl(M.CTL_WAITS) if self._model is not None else 0

    @property
    def program_sqes(self) -> int:
        return self._model._ctl(M.CTL_PROG_SQES) if self._model is not None else 0

    def _ring(self) -> ModelRing:
        if self._model is None:
            raise PyBpfUringError("register_programs first: backend bpf_ops builds its kernel loop "
                                  "from the ring's programs")
        return self._model

    def register_programs(self, elf: bytes, names: list[str] | None,
                          functions: list[BpfFunction] | None = None) -> list[str]:
        # The caller's own functions when it has them: importing their files again would make a
        # second copy of every module they share (a @bpf_function two programs call, twice).
        functions = list(functions) if functions else programs_of(elf, names)
        self._model = ModelRing(functions, entries=self.entries, memory=self.memory,
                                cq_sizes=self.cq_sizes)
        self.cqs = self._model.cqs
        self.maps = {n: m for n, m in self._model.maps.items() if not n.startswith(("model_", "."))
                     and not n.endswith("_ops")}
        return [f.name for f in functions]

    def user_memory(self, size: int, align: int) -> tuple[mmap.mmap, int]:
        """(buffer, offset) of `size` fresh zeroed bytes inside the ring's MEM region."""
        start = -(-self._memory_used // align) * align
        if start + size > len(self.memory):
            raise ValueError(f"backend bpf_ops has {len(self.memory)} bytes of user memory per ring "
                             f"(its MEM region); {start} are handed out, {size} more were asked for")
        self._memory_used = start + size
        return self.memory, start

    def register_files(self, fds: list[int]) -> None:
        self._ring().loop.ring.register_files(fds)

    def register_buffers(self, buffers: list[Any]) -> None:
        self._ring().loop.ring.register_buffers(buffers)

    # ---- submission ----
    def get_sqe(self, cq_idx: int) -> Sqe | None:
        if len(self._pending) >= self.entries:
            return None
        sqe = Sqe()
        self._pending.append((sqe, cq_idx))      # type: ignore[arg-type]
        return sqe

    def submit(self, timeout: float | None = None, run: bool = True) -> int:
        # Always enters the kernel once (run=False is a hint the emulated engines take).
        ring = self._ring()
        pending, self._pending = self._pending, []
        chain: list[tuple[bytes, int]] = []
        for sqe, cq_idx in pending:
            raw = ctypes.string_at(ctypes.addressof(sqe), 64)  # type: ignore[arg-type]
            chain.append((raw, cq_idx))
            if not raw[1] & LINK_FLAGS:
                self._start_stage(_Chain(chain, 0))
                chain = []
        if chain:
            self._start_stage(_Chain(chain, 0))
        if pending:
            self._run(0, 0)
        del ring
        return len(pending)

    def _is_cut(self, raw: bytes, cq_idx: int) -> bool:
        """Where a chain leaves the kernel: a BPF request, or an SQE for a CQ the ring lacks."""
        return raw[0] == IORING_OP_BPF_2021 or bad_cq_idx(cq_idx, len(self.cq_sizes))

    def _link_for(self, chain: _Chain, nxt: int) -> int:
        if nxt >= len(chain.entries):
            return 0
        link = self._next_link
        self._next_link = link % 0xFFFFFF + 1          # 24 bits travel with a BPF request
        self._chains[link] = _Chain(chain.entries, nxt)
        return link

    def _start_stage(self, chain: _Chain) -> None:
        ring, entries, i = self._ring(), chain.entries, chain.next
        raw, cq_idx = entries[i]
        if self._is_cut(raw, cq_idx):
            refusal = self._bpf_refusal(raw)
            user_data = int.from_bytes(raw[32:40], "little")
            if refusal:
                self.explanations.note(cq_idx, user_data, refusal, why.bad_bpf_sqe())
            elif bad_cq_idx(cq_idx, len(self.cq_sizes)):     # the scheduler fails it (BAD_CQ_RES on CQ 0)
                refuse_bad_cq(self.explanations, user_data, cq_idx, len(self.cq_sizes))
            elif raw[0] == IORING_OP_BPF_2021:
                index = int.from_bytes(raw[8:16], "little")
                if index >= len(self._model.programs if self._model is not None else []):
                    self.explanations.note(cq_idx, user_data, -errno.EFAULT, why.bad_program(
                        index, len(self._model.programs if self._model is not None else [])))
            ring.queue(self._no_link(raw), cq_idx, refusal, self._link_for(chain, i + 1))
            return
        j = i + 1
        while j < len(entries) and not self._is_cut(*entries[j]):
            j += 1
        for k in range(i, j):
            raw, cq_idx = entries[k]
            if k == j - 1:
                ring.queue(self._no_link(raw), cq_idx, 0, self._link_for(chain, j))
            else:
                ring.queue(raw, cq_idx)

    @staticmethod
    def _no_link(raw: bytes) -> bytes:
        return raw[:1] + bytes([raw[1] & ~LINK_FLAGS & 0xFF]) + raw[2:]

    @staticmethod
    def _bpf_refusal(raw: bytes) -> int:
        """The res the 2021 patches complete a malformed BPF request with (0: none)."""
        if raw[0] != IORING_OP_BPF_2021:
            return 0
        if malformed_bpf_sqe(raw):
            return -errno.EINVAL
        return 0

    def _continue(self, link: int, res: int) -> None:
        chain = self._chains.pop(link, None)
        if chain is None:
            return
        before = chain.entries[chain.next - 1][0]
        if res < 0 and not before[1] & C.IOSQE_IO_HARDLINK:
            ncq = len(self.cq_sizes)
            for raw, cq_idx in chain.entries[chain.next:]:
                self.explanations.note(completion_cq(cq_idx, ncq), int.from_bytes(raw[32:40], "little"),
                                       -errno.ECANCELED, why.canceled(res))
                self._ring().queue(raw, completion_cq(cq_idx, ncq), -errno.ECANCELED)
            return
        self._start_stage(chain)

    # ---- running the kernel loop ----
    def _run(self, cq: int, want: int, deadline_ns: int | None = None) -> None:
        """io_uring_enter until CQ `cq` holds `want` CQEs or nothing more can happen now (or the
        CLOCK_MONOTONIC deadline passed); chains continue in between."""
        ring = self._ring()
        while True:
            if deadline_ns is not None:
                if time.monotonic_ns() >= deadline_ns:
                    return
                self._arm(ring, deadline_ns)
            try:
                ring.run(min_complete=want, cq=cq)
            except ModelStalled as err:
                if deadline_ns is not None:   # as the emulated backend says it
                    raise TimeoutError(f"no completion in time: nothing is in flight ({err})") from None
                raise RingStalledError(str(err)) from None
            finally:
                self._read_notes(ring)
            done = ring.links_done()
            for link, res in done:
                self._continue(link, res)
            if want and self.cqs[cq].ready >= want:
                return
            if not (done or ring.busy()):
                return

    def _arm(self, ring: ModelRing, deadline_ns: int) -> None:
        """A deadline timer in the kernel unless one armed earlier ends the enter by then (they
        fire in order of expiry, so the armed ones are the latest of those set)."""
        armed = ring.deadlines_armed()
        self._deadlines = self._deadlines[len(self._deadlines) - armed:] if armed else []
        if self._deadlines and self._deadlines[0] <= deadline_ns:   # sorted: [0] fires first
            return
        ring.arm_deadline(deadline_ns)
        self._deadlines.append(deadline_ns)
        self._deadlines.sort()

    def _read_notes(self, ring: ModelRing) -> None:
        """The scheduler's notes of the requests it failed, as ring.explain() text."""
        for user_data, res, code, a, b, line, prog in ring.why_notes():
            fn = ring.programs[prog] if prog < len(ring.programs) else None
            at = why.where(fn.py_func.__code__.co_filename if fn else None,
                           fn.name if fn else f"program {prog}", line)
            ncq = len(self.cq_sizes)
            if code == M.WHY_BAD_WAIT:
                cap = self.cq_sizes[a] if a < ncq else 0
                text = why.bad_wait(at, a, b, ncq, cap)
            elif code == M.WHY_BAD_RETURN:
                text = why.bad_return(at, a - (1 << 32) if a >> 31 else a)
            elif code == M.WHY_BAD_PROGRAM:
                text = why.bad_program(a, len(ring.programs))
            else:
                text = why.bad_cq(a, ncq) + f" (an SQE {at} submitted)"
            self.explanations.note(-1, user_data, res, text)

    def pump(self, until: Callable[[], bool] | None = None, timeout: float | None = None) -> None:
        if until is None:
            self._run(0, 0)
            return
        deadline_ns = None if timeout is None else time.monotonic_ns() + int(timeout * 1e9)
        while not until():
            cq, n = getattr(until, "cq", None), getattr(until, "n", None)
            if cq is not None and n is not None:
                self._run(cq.index, n, deadline_ns)
            else:
                self._run(0, 0, deadline_ns)
            if until():
                return
            if self._ring().stalled() and not self._chains:
                if deadline_ns is not None:   # as the emulated backend says it
                    raise TimeoutError(f"no completion within {timeout} s: nothing is in flight")
                raise RingStalledError("the wait can never end: no request is in flight in the "
                                       "kernel and every program waits for CQEs nothing will post")
            if deadline_ns is not None and time.monotonic_ns() > deadline_ns:
                raise TimeoutError(f"no completion within {timeout} s")

    def in_flight(self) -> int:
        held = sum(len(c.entries) - c.next for c in self._chains.values())
        return (self._model.in_flight() if self._model is not None else 0) + held

    def close(self) -> None:
        if self._model is not None:
            self._model.close()
            self._model = None
        self._chains.clear()
