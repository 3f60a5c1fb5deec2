"""Ring.stats(): what a ring did, counted the same way on every backend (docs/trace.md).

Copies SRC to DST with the `cp` program of examples/cp.py (one IORING_OP_BPF request that reads and
writes 4 KiB at a time on its private CQ 1), then prints the ring's counters next to what the copy
must have done: for N blocks, N + 1 reads (the last one returns 0: end of file) and N writes, all
submitted by the program, each completing on CQ 1; one run per completion plus the first; every run
but the last returns WAIT. Then a burst program emits more CQEs than an extra CQ holds, to show drops.

    python3 examples/ring_stats.py [--backend auto|emulated|bpf_ops] [--engine NAME] SRC DST
"""
from __future__ import annotations

import argparse
import ctypes
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cp as cp_example  # noqa: E402  (examples/cp.py: the program and its state map)
from pybpfuring import Ctx, OK, iouring_program  # noqa: E402
from pybpfuring.lang import emit_cqe  # noqa: E402
from pybpfuring.runtime import Ring  # noqa: E402
from pybpfuring.runtime.model import RingStats  # noqa: E402

BURST_CQ_SIZE = 4


@iouring_program
def emit_burst(ctx: Ctx) -> int:
    # Emits ctx.user_data CQEs (at most 16) to CQ 1: those beyond its size are dropped (-ENOMEM).
    for i in range(16):
        if i < ctx.user_data:
            emit_cqe(ctx, 1, 500 + i, i, 0)
    return OK


def copy_with_stats(src_fd: int, dst_fd: int, backend: str = "auto", engine: str = "auto"
                    ) -> tuple[int, RingStats, str]:
    """(bytes copied, the ring's stats after the copy, backend name); OSError on an I/O error."""
    state = cp_example.state
    buf = ctypes.create_string_buffer(cp_example.BLOCK)
    with Ring(8, cqs=[8], backend=backend, engine=engine) as ring:
        ring.register_programs([cp_example.cp])
        for slot in range(8):
            state[slot] = 0
        state[cp_example.BUF] = ctypes.addressof(buf)
        state[cp_example.IN_FD], state[cp_example.OUT_FD] = src_fd, dst_fd
        ring.prep_bpf(cp_example.cp, user_data=0xC0)
        ring.submit()
        done = ring.wait_cqe(0)
        if done.res < 0 or state[cp_example.ERROR]:
            err = -done.res if done.res < 0 else state[cp_example.ERROR]
            raise OSError(err, os.strerror(err))
        return state[cp_example.OFFSET], ring.stats(), ring.backend


def expected_copy_stats(blocks: int) -> dict[str, object]:
    """What stats() must say after copying `blocks` full blocks with `cp` on a ring with one extra CQ."""
    ios = 2 * blocks + 1
    return {"user_submitted": 1, "program_submitted": ios, "completed": (1, ios),
            "program_runs": ios + 1, "waits": ios, "overflows": (0, 0)}


def burst_stats(count: int, backend: str = "auto", engine: str = "auto") -> RingStats:
    """Stats after one run that emits `count` CQEs to an extra CQ of BURST_CQ_SIZE entries."""
    with Ring(8, cqs=[BURST_CQ_SIZE], backend=backend, engine=engine) as ring:
        ring.register_programs([emit_burst])
        ring.prep_bpf(emit_burst, user_data=count)
        ring.submit_and_wait(1)
        return ring.stats()


def _print(title: str, stats: RingStats, expected: dict[str, object] | None = None) -> None:
    print(title)
    for key, value in stats.as_dict().items():
        want = "" if expected is None or key not in expected else f"   (expected {list(expected[key]) if isinstance(expected[key], tuple) else expected[key]})"
        print(f"  {key:18} {value}{want}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--engine", default="auto")
    parser.add_argument("src")
    parser.add_argument("dst")
    args = parser.parse_args(argv)
    try:
        fd_in = os.open(args.src, os.O_RDONLY)
        try:
            fd_out = cp_example.open_destination(fd_in, args.src, args.dst)   # never truncates src
            try:
                copied, stats, backend = copy_with_stats(fd_in, fd_out, args.backend, args.engine)
            finally:
                os.close(fd_out)
        finally:
            os.close(fd_in)
    except OSError as exc:
        print(f"ring_stats: {exc}", file=sys.stderr)
        return 1
    blocks, rest = divmod(copied, cp_example.BLOCK)
    expected = expected_copy_stats(blocks) if rest == 0 else None
    _print(f"copy of {copied} bytes ({blocks} blocks of {cp_example.BLOCK}) on backend {backend}:",
           stats, expected)
    burst = burst_stats(10, args.backend, args.engine)
    _print(f"a run that emits 10 CQEs to a CQ of {BURST_CQ_SIZE}:", burst,
           {"completed": (1, BURST_CQ_SIZE), "overflows": (0, 10 - BURST_CQ_SIZE)})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
