"""`KernelTrace`: the kernel's side of a piece of Python code, for benchmarks and tests.

    from pybpfuring.trace.session import KernelTrace
    with KernelTrace() as kt:              # this process's rings (bcc must be able to run here)
        copy_file(src, dst)
    kt.result.ops[22]                      # (submitted, completed, errors) of IORING_OP_READ
    kt.result.enters, kt.result.completions, kt.result.progs

The same counts `pybpfuring trace` prints (report.Interval), gathered in-process: the bcc program is
compiled on entry (TraceUnavailable if bcc or the kernel headers are missing). Struct_ops run counts:
programs still loaded at the end are read through an fd taken on them then; programs unloaded inside
the block (a ring closed: however short it lived) are counted by the unload probe (unload.py) when
the kernel frees them. Where that probe cannot attach (`unload_probe` says why), a thread takes an fd
on each io_uring struct_ops program every 10 ms instead, and a program living less can be missed.
"""
from __future__ import annotations

import os
import threading
import time
from typing import Any

from .bcc_env import setup_bcc
from .proginfo import StructOpsWatch
from .program import COUNTERS
from .report import Interval, Snapshot, diff
from .unload import load_program, settle, unloaded_runs

SCAN_PERIOD = 0.01          # see cli.SCAN_PERIOD


def snapshot(b: Any, watch: StructOpsWatch) -> Snapshot:
    """Cumulative counts of the attached program's tables and of the watched struct_ops programs."""
    snap = Snapshot()
    for k, v in b["per_op"].items():
        if v.submitted or v.completed or v.errors:
            snap.ops[k.value] = (v.submitted, v.completed, v.errors)
    counts = b["counts"]
    snap.counts = [counts[counts.Key(i)].value for i in range(COUNTERS)]
    for k, v in b["latency"].items():
        snap.hist[(k.op, k.slot)] = v.value
    watch.scan()
    snap.progs = {p.prog_id: p for p in watch.read()}
    snap.progs.update(unloaded_runs(b))     # final counts (a watched program is never unloaded)
    return snap


class KernelTrace:
    """Kernel-side io_uring counts of `pid` (default: this process) while the block runs."""

    def __init__(self, pid: int | None = None, ring_fd: int | None = None) -> None:
        self.pid = os.getpid() if pid is None else pid
        self.ring_fd = ring_fd
        self.result: Interval | None = None
        self.unload_probe: str | None = None    # None: attached; else why not (then scanned)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "KernelTrace":
        setup = setup_bcc()
        self._bpf, self.unload_probe = load_program(setup.bcc, self.pid, self.ring_fd)
        self._watch = StructOpsWatch(self.pid)
        self._t0 = time.time()
        self._first = snapshot(self._bpf, self._watch)
        if self.unload_probe is not None:
            # Only this thread touches the watch until __exit__ joins it.
            self._thread = threading.Thread(target=self._scan_loop, name="pybpfuring-trace-scan",
                                            daemon=True)
            self._thread.start()
        return self

    def _scan_loop(self) -> None:
        while not self._stop.wait(SCAN_PERIOD):
            self._watch.scan()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self._watch.scan()
            settle(self._bpf, set(self._watch.fds))
            last = snapshot(self._bpf, self._watch)
            self.result = diff(self._first, last, self._t0, time.time() - self._t0, total=True)
        finally:
            self._watch.close()
            self._bpf.cleanup()
