"""The logic of the four 2021 reference programs (examples/reference.py) for target `generic`,
so it loads on any kernel: `pybpfuring check examples/reference_generic.py` puts it through this
machine's verifier. Generic BPF has no io_uring helpers, so each helper call is replaced by what it
leaves behind in a map user space can read: the SQE `submit` would queue goes to `submitted`, the CQE
`emit_cqe` would post goes to `emitted` (its CQ index in `.flags`), and `reap_cqe` takes the next CQE
from `reapable`, which the caller fills. Everything else (maps, ctx, prep_*, copy_from_user) runs as
written. The caller re-runs a program after WAIT, from the maps it left, as the runtime would.

Used by tests/kernel/test_reference_logic.py (compared with the reference evaluator) and by
bench/verifier.py (verifier cost against the C twins in bench/verifier_c/programs.c).
"""
from pybpfuring import Ctx, Cqe, Sqe, ArrayMap, i32, u32, u64, iouring_program, OK, WAIT
from pybpfuring.lang import IOSQE_FIXED_FILE, copy_from_user, prep_nop, prep_timeout, prep_write

arr = ArrayMap(u64, 256)
submitted = ArrayMap(Sqe, 8)   # what submit(ctx, sqe) would have queued, in order
emitted = ArrayMap(Cqe, 8)     # what emit_cqe would have posted (cq index in .flags)
reapable = ArrayMap(Cqe, 8)    # what reap_cqe(ctx, i, cqe) finds, filled by the test
counts = ArrayMap(u32, 4)      # 0: submitted, 1: emitted, 2: reaped

MAIN_CQ = 0
ARR_SLOT = 0
REENTER_SLOT = 10
FILL_QD = 4
FILL_BLOCKS = 16
FILL_BLOCK_SIZE = 4096 * 4
OFF_IDX = 1
INFL_IDX = 0


@iouring_program
def test(ctx: Ctx) -> int:
    if arr[REENTER_SLOT]:
        return OK
    arr[REENTER_SLOT] = 1
    arr[ARR_SLOT] = 11
    cqe = Cqe()
    n = counts[2]
    cqe = reapable[n]            # reap_cqe: the next CQE of the CQ
    counts[2] = n + 1
    arr[ARR_SLOT + 1] = cqe.user_data
    sqe = Sqe()
    prep_nop(sqe)
    sqe.user_data = 2
    submitted[counts[0]] = sqe   # submit
    counts[0] += 1
    arr[ARR_SLOT + 3] = 21
    arr[ARR_SLOT + 4] = ctx.user_data
    secret: u64 = 0
    r = copy_from_user(secret, ctx.user_data)
    arr[ARR_SLOT + 5] = secret
    arr[ARR_SLOT + 6] = u64(r)
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
        n = counts[2]
        arr[1] = reapable[n].user_data
        counts[2] = n + 1
    sqe = Sqe()
    prep_timeout(sqe, ctx.user_data, 0, 0)
    sqe.user_data = 5
    sqe.cq_idx = cq_idx
    submitted[counts[0] & 7] = sqe
    counts[0] += 1
    ctx.wait_idx = cq_idx
    ctx.wait_nr = 1
    return WAIT


@iouring_program
def pingpong(ctx: Ctx) -> int:
    idx: i32 = 0
    copy_from_user(idx, ctx.user_data)
    if arr[idx]:
        n = counts[2]
        it = i32(reapable[n & 7].user_data)
        counts[2] = n + 1
        e = counts[1]
        emitted[e & 7].user_data = it + 1     # emit_cqe(ctx, (idx ^ 1) + 1, it + 1, 0, 0)
        emitted[e & 7].flags = (idx ^ 1) + 1
        counts[1] = e + 1
        if it >= 20:
            arr[5 + idx] = it
            return OK
    else:
        arr[idx] = 1
    ctx.wait_idx = idx + 1
    ctx.wait_nr = 1
    return WAIT


@iouring_program
def write_file(ctx: Ctx) -> int:
    buf = ctx.user_data
    inflight = arr[INFL_IDX]
    cur_off = arr[OFF_IDX]
    for i in range(FILL_QD):
        if inflight:
            counts[2] += 1               # reap_cqe
            inflight -= 1
    sqe = Sqe()
    for i in range(FILL_QD):
        if inflight >= FILL_QD or cur_off >= FILL_BLOCKS:
            break
        prep_write(sqe, 0, buf, FILL_BLOCK_SIZE, cur_off * FILL_BLOCK_SIZE)
        sqe.flags = IOSQE_FIXED_FILE
        sqe.cq_idx = 1
        submitted[counts[0] & 7] = sqe
        counts[0] += 1
        inflight += 1
        cur_off += 1
    arr[OFF_IDX] = cur_off
    arr[INFL_IDX] = inflight
    if not inflight:
        return OK
    ctx.wait_idx = 1
    ctx.wait_nr = inflight
    return WAIT
