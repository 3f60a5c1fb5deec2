"""Out-of-range arguments are refused with ArgumentError (a PyBpfUringError and a ValueError) that
names the argument, never wrapped silently into a C integer (before: `Ring(budget=2**64)` became a
budget of 0 in the JIT and the native loop, `prep_read(sqe, 2**40, ...)` an fd of 0)."""
from __future__ import annotations

import errno
import math

import pytest

import hang_progs
from pybpfuring.errors import ArgumentError, PyBpfUringError
from pybpfuring.runtime import (Ring, Sqe, prep_cancel, prep_fsync, prep_openat, prep_poll_add,
                                prep_read, prep_readv, prep_recv, prep_timeout, prep_write)
from pybpfuring.runtime.engine.interp import MAX_BUDGET
from pybpfuring.runtime.backends.native import unavailable_reason
from pybpfuring.uring import IoUring
from pybpfuring.uring.prep import prep_read_fixed

ENGINES = ["interp", "jit", pytest.param("native", marks=pytest.mark.skipif(
    unavailable_reason() is not None, reason=f"native loop unavailable: {unavailable_reason()}"))]
BAD_INTS = [-1, 2**64, 2**64 + 5, True]


def refused(fn, what: str) -> None:
    with pytest.raises(ArgumentError, match=what) as info:
        fn()
    assert isinstance(info.value, PyBpfUringError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("kwargs, what", [
    ({"budget": 2**64}, "budget"), ({"budget": 2**63}, "budget"), ({"budget": 0}, "budget"),
    ({"budget": MAX_BUDGET + 1}, "budget"), ({"budget": True}, "budget"),
    ({"run_budget": 2**32}, "run_budget"), ({"run_budget": 0}, "run_budget"),
    ({"entries": 0}, "entries"), ({"entries": 2**32 + 8}, "entries"),
    ({"cqs": [2**32 + 1]}, "extra CQ 1"), ({"cqs": [0]}, "extra CQ 1"),
    ({"cqs": [8] * 1025}, "extra CQs"),
])
def test_ring_construction_refuses(engine, kwargs, what):
    refused(lambda: Ring(**{"entries": 8, **kwargs}, engine=engine), what)


@pytest.mark.parametrize("engine", ENGINES)
def test_ring_calls_refuse_out_of_range_values(engine):
    with Ring(8, cqs=[8], engine=engine) as ring:
        ring.register_programs([hang_progs.spin, hang_progs.nop_loop])
        for bad in BAD_INTS:
            refused(lambda: ring.prep_bpf(hang_progs.spin, user_data=bad), "user_data")
            refused(lambda: ring.submit_and_wait(bad if bad != 2**64 else 2**32), "wait_nr")
        for bad in (-1, 2**16, 2**48):
            refused(lambda: ring.prep_bpf(hang_progs.spin, cq_idx=bad), "cq_idx")
            refused(lambda: ring.get_sqe(bad), "cq_idx")
        refused(lambda: ring.prep_bpf(hang_progs.spin, flags=256), "flags")
        refused(lambda: ring.prep_bpf(2**64), "program index")
        for bad in (-1, math.nan, math.inf, 1e300, True):
            refused(lambda: ring.wait_cqe(0, timeout=bad), "timeout")
            refused(lambda: ring.submit_and_wait(1, timeout=bad), "timeout")
        for bad in (2, -1, 2**64):
            refused(lambda: ring.wait_cqe(bad, timeout=0), "CQ")
            refused(lambda: ring.peek_cqe(bad), "CQ")
            refused(lambda: ring.cq_drops(bad), "CQ")
        refused(lambda: ring.register_files([2**40]), "file descriptor")
        assert ring.in_flight() == 0   # nothing was queued by a refused call


@pytest.mark.parametrize("engine", ENGINES)
def test_budget_bounds_are_exact_on_every_engine(engine):
    """The largest budget is accepted and means what it says; 1 instruction faults at once."""
    for budget, expect in ((MAX_BUDGET, -errno.EDEADLK), (1, -errno.ELOOP)):
        with Ring(8, cqs=[8], engine=engine, budget=budget, run_budget=50) as ring:
            ring.register_programs([hang_progs.spin])
            ring.prep_bpf(hang_progs.spin, user_data=1)
            ring.submit_and_wait(1, timeout=60)
            assert ring.wait_cqe(0).res == expect


def test_prep_functions_refuse_values_their_fields_cannot_hold(tmp_path):
    sqe, buf = Sqe(), bytearray(8)
    refused(lambda: prep_read(sqe, 2**40, buf), "fd")
    refused(lambda: prep_write(sqe, -2**31 - 1, b"x"), "fd")
    refused(lambda: prep_read(sqe, 0, buf, -2), "offset")
    refused(lambda: prep_read(sqe, 0, buf, 2**64), "offset")
    refused(lambda: prep_readv(sqe, 0, [buf], 0, flags=2**32), "flags")
    refused(lambda: prep_read_fixed(sqe, 0, buf, 0, 2**16), "buf_index")
    refused(lambda: prep_fsync(sqe, 0, flags=-1), "flags")
    refused(lambda: prep_timeout(sqe, 1.0, count=2**64), "count")
    refused(lambda: prep_timeout(sqe, math.nan), "timeout")
    refused(lambda: prep_timeout(sqe, -1.0), "timeout")
    refused(lambda: prep_recv(sqe, 0, buf, flags=2**32), "flags")
    refused(lambda: prep_openat(sqe, -100, tmp_path / "f", flags=2**32), "flags")
    refused(lambda: prep_openat(sqe, -100, tmp_path / "f", mode=-1), "mode")
    refused(lambda: prep_poll_add(sqe, 0, 2**32), "poll_mask")
    refused(lambda: prep_cancel(sqe, 2**64), "user_data")
    prep_read(sqe, 0, buf, -1)          # the edges are accepted
    prep_read(sqe, 2**31 - 1, buf, 2**64 - 1)
    assert (sqe.fd, sqe.off) == (2**31 - 1, 2**64 - 1)


def test_low_level_io_uring_refuses_wrapping_values():
    refused(lambda: IoUring(2**32), "entries")
    with IoUring(4) as ring:
        refused(lambda: ring.submit_and_wait(2**32), "wait_nr")
        refused(lambda: ring.wait_cqe(timeout=math.nan), "timeout")
        refused(lambda: ring.register_files([2**40]), "file descriptor")
