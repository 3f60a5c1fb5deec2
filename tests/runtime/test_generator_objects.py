"""A generator's objects: each `T()` made after a top-level yield reuses the stack slot of one made
before it (no reference crosses a yield), so a program with a Sqe per phase needs one Sqe of stack,
as its hand-written twin does; each new object is still zeroed. With a yield inside an `if` or a
loop, a run can span code on both sides of it, and every object keeps its own slot."""
from __future__ import annotations

from pybpfuring.compiler import driver
from pybpfuring.lang import OK, Cqe, Ctx, Sqe, emit_cqe, i32, iouring_program, prep_nop, submit, wait
from pybpfuring.runtime import Ring


@iouring_program
def phases(ctx: Ctx) -> i32:
    sqe = Sqe()
    prep_nop(sqe)
    sqe.user_data = 7
    sqe.cq_idx = 1
    submit(ctx, sqe)
    yield wait(ctx, 1, 1)
    sqe = Sqe()              # a new, zeroed object in the first one's slot
    emit_cqe(ctx, 2, sqe.user_data + 100, 0, 0)
    prep_nop(sqe)
    sqe.user_data = 8
    sqe.cq_idx = 1
    submit(ctx, sqe)
    yield wait(ctx, 1, 2)
    cqe = Cqe()
    sqe = Sqe()
    emit_cqe(ctx, 2, sqe.user_data + cqe.user_data + 200, 0, 0)
    return OK


@iouring_program
def branchy(ctx: Ctx) -> i32:
    sqe = Sqe()
    if ctx.user_data == 1:
        yield wait(ctx, 1, 1)
        other = Sqe()
        emit_cqe(ctx, 2, other.user_data, 0, 0)
    return OK


def _object_bytes(program: object) -> int:
    typed = driver.type_functions([program], "bpf_ops")
    return sum(t.size for t in typed.programs[0].slots)


def test_objects_after_top_level_yields_share_slots() -> None:
    assert _object_bytes(phases) == 64 + 16          # one Sqe, one Cqe: not three Sqes
    assert _object_bytes(branchy) == 2 * 64          # a yield inside an if: no sharing


def test_a_shared_slot_still_gives_a_zeroed_object() -> None:
    for engine in ("interp", "jit", "native"):
        with Ring(16, cqs=[8, 8], backend="emulated", engine=engine) as ring:
            ring.register_programs([phases])
            ring.prep_bpf(phases, user_data=1)
            ring.submit_and_wait(1)
            assert ring.wait_cqe().res == 0
            got = [ring.wait_cqe(2).user_data for _ in range(2)]
            assert got == [100, 200], (engine, got)
