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
import mmap
import time
from pathlib import Path
from collections import deque
from typing import Any, Callable

from ...compiler.targets import IORING_OP_BPF_2021
from ...errors import PyBpfUringError
from ...lang import loop_model as M
from ...lang.decorators import BpfFunction
from ..ring.structs import Sqe
from . import BackendUnfit
from .bpf_ops import kernel_has_loop_ops
from .bpf_ops_model import ModelRing, ModelStalled
from .cqs import CompletionQueue


_PACKAGE = str(Path(__file__).resolve().parents[2]) + "/"
USER_MEMORY = 256 * 1024       # the MEM region of each ring (pinned by the kernel while it lives)


def probe() -> str | None:
    """None if this machine can run the backend, else why not."""
    from ..probe import check_bpf
    if not kernel_has_loop_ops():
        return ("the kernel has no io_uring_bpf_ops struct_ops in its BTF (Linux >= 7.1 with "
                "CONFIG_IO_URING_BPF_OPS)")
    bpf = check_bpf()                  # the right to load programs (root or CAP_BPF + CAP_SYS_ADMIN)
    return None if bpf.available else bpf.why


def programs_of(elf: bytes, names: list[str] | None) -> list[BpfFunction]:
    """The @iouring_program functions an op_bpf ELF was compiled from, found through its BTF line
    info (the scheduler compiles their Python source for bpf_ops)."""
    from ...compiler import driver
    from ..bpf import BpfObject
    obj = BpfObject.open(elf)
    try:
        order = names or list(obj.programs)
        found = []
        for name in order:
            prog = obj.programs[name]
            # Inlined library code (prep_*) has line info too: only user files can define it.
            files = sorted({line.file for line in prog.line_info.values()
                            if line.file.endswith(".py") and not line.file.startswith(_PACKAGE)})
            fn = None
            for file in files:
                fn = getattr(driver.load_module(file), name, None)
                if isinstance(fn, BpfFunction) and fn.kind == "iouring":
                    break
            if not isinstance(fn, BpfFunction):
                raise PyBpfUringError(f"backend bpf_ops needs the Python source of program {name!r}; "
                                      "register @iouring_program functions, not a bare ELF")
            found.append(fn)
        return found
    finally:
        obj.close()


class BpfOpsBackend:
    """What `Ring` needs, with programs run by the kernel (see the module docstring)."""

    name = "bpf_ops"

    def __init__(self, entries: int, cq_capacities: list[int], budget: int, engine: str = "auto"):
        if len(cq_capacities) + 1 > M.NCQ:
            raise BackendUnfit(f"backend bpf_ops has {M.NCQ} CQs (0..{M.NCQ - 1}) in this version; "
                             f"{len(cq_capacities)} extra CQs were asked for")
        if any(c > M.CQ_SLOTS for c in cq_capacities):
            raise BackendUnfit(f"backend bpf_ops has CQs of at most {M.CQ_SLOTS} entries in this "
                               f"version; extra CQs of {list(cq_capacities)} were asked for")
        self.entries = entries
        self.cqs = [CompletionQueue(0, 2 * entries)] + \
            [CompletionQueue(i + 1, min(c, M.CQ_SLOTS)) for i, c in enumerate(cq_capacities)]
        self.faults: deque[Any] = deque(maxlen=64)
        self.fault_count = 0
        self.runs = 0
        self.insns = 0
        self.maps: dict[str, Any] = {}
        self._model: ModelRing | None = None
        self._pending: list[tuple[Sqe, int]] = []
        self.memory = mmap.mmap(-1, USER_MEMORY)
        self._memory_used = 0

    def _ring(self) -> ModelRing:
        if self._model is None:
            raise PyBpfUringError("register_programs first: backend bpf_ops builds its kernel loop "
                                  "from the ring's programs")
        return self._model

    def register_programs(self, elf: bytes, names: list[str] | None) -> list[str]:
        functions = programs_of(elf, names)
        self._model = ModelRing(functions, entries=min(self.entries, M.MAX_STAGED), memory=self.memory)
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

    def get_sqe(self, cq_idx: int) -> Sqe | None:
        if len(self._pending) >= M.MAX_STAGED:
            return None
        sqe = Sqe()
        self._pending.append((sqe, cq_idx))
        return sqe

    def submit(self, timeout: float | None = None) -> int:
        ring = self._ring()
        pending, self._pending = self._pending, []
        for sqe, cq_idx in pending:
            if sqe.opcode == IORING_OP_BPF_2021:
                ring.start(int(sqe.off), int(sqe.user_data), cq_idx)
            else:
                ring.submit_sqe(ctypes.string_at(ctypes.addressof(sqe), 64), cq_idx)
        if pending:
            self._step(0, 0)
        return len(pending)

    def _step(self, cq: int, want: int) -> bool:
        """Run the kernel loop until virtual CQ `cq` holds `want` more CQEs; False if it stalled."""
        ring = self._ring()
        try:
            ring.run(min_complete=want, cq=cq)
            stalled = False
        except ModelStalled:
            stalled = True
        for i, q in enumerate(self.cqs):
            for ud, res, flags in ring.reap(i):
                q.post(ud, res, flags)
        self.runs = ring.program_runs()
        return not stalled

    def pump(self, until: Callable[[], bool] | None = None, timeout: float | None = None) -> None:
        from .emulated import RingStalledError
        if until is None:
            self._step(0, 0)
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        while not until():
            cq, n = getattr(until, "cq", None), getattr(until, "n", None)
            if cq is not None and n is not None:
                progressed = self._step(cq.index, max(n - cq.ready, 0))
            else:
                progressed = self._step(0, 0)
            if until():
                return
            if not progressed:
                raise RingStalledError("the wait can never end: every program waits for CQEs that "
                                       "nothing in flight will post")
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError("the condition did not hold in time")

    def in_flight(self) -> int:
        return self._ring().in_flight() if self._model is not None else 0

    def close(self) -> None:
        if self._model is not None:
            self._model.close()
            self._model = None
