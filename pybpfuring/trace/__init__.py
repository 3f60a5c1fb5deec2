"""`pybpfuring trace`: what io_uring rings make the kernel do, with bcc on the io_uring tracepoints.

bcc_env.py finds bcc and the kernel headers (or says what is missing), program.py is the bcc program,
proginfo.py reads the kernel backend's struct_ops run counts, report.py formats an interval, cli.py
runs it all (docs/trace.md). Ring.stats() is the user-space side of the same picture, without bcc.
"""
from .bcc_env import TraceUnavailable

__all__ = ["TraceUnavailable"]
