"""What every backend offers `Ring` (`RingBackend`), and how one says it cannot take a ring
(`BackendUnfit`). Apart from the choice (select.py), so that a backend can raise BackendUnfit
without importing the module that imports it."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

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
    # run=False: only start the staged SQEs, for a caller that pumps right after (submit_and_wait);
    # a backend may run what is ready anyway.
    def submit(self, timeout: float | None = None, run: bool = True) -> int: ...
    def pump(self, until: Callable[[], bool] | None = None, timeout: float | None = None) -> None: ...
    def in_flight(self) -> int: ...
    def close(self) -> None: ...


class BackendUnfit(ValueError):
    """This backend runs here, but not a ring of the shape asked for (e.g. more CQs than it has):
    "auto" then takes the next backend; a backend named explicitly raises it as a ValueError."""


__all__ = ["BackendUnfit", "RingBackend"]
