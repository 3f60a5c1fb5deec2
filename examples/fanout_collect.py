"""Fan-out / collect: one buffer written to N files (2..64) by ONE BPF request that waits for all N
completions on its own CQ and completes with the total bytes or the first error; then the reverse,
N reads gathered into one buffer.

Unlike the shorter examples/fanout.py, every result is checked the way a storage system must: a
short write or read is an error (-EIO), and "the first error" is that of the lowest-numbered file
that failed (each write's CQE carries its file index in user_data), whatever order the kernel
completed them in. The request always waits for all N CQEs before it completes, so no CQE is left
behind on its CQ and no write is still in flight when user space reuses the buffer.

    python3 examples/fanout_collect.py [--files 16] [--size 65536] [--rounds 100]
                                       [--backend auto|emulated|bpf_ops]
"""
from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence

from pybpfuring.errors import PyBpfUringError
from pybpfuring.lang import (EIO, Array, Ctx, Sqe, i32, iouring_program, prep_read, prep_write,
                             struct, submit, u32, u64, wait_cqe)

MAX_FILES = 64
NO_ERROR = MAX_FILES      # err_idx before any file failed


@struct
class FanArgs:
    n: u32              # files, 1..MAX_FILES
    cq: u32             # the request's own CQ (at least n entries)
    buf: u64            # broadcast: the data; gather: n * size bytes to fill
    size: u32           # bytes per file
    pad: u32
    off: u64            # file offset of every write/read
    fds: Array[i32, MAX_FILES]


@iouring_program
def broadcast_all(ctx: Ctx, args: FanArgs) -> i32:
    n = min(args.n, MAX_FILES)
    for i in range(MAX_FILES):
        if i >= n:
            break
        sqe = Sqe()
        prep_write(sqe, args.fds[i], args.buf, args.size, args.off)
        sqe.user_data = i
        sqe.cq_idx = args.cq
        submit(ctx, sqe)
    total: u64 = 0
    err = 0
    err_idx: u32 = NO_ERROR
    for i in range(MAX_FILES):
        if i >= n:
            break
        cqe = yield wait_cqe(ctx, args.cq)
        res = cqe.res if cqe.res < 0 or u32(cqe.res) == args.size else -EIO   # short: -EIO
        if res < 0 and cqe.user_data < err_idx:
            err = res
            err_idx = u32(cqe.user_data)
        elif res > 0:
            total += u64(res)
    if err != 0:
        return err
    return i32(total)


@iouring_program
def gather_all(ctx: Ctx, args: FanArgs) -> i32:
    n = min(args.n, MAX_FILES)
    for i in range(MAX_FILES):
        if i >= n:
            break
        sqe = Sqe()
        prep_read(sqe, args.fds[i], args.buf + u64(i) * args.size, args.size, args.off)
        sqe.user_data = i
        sqe.cq_idx = args.cq
        submit(ctx, sqe)
    total: u64 = 0
    err = 0
    err_idx: u32 = NO_ERROR
    for i in range(MAX_FILES):
        if i >= n:
            break
        cqe = yield wait_cqe(ctx, args.cq)
        res = cqe.res if cqe.res < 0 or u32(cqe.res) == args.size else -EIO
        if res < 0 and cqe.user_data < err_idx:
            err = res
            err_idx = u32(cqe.user_data)
        elif res > 0:
            total += u64(res)
    if err != 0:
        return err
    return i32(total)


PROGRAMS = [broadcast_all, gather_all]


class Fan:
    """A ring with the two programs, one args block and one buffer per direction."""

    def __init__(self, ring, size: int, files: int = MAX_FILES) -> None:
        self.ring, self.size = ring, size
        self.src = ring.user_memory(ctypes.c_uint8 * size)
        # Only what `files` gathers need: the kernel backend has 256 KiB of user memory per ring.
        self.dst = ring.user_memory(ctypes.c_uint8 * (size * files))
        self.args = ring.user_memory(FanArgs.ctype)
        self.args.cq, self.args.size = 1, size

    def _go(self, prog, fds: Sequence[int], buf, off: int) -> int:
        a = self.args
        a.n, a.buf, a.off = len(fds), ctypes.addressof(buf), off
        for i, fd in enumerate(fds):
            a.fds[i] = fd
        self.ring.prep_bpf(prog, user_data=ctypes.addressof(a))
        self.ring.submit_and_wait(1, timeout=60)
        return self.ring.wait_cqe().res

    def broadcast(self, fds: Sequence[int], data: bytes, off: int = 0) -> int:
        ctypes.memmove(self.src, data, len(data))
        return self._go(broadcast_all, fds, self.src, off)

    def gather(self, fds: Sequence[int], off: int = 0) -> tuple[int, bytes]:
        if len(fds) * self.size > ctypes.sizeof(self.dst):
            raise ValueError(f"this Fan gathers at most {ctypes.sizeof(self.dst) // self.size} files")
        res = self._go(gather_all, fds, self.dst, off)
        return res, ctypes.string_at(ctypes.addressof(self.dst), self.size * len(fds))


def open_fan(size: int, backend: str, engine: str = "auto", files: int = MAX_FILES) -> Fan:
    from pybpfuring.runtime import Ring
    ring = Ring(64, cqs=[MAX_FILES], backend=backend,
                **({"engine": engine} if backend == "emulated" else {}))
    ring.register_programs(PROGRAMS)
    return Fan(ring, size, files)


def python_broadcast(fds: Sequence[int], data: bytes, off: int = 0) -> int:
    """What a user writes without io_uring: N os.pwrite calls, the same result rules."""
    total, err = 0, 0
    for fd in fds:
        try:
            n = os.pwrite(fd, data, off)
        except OSError as e:
            n = -e.errno
        n = n if n < 0 or n == len(data) else -EIO
        if n < 0 and err == 0:
            err = n
        total += max(n, 0)
    return err or total


def python_gather(fds: Sequence[int], size: int, off: int = 0) -> tuple[int, bytes]:
    parts, err = [], 0
    for fd in fds:
        try:
            b = os.pread(fd, size, off)
            r = len(b) if len(b) == size else -EIO
        except OSError as e:
            b, r = b"", -e.errno
        if r < 0 and err == 0:
            err = r
        parts.append(b.ljust(size, b"\0"))
    return (err or size * len(fds)), b"".join(parts)


def run(files: int, size: int, rounds: int, backend: str) -> None:
    work = tempfile.mkdtemp(prefix="pybpfuring-fanout-")
    fds: list[int] = []
    try:
        fds = [os.open(os.path.join(work, f"out{i}"), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
               for i in range(files)]
        data = os.urandom(size)
        fan = open_fan(size, backend, files=files)
        with fan.ring:
            t0 = time.perf_counter()
            for r in range(rounds):
                written = fan.broadcast(fds, data, r * size)
                if written != size * files:
                    raise SystemExit(f"broadcast round {r}: {written}")
            t1 = time.perf_counter()
            for r in range(rounds):
                got, buf = fan.gather(fds, r * size)
                if got != size * files or buf != data * files:
                    raise SystemExit(f"gather round {r}: {got}, contents differ")
            t2 = time.perf_counter()
            print(f"{rounds} x broadcast of {size} B to {files} files on {fan.ring.backend}: "
                  f"{rounds / (t1 - t0):,.0f} rounds/s; gather: {rounds / (t2 - t1):,.0f} rounds/s")
        for fd in fds:
            if os.pread(fd, size, (rounds - 1) * size) != data:
                raise SystemExit("a file differs from the broadcast buffer")
        print("every file holds the buffer at every offset; every gather returned every file")
    finally:
        for fd in fds:
            os.close(fd)
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--files", type=int, default=16, help=f"files (2..{MAX_FILES}, default 16)")
    p.add_argument("--size", type=int, default=65536, help="bytes per file (default 65536)")
    p.add_argument("--rounds", type=int, default=100, help="broadcasts, then gathers (default 100)")
    p.add_argument("--backend", default="auto", choices=["auto", "emulated", "bpf_ops"])
    a = p.parse_args(argv)
    if not 2 <= a.files <= MAX_FILES or not 1 <= a.size <= 1 << 20 or not 1 <= a.rounds <= 100_000:
        p.error(f"--files 2..{MAX_FILES}, --size 1..1048576, --rounds 1..100000")
    try:
        run(a.files, a.size, a.rounds, a.backend)
    except (ValueError, PyBpfUringError) as e:
        if a.backend == "auto":
            raise
        # Where the kernel backend cannot run this (its 256 KiB of user memory per ring, a
        # verifier limit), say so instead of a traceback: docs/usecases.md lists these limits.
        print(f"{p.prog} cannot run on backend {a.backend}: {e}")
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
