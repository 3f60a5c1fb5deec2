"""Copy a file from inside the kernel's io_uring loop (Linux >= 7.1, struct_ops io_uring_bpf_ops).

The Python counterpart of liburing's `test/bpf-progs/cp.bpf.c` (our own code): a QD1 read -> write
loop of BLOCK-byte requests, run entirely by `loop_step` within one `io_uring_enter(GETEVENTS)`.
Each step reaps the one CQE in flight (if any) and submits the next request into SQ slot 0 (the
ring has SQ_REWIND and NO_SQARRAY). User space sets the fds, the buffer and its size in globals
before load and reads `cp_result` (0, or a negative errno) and `cur_offset` afterwards.

Run it (Linux >= 7.1, root):  python3 examples/bpf_cp.py SRC DST
"""
from __future__ import annotations

import sys

from pybpfuring.lang import (CQE_SIZE, EFAULT, EINVAL, ERANGE, IOU_LOOP_CONTINUE, IOU_LOOP_STOP,
                             IOU_REGION_CQ, IOU_REGION_SQ, SQE_SIZE, Cqe, Global, IoRingCtx,
                             LoopParams, ReadOnly, Region, Sqe, bpf_function, get_region, i32,
                             loop_step, prep_read, prep_write, submit_sqes, u32, u64)

LICENSE = "GPL"
REQ_READ = 1
REQ_WRITE = 2

cq_head_offset = ReadOnly(u32)
cq_tail_offset = ReadOnly(u32)
cqes_offset = ReadOnly(u32)
cq_entries = ReadOnly(u32)
sq_entries = ReadOnly(u32)

input_fd = Global(i32)
output_fd = Global(i32)
buffer_uptr = Global(u64)       # user memory the kernel reads into and writes from
buffer_size = Global(u32)
nr_inflight = Global(u32)
cur_offset = Global(u64)        # bytes copied so far
cp_result = Global(i32, -16)    # -EBUSY until the copy ends: 0 or a negative errno


@bpf_function
def issue(ctx: IoRingCtx, sq: Region, kind: u32, size: u32) -> i32:
    """Write the next READ or WRITE into SQ slot 0 and submit it; nonzero on failure."""
    global cp_result
    sqe = sq.view(Sqe, 0)
    if kind == REQ_READ:
        prep_read(sqe, input_fd, buffer_uptr, size, cur_offset)
    else:
        prep_write(sqe, output_fd, buffer_uptr, size, cur_offset)
    sqe.user_data = kind
    ret = submit_sqes(ctx, 1)
    if ret != 1:
        cp_result = ret if ret < 0 else -EFAULT
        return 1
    return 0


@loop_step
def cp_step(ctx: IoRingCtx, lp: LoopParams) -> int:
    global nr_inflight, cur_offset, cp_result
    sq = get_region(ctx, IOU_REGION_SQ, sq_entries * SQE_SIZE)
    cq = get_region(ctx, IOU_REGION_CQ, cqes_offset + cq_entries * CQE_SIZE)
    if not sq or not cq:
        return IOU_LOOP_STOP

    if nr_inflight == 0:
        nr_inflight = 1
        if issue(ctx, sq, REQ_READ, buffer_size) != 0:
            return IOU_LOOP_STOP

    head = cq.load_u32(cq_head_offset)
    tail = cq.load_u32(cq_tail_offset)
    if tail != head:
        if tail - head != 1:            # QD1: never more than one completion
            cp_result = -ERANGE
            return IOU_LOOP_STOP
        cqe = cq.view(Cqe, cqes_offset + (head & (cq_entries - 1)) * CQE_SIZE)
        res = cqe.res
        if res < 0:
            cp_result = res
            return IOU_LOOP_STOP
        if cqe.user_data == REQ_READ:
            if res == 0:                # end of file: done
                cp_result = 0
                return IOU_LOOP_STOP
            if issue(ctx, sq, REQ_WRITE, res) != 0:
                return IOU_LOOP_STOP
        elif cqe.user_data == REQ_WRITE:
            cur_offset += res
            if issue(ctx, sq, REQ_READ, buffer_size) != 0:
                return IOU_LOOP_STOP
        else:
            cp_result = -EINVAL
            return IOU_LOOP_STOP
        head += 1
        cq.store_u32(cq_head_offset, head)

    lp.cq_wait_idx = head + 1           # sleep until the next completion
    return IOU_LOOP_CONTINUE


def _truncate_destination(fd_in: int, fd_out: int, src: str, dst: str) -> None:
    """Empty dst, unless it is src itself: truncating that would lose it (cp(1) refuses too)."""
    import os
    import stat
    a, b = os.fstat(fd_in), os.fstat(fd_out)
    if (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino):
        raise OSError(22, f"{src!r} and {dst!r} are the same file")
    if stat.S_ISREG(b.st_mode):
        os.ftruncate(fd_out, 0)


def copy_file(src: str, dst: str, block: int = 4096) -> int:
    """Copy src to dst with cp_step; returns the bytes copied (raises on a failed copy)."""
    import ctypes
    import os

    from pybpfuring.runtime.backends.bpf_ops import LoopRing
    buf = ctypes.create_string_buffer(block)   # user memory: alive until the copy has ended
    fd_in = os.open(src, os.O_RDONLY)
    try:
        fd_out = os.open(dst, os.O_WRONLY | os.O_CREAT, 0o644)  # truncated below, once known not to be src
        try:
            _truncate_destination(fd_in, fd_out, src, dst)
        except OSError:
            os.close(fd_out)
            raise
        try:
            globals_ = {"input_fd": fd_in, "output_fd": fd_out,
                        "buffer_uptr": ctypes.addressof(buf), "buffer_size": block}
            with LoopRing(cp_step, bss=globals_) as loop:
                loop.run()
                result, copied = cp_result.value, cur_offset.value
        finally:
            os.close(fd_out)
    finally:
        os.close(fd_in)
    if result != 0:
        raise OSError(-result, f"the in-kernel copy failed: {os.strerror(-result)}")
    return copied

if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python3 examples/bpf_cp.py SRC DST")
    print(f"copied {copy_file(sys.argv[1], sys.argv[2])} bytes in the kernel loop")
