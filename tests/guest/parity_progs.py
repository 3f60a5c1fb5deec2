"""Programs of the model's parity suite (tests/guest/test_parity_model.py): each one exercises one
behaviour of the 2021 model and records what it saw in `out` (slots listed per program), so the
two backends can be compared on CQEs, maps and memory.

They live in an importable file because backend bpf_ops compiles a program's Python source.
"""
from pybpfuring import ArrayMap, Cqe, Ctx, HashMap, OK, Sqe, WAIT, i32, i64, iouring_program, u32, u64
from pybpfuring.lang import (IORING_OP_WRITE_FIXED, IOSQE_FIXED_FILE, IOSQE_IO_LINK, copy_from_user,
                             copy_to_user, emit_cqe, prep_nop, prep_read, prep_timeout, prep_write,
                             reap_cqe, submit)

out = ArrayMap(i64, 256)        # what the programs saw (slots below)
cfg = ArrayMap(u64, 8)          # set by user space before a start: fds, addresses, counts
seen = HashMap(u64, i64, 64)    # a hash map for the maps-after-close case

BAD_CQ = 9                      # past the last CQ of every ring of the suite
OPCODE_BPF = 37                 # IORING_OP_BPF of the 2021 patches


@iouring_program
def emit_many(ctx: Ctx) -> int:
    # Emits ctx.user_data CQEs (at most 64) to CQ 1: out[0] successes, out[1] failures, out[2] the
    # last error.
    for i in range(64):
        if i < ctx.user_data:
            ret = emit_cqe(ctx, 1, 1000 + i, i, 0)
            if ret == 0:
                out[0] = out[0] + 1
            else:
                out[1] = out[1] + 1
                out[2] = ret
    return OK


@iouring_program
def wait_three(ctx: Ctx) -> int:
    # Waits for 3 CQEs on CQ 1, then reaps them: out[10] runs, out[11..13] their user_data.
    out[10] = out[10] + 1
    if out[10] == 1:
        ctx.wait_idx = 1
        ctx.wait_nr = 3
        return WAIT
    cqe = Cqe()
    for i in range(3):
        ret = reap_cqe(ctx, 1, cqe)
        out[11 + i] = i64(cqe.user_data) if ret == 0 else ret
    return OK


@iouring_program
def wait_token(ctx: Ctx) -> int:
    # Completes once it reaps a CQE from CQ 1: out[14] runs, out[15] the token's user_data.
    out[14] = out[14] + 1
    cqe = Cqe()
    if reap_cqe(ctx, 1, cqe) != 0:
        ctx.wait_idx = 1
        ctx.wait_nr = 1
        return WAIT
    out[15] = i64(cqe.user_data)
    return OK


@iouring_program
def finish(ctx: Ctx) -> int:
    # How a request ends, by ctx.user_data: 0 OK, 1 an unknown return value, 2 WAIT for 0 CQEs,
    # 3 WAIT on a CQ the ring lacks, 4 WAIT for more CQEs than CQ 1 holds. out[16] counts runs.
    out[16] = out[16] + 1
    how = ctx.user_data
    if how == 1:
        return i32(how) + 6         # 7: neither OK nor WAIT (a constant would not compile)
    if how == 2:
        ctx.wait_idx = 1
        ctx.wait_nr = 0
        return WAIT
    if how == 3:
        ctx.wait_idx = BAD_CQ
        ctx.wait_nr = 1
        return WAIT
    if how == 4:
        ctx.wait_idx = 1
        ctx.wait_nr = 100000
        return WAIT
    return OK


@iouring_program
def basics(ctx: Ctx) -> int:
    # submit / emit_cqe / reap_cqe and their errors, then a WAIT for its own NOP on CQ 1.
    cqe = Cqe()
    if out[19] == 0:
        out[19] = 1
        out[20] = reap_cqe(ctx, 2, cqe)                 # empty: -ENOENT
        out[21] = emit_cqe(ctx, 2, 21, -5, 3)
        out[22] = reap_cqe(ctx, 2, cqe)
        out[23] = i64(cqe.user_data)
        out[24] = cqe.res
        out[25] = cqe.flags
        out[26] = emit_cqe(ctx, BAD_CQ, 26, 0, 0)       # -EINVAL
        out[27] = reap_cqe(ctx, BAD_CQ, cqe)            # -EINVAL
        sqe = Sqe()
        prep_nop(sqe)
        sqe.user_data = 28
        sqe.cq_idx = 1
        out[28] = submit(ctx, sqe)
        prep_nop(sqe)
        sqe.user_data = 29
        sqe.cq_idx = BAD_CQ                             # its CQE: -EINVAL on CQ 0
        out[29] = submit(ctx, sqe)
        out[30] = emit_cqe(ctx, 0, 30, 31, 0)
        out[31] = emit_cqe(ctx, 2, 31, 32, 0)           # left for user space to read
        ctx.wait_idx = 1
        ctx.wait_nr = 1
        return WAIT
    out[19] = out[19] + 1
    out[32] = reap_cqe(ctx, 1, cqe)
    out[33] = i64(cqe.user_data)
    out[34] = cqe.res
    return OK


@iouring_program
def fanout(ctx: Ctx) -> int:
    # Submits n = ctx.user_data 8-byte writes (fd cfg[0], buffer cfg[1]) completing on CQ 1, waits
    # for all of them, reaps them: out[40] submits accepted, out[41] reaped, out[42] bytes, out[43]
    # sum of user_data.
    n = ctx.user_data
    cqe = Cqe()
    if out[39] == 0:
        out[39] = 1
        sqe = Sqe()
        for i in range(64):
            if i < n:
                prep_write(sqe, i32(cfg[0]), cfg[1] + i * 8, 8, u64(i * 8))
                sqe.user_data = 500 + i
                sqe.cq_idx = 1
                if submit(ctx, sqe) == 0:
                    out[40] = out[40] + 1
        ctx.wait_idx = 1
        ctx.wait_nr = u32(n)
        return WAIT
    for i in range(64):
        if i < n:
            if reap_cqe(ctx, 1, cqe) == 0:
                out[41] = out[41] + 1
                out[42] = out[42] + cqe.res
                out[43] = out[43] + i64(cqe.user_data)
    return OK


@iouring_program
def timer(ctx: Ctx) -> int:
    # A timeout (Timespec at ctx.user_data, count cfg[2]) on CQ 1, waited for and reaped:
    # out[50] runs, out[51] submit, out[52] the CQE's user_data, out[53] its res.
    out[50] = out[50] + 1
    cqe = Cqe()
    if out[50] == 1:
        sqe = Sqe()
        prep_timeout(sqe, ctx.user_data, u32(cfg[2]), 0)
        sqe.user_data = 77
        sqe.cq_idx = 1
        out[51] = submit(ctx, sqe)
        ctx.wait_idx = 1
        ctx.wait_nr = 1
        return WAIT
    out[52] = reap_cqe(ctx, 1, cqe)
    out[52] = i64(cqe.user_data)
    out[53] = cqe.res
    return OK


@iouring_program
def fixed_io(ctx: Ctx) -> int:
    # Writes through registered file 1 (IOSQE_FIXED_FILE) and registered buffer 0 (WRITE_FIXED,
    # buffer at cfg[1]), CQEs on CQ 2: out[55], out[56] the submits.
    sqe = Sqe()
    prep_write(sqe, 1, cfg[1], 16, 0)
    sqe.flags = IOSQE_FIXED_FILE
    sqe.user_data = 55
    sqe.cq_idx = 2
    out[55] = submit(ctx, sqe)
    prep_write(sqe, i32(cfg[0]), cfg[1] + 16, 16, 16)
    sqe.opcode = IORING_OP_WRITE_FIXED
    sqe.buf_index = 0
    sqe.user_data = 56
    sqe.cq_idx = 2
    out[56] = submit(ctx, sqe)
    return OK


@iouring_program
def await_own(ctx: Ctx) -> int:
    # Instance `ctx.user_data` (1..3) waits for a CQE on its own CQ, reaps it and logs itself:
    # out[59] entries, out[60..] instance numbers in completion order; out[70 + n] runs of n.
    me = ctx.user_data
    out[70 + me] = out[70 + me] + 1
    cqe = Cqe()
    if reap_cqe(ctx, u32(me), cqe) != 0:
        ctx.wait_idx = u32(me)
        ctx.wait_nr = 1
        return WAIT
    n = out[59]
    out[60 + n] = i64(me)
    out[59] = n + 1
    return OK


@iouring_program
def to_every_cq(ctx: Ctx) -> int:
    # Two emitted CQEs and one NOP to each of CQs 3, 2, 1, 0, in that order.
    sqe = Sqe()
    for k in range(4):
        cq = 3 - k
        emit_cqe(ctx, cq, 100 * cq + 1, cq, 0)
        prep_nop(sqe)
        sqe.user_data = 100 * cq + 2
        sqe.cq_idx = cq
        submit(ctx, sqe)
        emit_cqe(ctx, cq, 100 * cq + 3, -cq, 1)
    return OK


@iouring_program
def chains(ctx: Ctx) -> int:
    # Links submitted by a program, CQEs on CQ 2: NOP 1 -> NOP 2; a failing read (fd -1) -> NOP 4
    # (cancelled); NOP 5 alone.
    sqe = Sqe()
    prep_nop(sqe)
    sqe.user_data = 1
    sqe.cq_idx = 2
    sqe.flags = IOSQE_IO_LINK
    submit(ctx, sqe)
    prep_nop(sqe)
    sqe.user_data = 2
    sqe.cq_idx = 2
    submit(ctx, sqe)
    prep_read(sqe, -1, 0, 0, 0)
    sqe.user_data = 3
    sqe.cq_idx = 2
    sqe.flags = IOSQE_IO_LINK
    submit(ctx, sqe)
    prep_nop(sqe)
    sqe.user_data = 4
    sqe.cq_idx = 2
    submit(ctx, sqe)
    prep_nop(sqe)
    sqe.user_data = 5
    sqe.cq_idx = 2
    submit(ctx, sqe)
    return OK


@iouring_program
def spawn(ctx: Ctx) -> int:
    # Starts program `ctx.user_data` with an IORING_OP_BPF SQE (user_data 99, CQ 1): out[80] submit.
    sqe = Sqe()
    sqe.opcode = OPCODE_BPF
    sqe.fd = -1
    sqe.off = ctx.user_data
    sqe.user_data = 99
    sqe.cq_idx = 1
    out[80] = submit(ctx, sqe)
    return OK


@iouring_program
def record(ctx: Ctx) -> int:
    # Appends ctx.user_data to the log out[91..] (out[90] entries) and to `seen`.
    n = out[90]
    out[91 + n] = i64(ctx.user_data)
    out[90] = n + 1
    seen[ctx.user_data] = n
    return OK


@iouring_program
def user_copy(ctx: Ctx) -> int:
    # Reads the u64 at ctx.user_data into out[110], writes it back times 3 plus 1; out[111],
    # out[112] the helpers' results.
    x: u64 = 0
    out[111] = copy_from_user(x, ctx.user_data)
    out[110] = i64(x)
    x = x * 3 + 1
    out[112] = copy_to_user(ctx.user_data, x)
    return OK


@iouring_program
def flood(ctx: Ctx) -> int:
    # ctx.user_data NOPs (at most 256) to CQ 0 in one run: out[120] submits accepted.
    sqe = Sqe()
    for i in range(256):
        if i < ctx.user_data:
            prep_nop(sqe)
            sqe.user_data = 2000 + i
            if submit(ctx, sqe) == 0:
                out[120] = out[120] + 1
    return OK


@iouring_program
def refusal_order(ctx: Ctx) -> int:
    # NOPs 41 and 43 to CQ 0 around 42 for a CQ the ring lacks (its -EINVAL goes to CQ 0 too);
    # the next run reaps CQ 0 in order into out[200..202] (user_data * 1000 + res). out[203]: runs.
    out[203] = out[203] + 1
    cqe = Cqe()
    if out[203] == 1:
        sqe = Sqe()
        prep_nop(sqe)
        sqe.user_data = 41
        submit(ctx, sqe)
        prep_nop(sqe)
        sqe.user_data = 42
        sqe.cq_idx = BAD_CQ
        submit(ctx, sqe)
        prep_nop(sqe)
        sqe.user_data = 43
        sqe.cq_idx = 0
        submit(ctx, sqe)
        ctx.wait_idx = 0
        ctx.wait_nr = 3
        return WAIT
    for i in range(3):
        reap_cqe(ctx, 0, cqe)
        out[200 + i] = i64(cqe.user_data) * 1000 + cqe.res
    return OK
