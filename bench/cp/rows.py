"""The rows of the cp table: what each one runs, and how big a copy it makes.

Every row copies the same kind of file (page-cached, on a block file system) to /dev/zero in 4 KiB
blocks at queue depth 1. A row with `max_size` copies less than the table's size where its per-block
cost would make the full size impractical; the table says so, and compares rows per byte.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from bench import cbuild

REPO = Path(__file__).resolve().parents[2]
MiB = 1 << 20


@dataclass(frozen=True)
class Row:
    id: str
    label: str
    c_source: str | None = None        # bench/<c_source>, built by cbuild; else a Python worker row
    c_mode: str | None = None          # extra argument of the C program
    max_size: int | None = None        # cap on the copy size (slow rows)
    whole_file: bool = False           # copies to end of file: needs a source file of its own size

    def argv(self, src: str, size: int) -> list[str]:
        """The command that copies `size` bytes of `src` and prints `ns=... bytes=...`."""
        if self.c_source is not None:
            return [str(cbuild.build(self.c_source)), src, str(size), *([self.c_mode] if self.c_mode else [])]
        return [sys.executable, "-m", "bench.cp.worker", self.id, src, str(size)]

    def check_argv(self) -> list[str] | None:
        return None if self.c_source is not None else [sys.executable, "-m", "bench.cp.worker", self.id,
                                                       "--check"]


BASELINE = "c_rw"


def all_rows(emulated_size: int) -> list[Row]:
    return [
        Row(BASELINE, "read/write loop (C: pread+write)", c_source="cp/rw.c"),
        Row("c_uring", "io_uring QD1 (C, liburing)", c_source="cp/uring.c"),
        Row("c_uring_dt", "io_uring QD1 (C, liburing, SINGLE_ISSUER+DEFER_TASKRUN)", c_source="cp/uring.c",
            c_mode="dt"),
        Row("py_rw", "read/write loop (Python: os.pread+os.write)"),
        Row("py_ring", "io_uring QD1 (Python: runtime.ring.IoUring)"),
        Row("emulated_native", "pybpfuring emulated, native event loop (examples/cp.py, Ring engine=native)",
            whole_file=True),
        Row("emulated_jit", "pybpfuring emulated, JIT engine (examples/cp.py, Ring engine=jit)",
            max_size=emulated_size, whole_file=True),
        Row("emulated_interp", "pybpfuring emulated, interpreter (examples/cp.py, Ring engine=interp)",
            max_size=emulated_size, whole_file=True),
        Row("kernel_program", "pybpfuring in-kernel @iouring_program (examples/cp.py, Ring backend=bpf_ops)",
            whole_file=True),
        Row("kernel_loop_step", "pybpfuring in-kernel raw @loop_step (examples/bpf_cp.py)",
            whole_file=True),
    ]
