"""Programs that never finish on their own (tests/security/test_hangs.py).

- `spin`: a live-lock with no I/O: it posts a CQE to CQ 1 and waits for one there, so it is woken
  again at once, for ever (what the 2021 cover letter warned about: "one may live-lock a task").
- `nop_loop`: runs for ever but does I/O: each run reaps the NOP of the previous one from CQ 1,
  submits another NOP to CQ 1 and waits for it. Not a live-lock (a kernel completion arrives
  between runs), just a request that never completes: only a timeout or Ctrl-C ends a wait on it.
"""
from pybpfuring import ArrayMap, Cqe, Ctx, Sqe, WAIT, iouring_program, u64
from pybpfuring.lang import emit_cqe, prep_nop, reap_cqe, submit

runs = ArrayMap(u64, 2)


@iouring_program
def spin(ctx: Ctx) -> int:
    runs[0] += 1
    emit_cqe(ctx, 1, 7, 0, 0)
    ctx.wait_idx = 1
    ctx.wait_nr = 1
    return WAIT


@iouring_program
def nop_loop(ctx: Ctx) -> int:
    runs[1] += 1
    cqe = Cqe()
    reap_cqe(ctx, 1, cqe)
    sqe = Sqe()
    prep_nop(sqe)
    sqe.user_data = 9
    sqe.cq_idx = 1
    submit(ctx, sqe)
    ctx.wait_idx = 1
    ctx.wait_nr = 1
    return WAIT
