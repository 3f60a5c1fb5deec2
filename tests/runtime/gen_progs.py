"""Generator programs and their hand-written twins, with scenarios that run them through `Ring`
and return what a user sees (CQEs per CQ), so every backend and engine can be compared."""
from __future__ import annotations

import ctypes
import errno
from typing import Any

from pybpfuring.lang import (EINVAL, OK, WAIT, Cqe, Ctx, Sqe, complete, copy_from_user, emit_cqe,
                             i32, iouring_program, prep_nop, reap_cqe, request_state, struct, submit,
                             u32, u64, wait, wait_cqe)

N_MAX = 16


@struct
class SumArgs:
    n: u32          # NOPs to submit, one at a time (<= N_MAX)
    cq: u32         # where their CQEs go
    base: u64       # user_data of the first NOP


@iouring_program
def sum_gen(ctx: Ctx, args: SumArgs) -> i32:
    """One NOP at a time, waiting for each; completes with the sum of the reaped user_data."""
    total = 0
    for i in range(N_MAX):
        if i >= args.n:
            break
        sqe = Sqe()
        prep_nop(sqe)
        sqe.user_data = args.base + i
        sqe.cq_idx = args.cq
        submit(ctx, sqe)
        cqe = yield wait_cqe(ctx, args.cq)
        total += cqe.user_data
    return i32(total)


@struct
class SumState:
    i: u32
    cq: u32
    n: u32
    pad: u32
    base: u64
    total: u64


@iouring_program
def sum_classic(ctx: Ctx) -> int:
    """sum_gen written by hand: the state machine in request_state, the result by complete()."""
    st = request_state(ctx, SumState)
    if ctx.runs == 0:
        args = SumArgs()
        if copy_from_user(args, ctx.user_data) != 0:
            return complete(ctx, -14)
        st.n = args.n
        st.cq = args.cq
        st.base = args.base
    else:
        cqe = Cqe()
        if reap_cqe(ctx, st.cq, cqe) != 0:
            ctx.wait_idx = st.cq
            ctx.wait_nr = 1
            return WAIT
        st.total += cqe.user_data
        st.i += 1
    if st.i >= st.n or st.i >= N_MAX:
        return complete(ctx, i32(st.total))
    sqe = Sqe()
    prep_nop(sqe)
    sqe.user_data = st.base + st.i
    sqe.cq_idx = st.cq
    submit(ctx, sqe)
    ctx.wait_idx = st.cq
    ctx.wait_nr = 1
    return WAIT


@iouring_program
def batch_gen(ctx: Ctx) -> i32:
    """Emit 3 CQEs to CQ 1, wait until CQ 1 holds 3, reap them; the result counts reaped ones."""
    for i in range(3):
        emit_cqe(ctx, 1, ctx.user_data + i, i, 0)
    yield wait(ctx, 1, 3)
    got = 0
    for i in range(3):
        c = Cqe()
        if reap_cqe(ctx, 1, c) == 0:
            got += 1
    return got


@iouring_program
def overwait_gen(ctx: Ctx) -> i32:
    """Waits for more CQEs than CQ 1 can hold: the request completes with -EINVAL."""
    yield wait(ctx, 1, 1000)
    return 7


@iouring_program
def early_gen(ctx: Ctx) -> i32:
    """Returns before any yield on odd user_data (a result without waiting), else after one."""
    if ctx.user_data & 1:
        return -i32(ctx.user_data)
    emit_cqe(ctx, 1, ctx.user_data, 0, 0)
    cqe = yield wait_cqe(ctx, 1)
    return i32(cqe.user_data) + 1


GEN_PROGRAMS = [sum_gen, sum_classic, batch_gen, overwait_gen, early_gen]


def normal(cqes: list[Any]) -> list[tuple[int, int]]:
    return sorted((c.user_data, c.res) for c in cqes)


def drain(ring: Any, cq: int) -> list[tuple[int, int]]:
    return normal(ring.cqes(cq)) if hasattr(ring, "cqes") else []


def scenario_sums(ring: Any) -> dict[str, Any]:
    """8 requests of each style at once, each on its own CQ (1..16): same sums, as results."""
    keep = []
    for k in range(8):
        for style in (0, 1):
            a = ring.user_memory(SumArgs.ctype)
            a.n, a.cq, a.base = k + style, 1 + 2 * k + style, 1000 * (k + 1)
            keep.append(a)
            ring.prep_bpf(sum_classic if style else sum_gen, user_data=ctypes.addressof(a))
    ring.submit_and_wait(16)
    results = {}
    for _ in range(16):
        c = ring.wait_cqe()
        results[c.user_data] = c.res
    out = [results[ctypes.addressof(a)] for a in keep]
    expect = [sum(1000 * (k + 1) + i for i in range(min(k + style, N_MAX)))
              for k in range(8) for style in (0, 1)]
    return {"results": out, "expect": expect, "leftover": [ring.cq_ready(q) for q in range(17)]}


def scenario_bad_args(ring: Any) -> dict[str, Any]:
    """args at an address nobody mapped: both styles complete with -EFAULT, nothing else runs."""
    ring.prep_bpf(sum_gen, user_data=8)
    ring.prep_bpf(sum_classic, user_data=16)
    ring.submit_and_wait(2)
    return {"cqes": normal([ring.wait_cqe(), ring.wait_cqe()])}


def scenario_waits(ring: Any) -> dict[str, Any]:
    """wait(ctx, cq, nr), a wait that can never end, and results before/after a yield."""
    ring.prep_bpf(batch_gen, user_data=50)
    ring.prep_bpf(overwait_gen, user_data=60)
    for u in (71, 72, 73, 74):
        ring.prep_bpf(early_gen, user_data=u)
    ring.submit_and_wait(6)
    return {"cqes": normal([ring.wait_cqe() for _ in range(6)]), "cq1_left": ring.cq_ready(1)}


SCENARIOS = {"sums": (scenario_sums, [4] * 16), "bad_args": (scenario_bad_args, [4]),
             "waits": (scenario_waits, [8])}


@iouring_program
def over_cq(ctx: Ctx) -> i32:
    """Waits for 8 CQEs on CQ 1, which holds 4: -EINVAL, explained with this file's line."""
    yield wait(ctx, 1, 8)
    return 0


@iouring_program
def bad_return(ctx: Ctx) -> int:
    """Returns neither OK nor WAIT (a value the compiler cannot know)."""
    return i32(ctx.user_data)


def scenario_explain(ring: Any) -> dict[str, Any]:
    """Error completions the runtime makes, and what ring.explain() says about each."""
    from pybpfuring.runtime import prep_nop
    ring.prep_bpf(over_cq, user_data=1)
    ring.prep_bpf(bad_return, user_data=7)
    ring.prep_bpf(40, user_data=3)                     # no such program
    sqe = ring.get_sqe(cq_idx=9)                       # no such CQ
    prep_nop(sqe)
    sqe.user_data = 4
    ring.submit_and_wait(4)
    cqes = sorted((c.user_data, c.res) for c in (ring.wait_cqe() for _ in range(4)))
    text = {ud: ring.explain((ud, res)) for ud, res in cqes}
    return {"cqes": cqes, "text": text}


SCENARIOS["explain"] = (scenario_explain, [4])
EXPLAIN_PROGRAMS = [over_cq, bad_return]


def check_explanations(r: dict) -> None:
    """What ring.explain() must say for scenario_explain's CQEs (on every backend)."""
    assert r["cqes"] == [(1, -errno.EINVAL), (3, -errno.EFAULT), (4, -errno.EINVAL), (7, -errno.EINVAL)]
    t = r["text"]
    assert "WAIT for 8 CQEs on CQ 1" in t[1] and "over_cq at " in t[1] and "gen_progs.py:" in t[1]
    assert "at most 4 CQEs" in t[1]
    assert "names program 40" in t[3] and "cq_idx is 9" in t[4]
    assert "bad_return" in t[7] and "returned 7" in t[7] and "complete(ctx, res)" in t[7]
