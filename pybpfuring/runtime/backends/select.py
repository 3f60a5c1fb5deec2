"""The choice of a ring's backend: `choose_backend` (what "auto" takes, or the one named, and
why), the `BACKENDS` registry and `AUTO_ORDER`, and what `pybpfuring info` says about it
(`describe_backends`). Above the backends and the machine probes (probe.py), which import
nothing of it."""
from __future__ import annotations

import platform
from collections.abc import Callable
from dataclasses import dataclass, field

from pybpfuring.runtime.machine import backends
from pybpfuring.runtime.backends.native import unavailable_reason
from pybpfuring.runtime.backends.native.backend import NativeBackend

from .base import BackendUnfit, RingBackend
from .bpf_ops_ring import BpfOpsBackend, probe as bpf_ops_probe
from .emulated import EmulatedBackend


def _emulated(entries: int, cq_capacities: list[int], budget: int, engine: str) -> RingBackend:
    if engine in ("auto", "native"):
        # The native event loop (runtime/backends/native) where it can be built, else the Python loop + JIT.
        reason = unavailable_reason()
        if reason is None:
            return NativeBackend(entries, cq_capacities, budget)
        if engine == "native":
            raise ValueError(f"engine 'native' cannot run here: {reason}")
        engine = "jit"
    return EmulatedBackend(entries, cq_capacities, budget, engine)


# name -> (probe() -> reason it cannot run here or None, factory(entries, cq_capacities, budget, engine))
BACKENDS: dict[str, tuple[Callable[[], str | None],
                          Callable[[int, list[int], int, str], RingBackend]]] = {
    "emulated": (lambda: None, _emulated),
}


def _bpf_ops(entries: int, cq_capacities: list[int], budget: int, engine: str) -> RingBackend:
    return BpfOpsBackend(entries, cq_capacities, budget, engine)  # type: ignore[return-value]


# Linux >= 7.1: programs in the kernel's io_uring loop (bpf_ops_ring.py), first where its probe
# passes (the struct_ops in the kernel's BTF, bpf() allowed); else the user-space engine.
BACKENDS["bpf_ops"] = (bpf_ops_probe, _bpf_ops)
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


def default_backend() -> str:
    """What Ring(backend="auto") picks here: the first of AUTO_ORDER whose probe passes."""
    return auto_backend()


def describe_backends() -> str:
    lines = [f"kernel {platform.release()} ({platform.machine()})"]
    for s in backends():
        lines.append(f"  {s.name:14s} {'yes' if s.available else 'no ':4s} {s.why}")
    choice = choose_backend()
    lines.append(f"default backend: {choice.reason}")
    return "\n".join(lines)


__all__ = ["AUTO_ORDER", "BACKENDS", "BackendChoice", "auto_backend", "choose_backend", "create_backend",
           "default_backend", "describe_backends"]
