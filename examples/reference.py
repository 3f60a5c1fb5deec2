"""The four programs of the 2021 io_uring BPF example (liburing branch bpf_v3,
`examples/bpf/uring.bpf.c`), ported to pybpfuring. They share the array map `arr`.

- test:       maps, emitting and reaping CQEs, submitting a NOP, user memory, waiting on the main CQ
- counting:   ticks 11 times on 200 ms timeouts that complete on CQ 1
- pingpong:   two requests bounce a counter to 20 through CQs 1 and 2
- write_file: writes 256 KiB to fixed file 0 with 4 writes of 16 KiB in flight

Run them with `python examples/run_reference.py` (or `pybpfuring run examples/run_reference.py`).
"""
from pybpfuring import Ctx, Cqe, Sqe, ArrayMap, Timespec, i32, u64, struct, iouring_program, OK, WAIT
from pybpfuring.lang import (IOSQE_FIXED_FILE, copy_from_user, copy_to_user, emit_cqe, prep_nop,
                             prep_timeout, prep_write, reap_cqe, submit)

arr = ArrayMap(u64, 256)

MAIN_CQ = 0
ARR_SLOT = 0
REENTER_SLOT = 10

FILL_QD = 4
FILL_BLOCKS = 16
FILL_BLOCK_SIZE = 4096 * 4
OFF_IDX = 1
INFL_IDX = 0


@struct
class CountingCtx:
    """What `counting`'s request points to in user memory."""
    ts: Timespec


@struct
class PingCtx:
    """What each `pingpong` request points to in user memory."""
    idx: i32


@iouring_program
def test(ctx: Ctx) -> int:
    # Runs twice: the wait at the end is satisfied by the CQE it posts to the main CQ.
    if arr[REENTER_SLOT]:
        return OK
    arr[REENTER_SLOT] = 1
    arr[ARR_SLOT] = 11

    emit_cqe(ctx, MAIN_CQ, 3, 13, 0)
    cq_idx = 1
    emit_cqe(ctx, cq_idx, 4, 17, 0)
    emit_cqe(ctx, cq_idx, 5, 19, 0)

    cqe = Cqe()
    ret = reap_cqe(ctx, cq_idx, cqe)
    arr[ARR_SLOT + 1] = ret if ret else cqe.user_data
    ret = reap_cqe(ctx, cq_idx, cqe)
    arr[ARR_SLOT + 2] = ret if ret else cqe.user_data

    sqe = Sqe()
    prep_nop(sqe)
    sqe.user_data = 2
    ret = submit(ctx, sqe)
    arr[ARR_SLOT + 3] = ret if ret < 0 else 21

    arr[ARR_SLOT + 4] = ctx.user_data

    # ctx.user_data points to a u64 secret in user memory: read it, then overwrite it.
    secret: u64 = 0
    copy_from_user(secret, ctx.user_data)
    arr[ARR_SLOT + 5] = secret
    secret = 31
    copy_to_user(ctx.user_data, secret)

    ctx.wait_idx = MAIN_CQ
    ctx.wait_nr = 1
    return WAIT


@iouring_program
def counting(ctx: Ctx) -> int:
    v = arr[0]
    if v > 10:
        return OK
    arr[0] = v + 1
    cq_idx = 1

    if v != 0:
        cqe = Cqe()
        ret = reap_cqe(ctx, cq_idx, cqe)
        arr[1] = ret if ret else cqe.user_data

    sqe = Sqe()
    prep_timeout(sqe, ctx.user_data, 0, 0)  # CountingCtx.ts is at offset 0 of the user struct
    sqe.user_data = 5
    sqe.cq_idx = cq_idx
    submit(ctx, sqe)

    ctx.wait_idx = cq_idx
    ctx.wait_nr = 1
    return WAIT


@iouring_program
def pingpong(ctx: Ctx) -> int:
    idx: i32 = 0
    copy_from_user(idx, ctx.user_data)  # PingCtx.idx
    if arr[idx]:
        cqe = Cqe()
        reap_cqe(ctx, idx + 1, cqe)
        it = i32(cqe.user_data)
        emit_cqe(ctx, (idx ^ 1) + 1, it + 1, 0, 0)
        if it >= 20:
            arr[5 + idx] = it
            return OK
    else:
        arr[idx] = 1  # the first run only arms
    ctx.wait_idx = idx + 1
    ctx.wait_nr = 1
    return WAIT


@iouring_program
def write_file(ctx: Ctx) -> int:
    buf = ctx.user_data
    inflight = arr[INFL_IDX]
    cur_off = arr[OFF_IDX]

    cqe = Cqe()
    for i in range(FILL_QD):
        if inflight:
            reap_cqe(ctx, 1, cqe)
            inflight -= 1

    sqe = Sqe()
    for i in range(FILL_QD):
        if inflight >= FILL_QD or cur_off >= FILL_BLOCKS:
            break
        prep_write(sqe, 0, buf, FILL_BLOCK_SIZE, cur_off * FILL_BLOCK_SIZE)
        sqe.flags = IOSQE_FIXED_FILE
        sqe.cq_idx = 1
        submit(ctx, sqe)
        inflight += 1
        cur_off += 1

    arr[OFF_IDX] = cur_off
    arr[INFL_IDX] = inflight
    if not inflight:
        return OK
    ctx.wait_idx = 1
    ctx.wait_nr = inflight
    return WAIT
