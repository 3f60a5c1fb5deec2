"""Broadcast and collect as generator programs: one buffer written to N files, then N reads
gathered into one buffer, each by ONE IORING_OP_BPF request.

`broadcast` submits N writes whose CQEs go to its own CQ, then waits for them one by one
(`cqe = yield wait_cqe(ctx, args.cq)`), checks each result and completes with the total bytes
written or the first error. `gather` does the reverse: N reads of the files into consecutive
slices of one buffer. The loop counter, the total and the first error live in the request's frame.

    python3 examples/fanout.py [--files 8] [--size 4096] [--backend auto|emulated|bpf_ops]
"""
from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import sys
import tempfile

from pybpfuring.lang import (Array, Ctx, Sqe, i32, iouring_program, prep_read, prep_write, struct,
                             submit, u32, u64, wait_cqe)

MAX_FILES = 64


@struct
class FanArgs:
    n: u32              # files
    cq: u32             # the request's own CQ (at least n entries)
    buf: u64            # broadcast: the data; gather: n * size bytes to fill
    size: u32           # bytes per file
    pad: u32
    fds: Array[i32, MAX_FILES]


@iouring_program
def broadcast(ctx: Ctx, args: FanArgs) -> i32:
    for i in range(MAX_FILES):
        if i >= args.n:
            break
        sqe = Sqe()
        prep_write(sqe, args.fds[i], args.buf, args.size, 0)
        sqe.user_data = i
        sqe.cq_idx = args.cq
        submit(ctx, sqe)
    total = 0
    err = 0
    for i in range(MAX_FILES):
        if i >= args.n:
            break
        cqe = yield wait_cqe(ctx, args.cq)
        if cqe.res < 0 and err == 0:
            err = cqe.res
        elif cqe.res >= 0:
            total += cqe.res
    if err != 0:
        return err
    return i32(total)


@iouring_program
def gather(ctx: Ctx, args: FanArgs) -> i32:
    for i in range(MAX_FILES):
        if i >= args.n:
            break
        sqe = Sqe()
        prep_read(sqe, args.fds[i], args.buf + u64(i) * args.size, args.size, 0)
        sqe.user_data = i
        sqe.cq_idx = args.cq
        submit(ctx, sqe)
    total = 0
    err = 0
    for i in range(MAX_FILES):
        if i >= args.n:
            break
        cqe = yield wait_cqe(ctx, args.cq)
        if cqe.res != args.size and err == 0:
            err = cqe.res if cqe.res < 0 else -5       # -EIO: a short read
        total += cqe.res if cqe.res > 0 else 0
    if err != 0:
        return err
    return i32(total)


def run(files: int, size: int, backend: str) -> tuple[int, int]:
    from pybpfuring.runtime import Ring
    work = tempfile.mkdtemp(prefix="pybpfuring-fanout-")
    fds: list[int] = []
    try:
        paths = [os.path.join(work, f"out{i}") for i in range(files)]
        fds = [os.open(p, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600) for p in paths]
        data = os.urandom(size)
        with Ring(16, cqs=[MAX_FILES], backend=backend) as ring:
            ring.register_programs([broadcast, gather])
            src = ring.user_memory(ctypes.c_uint8 * size)
            ctypes.memmove(src, data, size)
            args = ring.user_memory(FanArgs.ctype)
            args.n, args.cq, args.buf, args.size = files, 1, ctypes.addressof(src), size
            for i, fd in enumerate(fds):
                args.fds[i] = fd
            ring.prep_bpf(broadcast, user_data=ctypes.addressof(args))
            ring.submit_and_wait(1)
            written = ring.wait_cqe().res
            dst = ring.user_memory(ctypes.c_uint8 * (size * files))
            args.buf = ctypes.addressof(dst)
            ring.prep_bpf(gather, user_data=ctypes.addressof(args))
            ring.submit_and_wait(1)
            gathered = ring.wait_cqe().res
            print(f"broadcast: {written} bytes to {files} files; gather: {gathered} bytes "
                  f"on {ring.backend}")
            for i, p in enumerate(paths):
                with open(p, "rb") as f:
                    if f.read() != data:
                        raise SystemExit(f"{p}: contents differ from the broadcast buffer")
            if bytes(dst) != data * files:
                raise SystemExit("gathered buffer differs from the files")
        print("every file holds the buffer; the gathered buffer holds every file")
        return written, gathered
    finally:
        for fd in fds:
            os.close(fd)
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--files", type=int, default=8, help=f"files (2..{MAX_FILES}, default 8)")
    p.add_argument("--size", type=int, default=4096, help="bytes per file (default 4096)")
    p.add_argument("--backend", default="auto", choices=["auto", "emulated", "bpf_ops"])
    a = p.parse_args(argv)
    if not 1 <= a.files <= MAX_FILES or not 1 <= a.size <= 1 << 16:
        p.error(f"--files must be 1..{MAX_FILES} and --size 1..65536")
    run(a.files, a.size, a.backend)
    return 0


if __name__ == "__main__":
    sys.exit(main())
