"""The NOP chain as an @iouring_program: one IORING_OP_BPF request keeps a NOP going on its private
CQ 1 until `state[TARGET]` have completed -- submit a NOP, WAIT for its CQE, reap it, submit the
next -- the shape of liburing's bpf_nops test in the talk's (2021) model, at queue depth 1.
"""
from __future__ import annotations

import time

from pybpfuring import ArrayMap, Cqe, Ctx, OK, Sqe, WAIT, iouring_program, u64
from pybpfuring.lang import prep_nop, reap_cqe, submit

NOP_CQ = 1
TARGET, DONE, STARTED, ERROR = 0, 1, 2, 3
NOP_USER_DATA = 0x40

chain_state = ArrayMap(u64, 4)


@iouring_program
def nop_chain(ctx: Ctx) -> int:
    done = chain_state[DONE]
    if chain_state[STARTED] != 0:
        cqe = Cqe()
        if reap_cqe(ctx, NOP_CQ, cqe) != 0:
            ctx.wait_idx = NOP_CQ  # woken without a CQE: wait again
            ctx.wait_nr = 1
            return WAIT
        if cqe.res < 0:
            chain_state[ERROR] = -cqe.res
            return OK
        done += 1
        chain_state[DONE] = done
        if done >= chain_state[TARGET]:
            return OK
    chain_state[STARTED] = 1
    sqe = Sqe()
    prep_nop(sqe)
    sqe.user_data = NOP_USER_DATA
    sqe.cq_idx = NOP_CQ
    submit(ctx, sqe)
    ctx.wait_idx = NOP_CQ
    ctx.wait_nr = 1
    return WAIT


def run_chain(count: int, backend: str, engine: str = "auto") -> tuple[int, int]:
    """Run the chain of `count` NOPs on a fresh Ring; return (NOPs completed, ns from submitting the
    BPF request to its completion -- the ring's setup and the program's registration not included)."""
    from pybpfuring.runtime import Ring
    with Ring(8, cqs=[8], backend=backend, engine=engine) as ring:
        ring.register_programs([nop_chain])
        chain_state[TARGET], chain_state[DONE], chain_state[STARTED], chain_state[ERROR] = count, 0, 0, 0
        start = time.perf_counter_ns()
        ring.prep_bpf(nop_chain, user_data=0xB0)
        ring.submit()
        done = ring.wait_cqe(0)
        elapsed = time.perf_counter_ns() - start
        if done.res < 0 or chain_state[ERROR]:
            raise OSError(f"the NOP chain failed: res {done.res}, NOP error {chain_state[ERROR]}")
        return int(chain_state[DONE]), elapsed


def run_chain_in_kernel_loop(count: int) -> tuple[int, int]:
    """The same chain with the program in the kernel (Linux >= 7.1): the generated loop_step
    scheduler (bpf_ops_model.ModelRing) runs it within one io_uring_enter."""
    from pybpfuring.runtime.backends.bpf_ops_model import ModelRing
    with ModelRing([nop_chain]) as ring:
        chain_state[TARGET], chain_state[DONE], chain_state[STARTED], chain_state[ERROR] = count, 0, 0, 0
        start = time.perf_counter_ns()
        ring.start(0, user_data=0xB0)
        ring.run(min_complete=1)
        elapsed = time.perf_counter_ns() - start
        done = ring.reap(0)
        if len(done) != 1 or done[0][1] < 0 or chain_state[ERROR]:
            raise OSError(f"the NOP chain failed: {done}, NOP error {chain_state[ERROR]}")
        return int(chain_state[DONE]), elapsed
