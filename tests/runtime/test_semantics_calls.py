"""Two calls docs/semantics.md defines exactly: `submit_and_wait(0)` (submit, run what is ready,
never block) and `cq_ready` (a count; it does not run the event loop)."""
from __future__ import annotations

from pybpfuring import Ctx, OK, iouring_program
from pybpfuring.lang import emit_cqe
from pybpfuring.runtime import Ring, prep_nop


@iouring_program
def emit_two(ctx: Ctx) -> int:
    emit_cqe(ctx, 1, 11, 0, 0)
    emit_cqe(ctx, 1, 12, 0, 0)
    return OK


def test_submit_and_wait_zero_submits_runs_and_returns_at_once() -> None:
    with Ring(8, cqs=[4], backend="emulated") as ring:
        ring.register_programs([emit_two])
        sqe = ring.get_sqe(0)
        prep_nop(sqe)
        sqe.user_data = 7
        ring.prep_bpf(emit_two, user_data=8)
        assert ring.submit_and_wait(0) == 2          # both submitted; nothing waited for
        assert ring.cq_ready(1) == 2                 # the program ran: its CQEs are there
        assert sorted(c.user_data for c in ring.cqes(0)) == [7, 8]


def test_cq_ready_counts_without_running_anything() -> None:
    with Ring(8, cqs=[4], backend="emulated") as ring:
        ring.register_programs([emit_two])
        ring.prep_bpf(emit_two, user_data=8)         # prepared, not submitted
        assert ring.cq_ready(0) == 0 and ring.cq_ready(1) == 0
        ring.submit()
        assert ring.cq_ready(1) == 2
        assert [c.user_data for c in ring.cqes(1)] == [11, 12]
        assert ring.cq_ready(1) == 0


def test_a_program_listed_twice_is_refused_and_the_ring_stays_usable() -> None:
    from pybpfuring.runtime import RegistrationError
    with Ring(8, cqs=[4], backend="emulated") as ring:
        try:
            ring.register_programs([emit_two, emit_two])
        except RegistrationError as err:
            assert "listed twice" in str(err)
        else:
            raise AssertionError("a table naming one program twice was accepted")
        assert ring.register_programs([emit_two]) == ["emit_two"]   # nothing was registered
        try:
            ring.register_programs([emit_two])
        except RegistrationError as err:
            assert "already has a program table" in str(err)
        else:
            raise AssertionError("a second program table was accepted")
