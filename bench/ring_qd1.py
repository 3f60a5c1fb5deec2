"""QD1 copy of a page-cached file to /dev/zero, 4 KiB at a time, from Python.

Compares a plain os.pread/os.write loop with the same loop through pybpfuring's io_uring binding
(one round trip per read and per write), a linked read->write pair per block (one io_uring_enter per
block), and the linked pair on registered files + a registered buffer. Prints per-block times and ratios
measured in this one run (best of several repetitions). Not a test: numbers depend on the machine.

    python3 bench/ring_qd1.py [--mib 32] [--repeat 5]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from pybpfuring.uring import IoUring, prep_read, prep_read_fixed, prep_write, \
from pybpfuring.abi import uring as C
    prep_write_fixed  # noqa: E402

BLOCK = 4096


def copy_syscalls(src: int, dst: int, size: int) -> None:
    pread, write = os.pread, os.write
    for off in range(0, size, BLOCK):
        data = pread(src, BLOCK, off)
        write(dst, data)


def copy_ring_two_trips(src: int, dst: int, size: int) -> None:
    buf = bytearray(BLOCK)
    with IoUring(4) as ring:
        for off in range(0, size, BLOCK):
            sqe = ring.get_sqe()
            prep_read(sqe, src, buf, off)
            ring.submit_and_wait(1)
            n = ring.wait_cqe().res
            sqe = ring.get_sqe()
            prep_write(sqe, dst, buf, nbytes=n)
            ring.submit_and_wait(1)
            _check(ring.wait_cqe().res, n)


def copy_ring_linked(src: int, dst: int, size: int) -> None:
    buf = bytearray(BLOCK)
    with IoUring(4) as ring:
        for off in range(0, size, BLOCK):
            sqe = ring.get_sqe()
            prep_read(sqe, src, buf, off)
            sqe.flags = C.IOSQE_IO_LINK
            sqe = ring.get_sqe()
            prep_write(sqe, dst, buf)
            ring.submit_and_wait(2)
            _check(ring.wait_cqe().res, BLOCK)
            _check(ring.wait_cqe().res, BLOCK)


def copy_ring_linked_fixed(src: int, dst: int, size: int) -> None:
    buf = bytearray(BLOCK)
    with IoUring(4, flags=C.IORING_SETUP_SINGLE_ISSUER | C.IORING_SETUP_DEFER_TASKRUN) as ring:
        ring.register_files([src, dst])
        ring.register_buffers([buf])
        for off in range(0, size, BLOCK):
            sqe = ring.get_sqe()
            prep_read_fixed(sqe, 0, buf, off, 0)
            sqe.flags = C.IOSQE_IO_LINK | C.IOSQE_FIXED_FILE
            sqe = ring.get_sqe()
            prep_write_fixed(sqe, 1, buf, 0, 0)
            sqe.flags = C.IOSQE_FIXED_FILE
            ring.submit_and_wait(2)
            _check(ring.wait_cqe().res, BLOCK)
            _check(ring.wait_cqe().res, BLOCK)


def _check(res: int, expected: int) -> None:
    if res != expected:
        raise SystemExit(f"copy failed: res={res}, expected {expected}")


def best_of(fn: Callable[[int, int, int], None], src: int, dst: int, size: int,
            repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn(src, dst, size)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=32, help="file size in MiB")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    size = args.mib << 20
    with tempfile.NamedTemporaryFile() as tmp:
        tmp.write(os.urandom(size))
        tmp.flush()
        src = os.open(tmp.name, os.O_RDONLY)
        dst = os.open("/dev/zero", os.O_WRONLY)
        try:
            copy_syscalls(src, dst, size)  # warm the page cache
            blocks = size // BLOCK
            variants = [("os.pread + os.write", copy_syscalls),
                        ("ring: read, wait, write, wait", copy_ring_two_trips),
                        ("ring: linked read->write, 1 enter", copy_ring_linked),
                        ("ring: linked, fixed files+buffer", copy_ring_linked_fixed)]
            base = None
            print(f"QD1 copy of {args.mib} MiB (page cache) to /dev/zero, {BLOCK} B blocks, "
                  f"best of {args.repeat}, Python {sys.version.split()[0]}, kernel {os.uname().release}")
            for name, fn in variants:
                seconds = best_of(fn, src, dst, size, args.repeat)
                per_block = seconds / blocks * 1e6
                base = base or seconds
                print(f"  {name:36s} {per_block:7.2f} us/block  {size / seconds / 2**20:8.1f} MiB/s"
                      f"  x{seconds / base:.2f} of os loop")
        finally:
            os.close(src)
            os.close(dst)


if __name__ == "__main__":
    main()
