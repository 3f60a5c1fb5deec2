"""The larger programs `bench/compile.py` measures besides the four 2021 reference programs.
Each has a C twin in `bench/c/`, written the way a C programmer would write it.

- loops:   drains up to 16 CQEs from each of 4 CQs into a latency histogram, then refills (nested loops,
           break/continue, a while loop, an on-stack array)
- flows:   per-(fd, opcode) statistics in a hash map with struct keys and values (lookup, insert,
           update in place, delete)
- cp_qd1:  copies a file one block at a time (QD1): read, then write what was read, driven by CQEs
"""
from __future__ import annotations

from pybpfuring.lang import (OK, WAIT, Array, ArrayMap, Cqe, Ctx, HashMap, Sqe, copy_from_user, emit_cqe,
                             i32, iouring_program, prep_nop, prep_read, prep_write, reap_cqe, struct, submit,
                             u8, u32, u64)

NR_CQS = 4
BATCH = 16
BUCKETS = 16

hist = ArrayMap(u64, BUCKETS)
budget = ArrayMap(u32, NR_CQS)


@iouring_program
def loops(ctx: Ctx) -> int:
    cqe = Cqe()
    reaped = Array[u32, NR_CQS]()
    for q in range(NR_CQS):
        for n in range(BATCH):
            if reap_cqe(ctx, q + 1, cqe) != 0:
                break
            if cqe.res < 0:
                continue
            # log2 bucket of the result, by a bounded while loop
            v = u32(cqe.res)
            b: u32 = 0
            while b < BUCKETS - 1:
                if v <= 1:
                    break
                v >>= 1
                b += 1
            hist[b] += 1
            reaped[q] += 1
    total: u32 = 0
    sqe = Sqe()
    for q in range(NR_CQS):
        total += reaped[q]
        want = min(reaped[q], budget[q])
        for n in range(BATCH):
            if n >= want:
                break
            prep_nop(sqe)
            sqe.user_data = q
            sqe.cq_idx = q + 1
            submit(ctx, sqe)
    if total == 0:
        return OK
    ctx.wait_idx = 1
    ctx.wait_nr = 1
    return WAIT


@struct
class FlowKey:
    fd: i32
    opcode: u8


@struct
class FlowStats:
    ops: u64
    bytes: u64
    errors: u32
    last_res: i32


flows = HashMap(FlowKey, FlowStats, 1024)
totals = ArrayMap(u64, 4)


@iouring_program
def flows_prog(ctx: Ctx) -> int:
    cqe = Cqe()
    key = FlowKey()
    for n in range(8):
        if reap_cqe(ctx, 1, cqe) != 0:
            break
        key.fd = i32(cqe.user_data >> 32)
        key.opcode = u8(cqe.user_data)
        if key in flows:
            st = flows[key]
            st.ops += 1
            if cqe.res < 0:
                st.errors += 1
            else:
                st.bytes += u64(cqe.res)
            st.last_res = cqe.res
            if st.errors > 100:
                del flows[key]
                totals[2] += 1
        else:
            fresh = FlowStats()
            fresh.ops = 1
            fresh.last_res = cqe.res
            if cqe.res < 0:
                fresh.errors = 1
            else:
                fresh.bytes = u64(cqe.res)
            flows[key] = fresh
            totals[1] += 1
        totals[0] += 1
    return OK


@struct
class CpArgs:
    in_fd: i32
    out_fd: i32
    buf: u64
    size: u64
    block: u32


@struct
class CpState:
    off: u64  # file offset of the block being copied
    phase: u32  # what is in flight: IDLE, READING or WRITING


cp_state = ArrayMap(CpState, 1)
IDLE = 0
READING = 1
WRITING = 2
CP_CQ = 1


@iouring_program
def cp_qd1(ctx: Ctx) -> int:
    args = CpArgs()
    copy_from_user(args, ctx.user_data)
    st = cp_state[0]  # a reference into the map value: updates land in the map
    res: i32 = 0
    if st.phase != IDLE:
        cqe = Cqe()
        if reap_cqe(ctx, CP_CQ, cqe) != 0:
            ctx.wait_idx = CP_CQ
            ctx.wait_nr = 1
            return WAIT
        res = cqe.res
        if res <= 0:  # an error, or end of file
            emit_cqe(ctx, 0, ctx.user_data, res, 0)
            return OK
    sqe = Sqe()
    if st.phase == READING:
        prep_write(sqe, args.out_fd, args.buf, u32(res), st.off)
        st.phase = WRITING
    else:
        if st.phase == WRITING:
            st.off += u64(res)
        if st.off >= args.size:
            emit_cqe(ctx, 0, ctx.user_data, 0, 0)
            return OK
        prep_read(sqe, args.in_fd, args.buf, u32(min(u64(args.block), args.size - st.off)), st.off)
        st.phase = READING
    sqe.cq_idx = CP_CQ
    submit(ctx, sqe)
    ctx.wait_idx = CP_CQ
    ctx.wait_nr = 1
    return WAIT
