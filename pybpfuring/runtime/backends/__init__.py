"""Where a `Ring`'s programs run. One model (docs/runtime.md), several backends.

A backend is chosen and created by `choose_backend(name, entries, cq_capacities, budget, engine)`,
which also says why (`Ring.backend_reason`, `pybpfuring info`), and offers what `Ring` calls (see
`RingBackend`). Today there is `emulated` (any kernel with io_uring: programs run in
the user-space engine). A kernel backend (Linux >= 7.1, io_uring_bpf_ops) registers itself in
`BACKENDS` with a `probe()` that says whether this machine can run it; "auto" takes the first
available one in `AUTO_ORDER` that accepts the ring's shape, and `Ring` warns
(BackendFallbackWarning) when it had to pass over one the machine has because the ring did not fit.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pybpfuring.errors import BackendFallbackWarning, ProgramFault
from pybpfuring.abi.structs import Sqe


class RingBackend(Protocol):
    """What `Ring` needs from a backend (the emulated one is the reference implementation)."""

    name: str
    faults: Any          # deque[ProgramFault], newest last
    fault_count: int
    runs: int             # program runs so far
    insns: int            # BPF instructions they executed
    waits: int            # runs that returned WAIT (Ring.stats)
    program_sqes: int     # SQEs programs submitted (Ring.stats)
    maps: dict[str, Any]  # name -> live map (LiveMap protocol of pybpfuring.lang.maps)
    cqs: list[Any]        # CompletionQueue-like: ready, reap(), peek(), capacity, drops, overflowed, posted
    run_budget: int       # Ring(run_budget=...): see docs/runtime.md "Hangs, budgets, Ctrl-C"

    # `functions`: the @iouring_programs in table order when the caller has them (bpf_ops compiles
    # their source into its scheduler; the others run the ELF)
    def register_programs(self, elf: bytes, names: list[str] | None,
                          functions: list[Any] | None = None) -> list[str]: ...
    def register_files(self, fds: list[int]) -> None: ...
    def register_buffers(self, buffers: list[Any]) -> None: ...
    def get_sqe(self, cq_idx: int) -> Sqe | None: ...
    def submit(self, timeout: float | None = None) -> int: ...
    def pump(self, until: Callable[[], bool] | None = None, timeout: float | None = None) -> None: ...
    def in_flight(self) -> int: ...
    def close(self) -> None: ...


def _emulated(entries: int, cq_capacities: list[int], budget: int, engine: str) -> RingBackend:
    if engine in ("auto", "native"):
        # The native event loop (runtime/native) where it can be built, else the Python loop + JIT.
        from pybpfuring.runtime.native import unavailable_reason
        reason = unavailable_reason()
        if reason is None:
            from pybpfuring.runtime.native.backend import NativeBackend
            return NativeBackend(entries, cq_capacities, budget)
        if engine == "native":
            raise ValueError(f"engine 'native' cannot run here: {reason}")
        engine = "jit"
    from .emulated import EmulatedBackend
    return EmulatedBackend(entries, cq_capacities, budget, engine)


# name -> (probe() -> reason it cannot run here or None, factory(entries, cq_capacities, budget, engine))
BACKENDS: dict[str, tuple[Callable[[], str | None],
                          Callable[[int, list[int], int, str], RingBackend]]] = {
    "emulated": (lambda: None, _emulated),
}


def _bpf_ops_probe() -> str | None:
    from .bpf_ops_ring import probe
    return probe()


def _bpf_ops(entries: int, cq_capacities: list[int], budget: int, engine: str) -> RingBackend:
    from .bpf_ops_ring import BpfOpsBackend
    return BpfOpsBackend(entries, cq_capacities, budget, engine)  # type: ignore[return-value]


class BackendUnfit(ValueError):
    """This backend runs here, but not a ring of the shape asked for (e.g. more CQs than it has):
    "auto" then takes the next backend; a backend named explicitly raises it as a ValueError."""


# Linux >= 7.1: programs in the kernel's io_uring loop (bpf_ops_ring.py), first where its probe
# passes (the struct_ops in the kernel's BTF, bpf() allowed); else the user-space engine.
BACKENDS["bpf_ops"] = (_bpf_ops_probe, _bpf_ops)
AUTO_ORDER: list[str] = ["bpf_ops", "emulated"]


@dataclass
class BackendChoice:
    """The backend "auto" (or a name) picked, and why; `skipped`: why backends the machine has
    could not take this ring (each one a fallback the user is warned about)."""

    name: str
    reason: str
    backend: RingBackend | None = None
    skipped: list[str] = field(default_factory=list)


_KERNEL_REASON = "kernel has io_uring_bpf_ops"


def _available_reason(name: str) -> str:
    """Why the first backend of AUTO_ORDER was taken (its probe passed)."""
    if name == "bpf_ops":
        return f"bpf_ops: {_KERNEL_REASON}"
    return f"{name}: the first backend of {AUTO_ORDER}"


def choose_backend(name: str = "auto", entries: int | None = None, cq_capacities: list[int] | None = None,
                   budget: int = 0, engine: str = "interp") -> BackendChoice:
    """The backend for a ring, with the reason (used by `Ring` and by `pybpfuring info`).

    Without `entries` nothing is created: the answer is what "auto" picks for a ring within every
    backend's limits. With them the backend is created; one that runs here but cannot take this
    ring (BackendUnfit) is skipped by "auto" with its reason in `skipped`, and raises for a name."""
    if name != "auto":
        if name not in BACKENDS:
            raise ValueError(f"unknown backend {name!r}; choose 'auto' or one of: {', '.join(BACKENDS)}")
        probe, factory = BACKENDS[name]
        why_not = probe()
        if why_not is not None:
            raise ValueError(f"backend {name!r} cannot run here: {why_not}")
        made = None if entries is None else factory(entries, cq_capacities or [], budget, engine)
        return BackendChoice(name, f"{name}: asked for by name", made)
    skipped: list[str] = []
    passed_over: list[str] = []       # backends this machine cannot run, with why
    for candidate in AUTO_ORDER:
        probe, factory = BACKENDS[candidate]
        why_not = probe()
        if why_not is not None:
            passed_over.append(f"{candidate} cannot run here: {why_not}")
            continue
        reason = _auto_reason(candidate, passed_over, skipped)
        if entries is None:
            return BackendChoice(candidate, reason)
        try:
            made = factory(entries, cq_capacities or [], budget, engine)
        except BackendUnfit as err:
            skipped.append(f"{candidate} cannot take this ring: {err}")
            continue
        return BackendChoice(candidate, _auto_reason(candidate, passed_over, skipped), made, skipped)
    raise RuntimeError("no backend can run on this machine")  # emulated always can


def _auto_reason(candidate: str, passed_over: list[str], skipped: list[str]) -> str:
    """"name: why": the first choice says what it has; a later one says why the earlier could not."""
    if candidate == AUTO_ORDER[0]:
        return _available_reason(candidate)
    return f"{candidate}: " + "; ".join(passed_over + skipped)


def auto_backend() -> str:
    """The backend "auto" picks on this machine (for a ring within every backend's limits)."""
    return choose_backend().name


def create_backend(name: str, entries: int, cq_capacities: list[int], budget: int,
                   engine: str = "interp") -> RingBackend:
    backend = choose_backend(name, entries, cq_capacities, budget, engine).backend
    assert backend is not None
    return backend


__all__ = ["AUTO_ORDER", "BACKENDS", "BackendChoice", "BackendFallbackWarning", "BackendUnfit", "auto_backend",
           "choose_backend", "ProgramFault", "RingBackend", "create_backend"]
