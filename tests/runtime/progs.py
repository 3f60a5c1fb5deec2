"""Small @iouring_program functions that exercise one part of the model each (used by the tests)."""
from pybpfuring import ArrayMap, Cqe, Ctx, HashMap, OK, Sqe, WAIT, i64, iouring_program, u64
from pybpfuring.lang import (IOSQE_IO_LINK, copy_from_user, copy_to_user, emit_cqe, get_prandom_u32,
                             ktime_get_ns, prep_nop, printk, reap_cqe, submit)

results = ArrayMap(i64, 64)
phase = HashMap(u64, u64, 16384)

LOG_LEN = 9      # results[9] = entries in the order log results[10..]
WOKEN_REAPED = 20


@iouring_program
def emit_to_cq1(ctx: Ctx) -> int:
    # Emits ctx.user_data CQEs (at most 64) to CQ 1: counts successes and -ENOMEM (CQ full).
    for i in range(64):
        if i < ctx.user_data:
            ret = emit_cqe(ctx, 1, 1000 + i, i, 0)
            if ret == 0:
                results[0] = results[0] + 1
            else:
                results[1] = results[1] + 1
                results[2] = ret
    return OK


@iouring_program
def bad_indexes(ctx: Ctx) -> int:
    cqe = Cqe()
    results[3] = reap_cqe(ctx, 2, cqe)        # CQ 2 exists but is empty
    results[4] = emit_cqe(ctx, 99, 0, 0, 0)   # no CQ 99
    results[5] = reap_cqe(ctx, 99, cqe)
    return OK


@iouring_program
def user_copy(ctx: Ctx) -> int:
    # ctx.user_data points to a u64: add 1 to it; a bad pointer gives -EFAULT from both helpers.
    x: u64 = 0
    results[6] = copy_from_user(x, ctx.user_data)
    results[7] = i64(x)
    x = x + 1
    results[8] = copy_to_user(ctx.user_data, x)
    return OK


@iouring_program
def record(ctx: Ctx) -> int:
    # Appends ctx.user_data to the order log.
    n = results[LOG_LEN]
    results[10 + n] = i64(ctx.user_data)
    results[LOG_LEN] = n + 1
    return OK


@iouring_program
def spin(ctx: Ctx) -> int:
    for i in range(100000):
        results[30] = results[30] + 1
    return OK


@iouring_program
def reads_ctx(ctx: Ctx) -> int:
    n = ctx.wait_nr
    results[31] = n
    return OK


@iouring_program
def nop_then_reap(ctx: Ctx) -> int:
    # First run: submit a NOP whose CQE goes to CQ 1, and wait for a CQE there. Next run: reap one.
    key = ctx.user_data
    if phase.get(key, 0) == 0:
        phase[key] = 1
        sqe = Sqe()
        prep_nop(sqe)
        sqe.user_data = key
        sqe.cq_idx = 1
        submit(ctx, sqe)
        ctx.wait_idx = 1
        ctx.wait_nr = 1
        return WAIT
    cqe = Cqe()
    if reap_cqe(ctx, 1, cqe) != 0:
        ctx.wait_idx = 1  # another request took the CQE: wait again
        ctx.wait_nr = 1
        return WAIT
    results[WOKEN_REAPED] = results[WOKEN_REAPED] + 1
    del phase[key]
    return OK


@iouring_program
def linked_nops(ctx: Ctx) -> int:
    # Submits NOP(7) linked to NOP(8), both to CQ 2, as one chain from BPF.
    sqe = Sqe()
    prep_nop(sqe)
    sqe.user_data = 7
    sqe.cq_idx = 2
    sqe.flags = IOSQE_IO_LINK
    submit(ctx, sqe)
    prep_nop(sqe)
    sqe.user_data = 8
    sqe.cq_idx = 2
    sqe.flags = 0
    submit(ctx, sqe)
    return OK


@iouring_program
def bad_wait(ctx: Ctx) -> int:
    ctx.wait_idx = 5  # no such CQ on the test rings
    ctx.wait_nr = 1
    return WAIT


ALL = [emit_to_cq1, bad_indexes, user_copy, record, spin, reads_ctx, nop_then_reap, linked_nops,
       bad_wait]


@iouring_program
def await_token(ctx: Ctx) -> int:
    # Waits for a CQE on CQ 1 (a token sent by user space), reaps one and completes.
    cqe = Cqe()
    if reap_cqe(ctx, 1, cqe) != 0:
        ctx.wait_idx = 1
        ctx.wait_nr = 1
        return WAIT
    results[WOKEN_REAPED] = results[WOKEN_REAPED] + 1
    return OK


@iouring_program
def spawn(ctx: Ctx) -> int:
    # Submits an IORING_OP_BPF request (2021 opcode 37) for program `ctx.user_data`, user_data 99,
    # completing on CQ 1.
    sqe = Sqe()
    sqe.opcode = 37
    sqe.fd = -1
    sqe.off = ctx.user_data
    sqe.user_data = 99
    sqe.cq_idx = 1
    results[32] = submit(ctx, sqe)
    return OK


@iouring_program
def flood(ctx: Ctx) -> int:
    # 256 NOPs to CQ 1 in one run: on a small ring the SQ fills and the kernel's CQ overflows.
    sqe = Sqe()
    for i in range(256):
        prep_nop(sqe)
        sqe.user_data = i
        sqe.cq_idx = 1
        if submit(ctx, sqe) != 0:
            results[33] = results[33] + 1
    return OK


@iouring_program
def tracer(ctx: Ctx) -> int:
    # printk, ktime and prandom reach the program.
    t0 = ktime_get_ns()
    r = get_prandom_u32()
    results[34] = i64(ktime_get_ns() >= t0)
    printk("request %d: %x-%u\n", ctx.user_data, 255, r & 0)
    return OK
