"""What this machine can run: `pybpfuring info`, and the backend choice of `Ring(backend="auto")`.

The checks live in machine.py (they import nothing above the ring and the loader), the choice
in backends/select.py; both are re-exported here, where the CLI and benchmarks import them.
"""
from __future__ import annotations

from .backends.select import default_backend, describe_backends
from .machine import Support, backends, check_bpf, check_bpf_ops, check_io_uring

__all__ = ["Support", "backends", "check_bpf", "check_bpf_ops", "check_io_uring", "default_backend",
           "describe_backends"]
