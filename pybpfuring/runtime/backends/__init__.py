"""Where a `Ring`'s programs run. One model (docs/runtime.md), several backends.

A backend is chosen and created by `choose_backend(name, entries, cq_capacities, budget, engine)`,
which also says why (`Ring.backend_reason`, `pybpfuring info`), and offers what `Ring` calls (see
`RingBackend`). Today there is `emulated` (any kernel with io_uring: programs run in
the user-space engine). A kernel backend (Linux >= 7.1, io_uring_bpf_ops) registers itself in
`BACKENDS` with a `probe()` that says whether this machine can run it; "auto" takes the first
available one in `AUTO_ORDER` that accepts the ring's shape, and `Ring` warns
(BackendFallbackWarning) when it had to pass over one the machine has because the ring did not fit.

This package's names live in `base.py` (the protocol) and `select.py` (the choice); they are
re-exported here, where docs, examples and tests import them.
"""
from __future__ import annotations

from pybpfuring.errors import BackendFallbackWarning, ProgramFault

from .base import BackendUnfit, RingBackend
from .select import AUTO_ORDER, BACKENDS, BackendChoice, auto_backend, choose_backend, create_backend

__all__ = ["AUTO_ORDER", "BACKENDS", "BackendChoice", "BackendFallbackWarning", "BackendUnfit", "auto_backend",
           "choose_backend", "ProgramFault", "RingBackend", "create_backend"]
