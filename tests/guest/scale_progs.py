"""Programs of tests/guest/test_model_scale.py (importable module: registered by their source)."""
from pybpfuring.lang import *

state = ArrayMap(u64, 4)

@iouring_program
def waiter(ctx: Ctx) -> int:
    cqe = Cqe()
    if reap_cqe(ctx, 1, cqe) == 0:      # the first run finds nothing: wait for 3 CQEs on CQ 1
        state[0] += 1
        for i in range(2):
            if reap_cqe(ctx, 1, cqe) == 0:
                state[0] += 1
        return OK
    ctx.wait_idx = 1
    ctx.wait_nr = 3
    return WAIT

@iouring_program
def quick(ctx: Ctx) -> int:
    state[1] += 1
    return OK

@iouring_program
def own_cq(ctx: Ctx) -> int:
    # request k waits for one CQE on CQ k (user_data = k), then completes
    k = u32(ctx.user_data)
    cqe = Cqe()
    if reap_cqe(ctx, k, cqe) == 0:
        state[2] += 1
        return OK
    ctx.wait_idx = k
    ctx.wait_nr = 1
    return WAIT
