"""cp with one IORING_OP_BPF request: a QD1 copy, 4 KiB at a time, driven entirely by a program.

The program keeps its state in the map `state` (offset, phase, result) and the request's completions
on its private CQ 1: it submits a READ, waits for its CQE, submits a WRITE of what was read, waits,
and so on until a read returns 0 (end of file). User space only starts it and waits for it to finish:
the LPC 2021 talk's "cp" benchmark shape.

    pybpfuring run examples/cp.py [--jit | --engine=NAME] SRC DST
    python3 examples/cp.py [--jit | --engine=NAME] SRC DST
"""
from __future__ import annotations

import ctypes
import os
import sys
from dataclasses import dataclass

from pybpfuring import ArrayMap, Cqe, Ctx, OK, Sqe, WAIT, i32, iouring_program, u64
from pybpfuring.lang import prep_read, prep_write, reap_cqe, submit

BLOCK = 4096
CP_CQ = 1
# Slots of `state`: set by user space before the request starts ...
BUF, IN_FD, OUT_FD = 0, 1, 2
# ... and kept by the program between its runs.
OFFSET, PHASE, ERROR = 3, 4, 5
IDLE, READING, WRITING = 0, 1, 2
USER_DATA_READ, USER_DATA_WRITE = 1, 2

state = ArrayMap(u64, 8)


@iouring_program
def cp(ctx: Ctx) -> int:
    phase = state[PHASE]
    off = state[OFFSET]
    sqe = Sqe()
    if phase == IDLE:
        prep_read(sqe, i32(state[IN_FD]), state[BUF], BLOCK, off)
        sqe.user_data = USER_DATA_READ
        phase = READING
    else:
        cqe = Cqe()
        if reap_cqe(ctx, CP_CQ, cqe) != 0:
            ctx.wait_idx = CP_CQ  # woken without a CQE: wait again
            ctx.wait_nr = 1
            return WAIT
        if cqe.res < 0:
            state[ERROR] = -cqe.res
            return OK
        if phase == READING:
            if cqe.res == 0:
                return OK  # end of file
            prep_write(sqe, i32(state[OUT_FD]), state[BUF], cqe.res, off)
            sqe.user_data = USER_DATA_WRITE
            phase = WRITING
        else:
            off += cqe.res  # a short write re-reads the rest: still correct
            state[OFFSET] = off
            prep_read(sqe, i32(state[IN_FD]), state[BUF], BLOCK, off)
            sqe.user_data = USER_DATA_READ
            phase = READING
    sqe.cq_idx = CP_CQ
    submit(ctx, sqe)
    state[PHASE] = phase
    ctx.wait_idx = CP_CQ
    ctx.wait_nr = 1
    return WAIT


@dataclass
class CopyStats:
    bytes_copied: int
    program_runs: int


def copy_fds(src_fd: int, dst_fd: int, backend: str = "auto", engine: str = "auto") -> CopyStats:
    """Copy src_fd (from offset 0) to dst_fd with the `cp` program; raises OSError on an I/O error."""
    from pybpfuring.runtime import Ring
    buf = ctypes.create_string_buffer(BLOCK)
    with Ring(8, cqs=[8], backend=backend, engine=engine) as ring:
        ring.register_programs([cp])
        state[BUF], state[IN_FD], state[OUT_FD] = ctypes.addressof(buf), src_fd, dst_fd
        ring.prep_bpf(cp, user_data=0xC0)
        ring.submit()
        done = ring.wait_cqe(0)
        runs = ring.stats().program_runs
        if done.res < 0:
            raise OSError(-done.res, f"the cp request failed: {os.strerror(-done.res)}")
        if state[ERROR]:
            raise OSError(state[ERROR], os.strerror(state[ERROR]))
        return CopyStats(state[OFFSET], runs)


def _truncate_destination(fd_in: int, fd_out: int, src: str, dst: str) -> None:
    """Empty dst, unless it is src itself: truncating that would lose it (cp(1) refuses too)."""
    import os
    import stat
    a, b = os.fstat(fd_in), os.fstat(fd_out)
    if (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino):
        raise OSError(22, f"{src!r} and {dst!r} are the same file")
    if stat.S_ISREG(b.st_mode):
        os.ftruncate(fd_out, 0)


def open_destination(src_fd: int, src: str, dst: str) -> int:
    """dst opened for writing and emptied, once known not to be src (OSError if it is)."""
    dst_fd = os.open(dst, os.O_WRONLY | os.O_CREAT, 0o644)  # no O_TRUNC: it may be src
    try:
        _truncate_destination(src_fd, dst_fd, src, dst)
    except OSError:
        os.close(dst_fd)
        raise
    return dst_fd


def copy_file(src: str, dst: str, backend: str = "auto", engine: str = "auto") -> CopyStats:
    src_fd = os.open(src, os.O_RDONLY)
    try:
        dst_fd = open_destination(src_fd, src, dst)
        try:
            return copy_fds(src_fd, dst_fd, backend, engine)
        finally:
            os.close(dst_fd)
    finally:
        os.close(src_fd)


def main(argv: list[str]) -> int:
    engine = "auto"                       # the fastest engine the machine has (native)
    if argv[:1] == ["--jit"]:
        engine, argv = "jit", argv[1:]
    elif argv[:1] and argv[0].startswith("--engine="):
        engine, argv = argv[0].split("=", 1)[1], argv[1:]
    if len(argv) != 2:
        print("usage: cp.py [--jit | --engine=auto|native|jit|interp] SRC DST", file=sys.stderr)
        return 2
    try:
        stats = copy_file(argv[0], argv[1], engine=engine)
    except OSError as exc:
        print(f"cp: {exc}", file=sys.stderr)
        return 1
    print(f"copied {stats.bytes_copied} bytes in {stats.program_runs} program runs")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
