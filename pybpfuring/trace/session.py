"""`KernelTrace`: the kernel's side of a piece of Python code, for benchmarks and tests.

    from pybpfuring.trace.session import KernelTrace
    with KernelTrace() as kt:              # this process's rings (bcc must be able to run here)
        copy_file(src, dst)
    kt.result.ops[22]                      # (submitted, completed, errors) of IORING_OP_READ
    kt.result.enters, kt.result.completions, kt.result.progs

The same counts `pybpfuring trace` prints (report.Interval), gathered in-process: the bcc program is
compiled on entry (TraceUnavailable if bcc or the kernel headers are missing), and a thread takes an fd
on each io_uring struct_ops program as it appears, so its run count survives the ring's close.
"""
from __future__ import annotations

import os
import threading
import time
from typing import Any

from .bcc_env import setup_bcc
from .proginfo import StructOpsWatch
from .program import COUNTERS, bpf_text
from .report import Interval, Snapshot, diff

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
    return snap


class KernelTrace:
    """Kernel-side io_uring counts of `pid` (default: this process) while the block runs."""

    def __init__(self, pid: int | None = None, ring_fd: int | None = None) -> None:
        self.pid = os.getpid() if pid is None else pid
        self.ring_fd = ring_fd
        self.result: Interval | None = None
        self._stop = threading.Event()

    def __enter__(self) -> "KernelTrace":
        setup = setup_bcc()
        self._bpf = setup.bcc.BPF(text=bpf_text(self.pid, self.ring_fd), cflags=["-w"])
        self._watch = StructOpsWatch(self.pid)
        self._t0 = time.time()
        self._first = snapshot(self._bpf, self._watch)
        # Only this thread touches the watch until __exit__ joins it.
        self._thread = threading.Thread(target=self._scan_loop, name="pybpfuring-trace-scan", daemon=True)
        self._thread.start()
        return self

    def _scan_loop(self) -> None:
        while not self._stop.wait(SCAN_PERIOD):
            self._watch.scan()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        try:
            last = snapshot(self._bpf, self._watch)
            self.result = diff(self._first, last, self._t0, time.time() - self._t0, total=True)
        finally:
            self._watch.close()
            self._bpf.cleanup()
