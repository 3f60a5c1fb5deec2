"""NOPs driven from inside the kernel's io_uring loop (Linux >= 7.1, struct_ops io_uring_bpf_ops).

The Python counterpart of liburing's `test/bpf-progs/nops.bpf.c` (our own code): keep up to
`depth` NOPs in flight (MAX_INFLIGHT = 8, liburing's, unless the loader sets it lower) until `reqs_to_run` have completed, all within one
`io_uring_enter(GETEVENTS)`. The ring is made with SQ_REWIND and NO_SQARRAY, so the SQEs to
submit are always the first slots of the SQ region.

Run it (Linux >= 7.1, root):  python3 examples/bpf_nops.py [count]
"""
from __future__ import annotations

import sys

from pybpfuring.lang import (CQE_SIZE, IOU_LOOP_CONTINUE, IOU_LOOP_STOP, IOU_REGION_CQ, IOU_REGION_SQ,
                             SQE_SIZE, Cqe, Global, IoRingCtx, LoopParams, ReadOnly, Sqe, get_region,
                             i32, loop_step, prep_nop, submit_sqes, u32)

LICENSE = "GPL"
MAX_INFLIGHT = 8
REQ_TOKEN = 0xABBA1741

# Set by the loader from io_uring_params before load (constants to the verifier).
cq_head_offset = ReadOnly(u32)
cq_tail_offset = ReadOnly(u32)
cqes_offset = ReadOnly(u32)
cq_entries = ReadOnly(u32)
sq_entries = ReadOnly(u32)
depth = ReadOnly(u32, MAX_INFLIGHT)   # NOPs kept in flight, 1..MAX_INFLIGHT (1: strictly one at a time)

reqs_to_run = Global(i32)      # set by user space; 0 when every NOP has completed
reqs_inflight = Global(u32)


@loop_step
def nops_step(ctx: IoRingCtx, lp: LoopParams) -> int:
    global reqs_to_run, reqs_inflight
    sq = get_region(ctx, IOU_REGION_SQ, sq_entries * SQE_SIZE)
    cq = get_region(ctx, IOU_REGION_CQ, cqes_offset + cq_entries * CQE_SIZE)
    if not sq or not cq:
        return IOU_LOOP_STOP

    to_submit: u32 = 0
    if reqs_inflight < depth:
        to_submit = min(depth - reqs_inflight, u32(reqs_to_run) - reqs_inflight)
    if to_submit > 0:
        for i in range(MAX_INFLIGHT):
            if i < to_submit:
                sqe = sq.view(Sqe, i * SQE_SIZE)
                prep_nop(sqe)
                sqe.user_data = REQ_TOKEN
        if submit_sqes(ctx, to_submit) != to_submit:
            return IOU_LOOP_STOP
        reqs_inflight += to_submit

    head = cq.load_u32(cq_head_offset)
    nr_cqes = min(cq.load_u32(cq_tail_offset) - head, MAX_INFLIGHT)
    for i in range(MAX_INFLIGHT):
        if i < nr_cqes:
            cqe = cq.view(Cqe, cqes_offset + ((head + i) & (cq_entries - 1)) * CQE_SIZE)
            if cqe.user_data != REQ_TOKEN:
                return IOU_LOOP_STOP
    cq.store_u32(cq_head_offset, head + nr_cqes)
    reqs_inflight -= nr_cqes
    reqs_to_run -= nr_cqes

    if reqs_to_run <= 0 and reqs_inflight == 0:
        return IOU_LOOP_STOP
    to_wait = reqs_inflight
    if cq.load_u32(cq_tail_offset) != head + nr_cqes:
        to_wait = 0                 # CQEs are waiting already: do not sleep
    lp.cq_wait_idx = head + nr_cqes + to_wait
    return IOU_LOOP_CONTINUE


def main(argv: list[str]) -> int:
    from pybpfuring.runtime.backends.bpf_ops import LoopRing
    count = int(argv[1]) if len(argv) > 1 else 1000
    with LoopRing(nops_step, bss={"reqs_to_run": count}) as loop:
        loop.run()
        left = reqs_to_run.value
    print(f"{count - left} of {count} NOPs completed in the kernel loop; counter now {left}")
    return 0 if left == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
