"""Stress: many concurrent BPF requests, many rings, a program that always faults, CQs that
overflow. Nothing may crash, hang or leak file descriptors."""
from __future__ import annotations

import errno

import progs
from pybpfuring.runtime import Ring, prep_nop
from test_model import faulting_elf

REQUESTS = 10_000


def test_ten_thousand_concurrent_bpf_requests(backend: str, no_fd_leak: None) -> None:
    with Ring(64, cqs=[16384], backend=backend) as ring:
        ring.register_programs([progs.await_token])
        for key in range(1, REQUESTS + 1):
            ring.prep_bpf(progs.await_token, user_data=key)  # submits when the queue is full
        ring.submit()
        assert ring.in_flight() == REQUESTS  # every one ran once and now waits on CQ 1
        for i in range(REQUESTS):             # user space sends one token per request
            sqe = ring.get_sqe(cq_idx=1)
            if sqe is None:
                ring.submit()
                sqe = ring.get_sqe(cq_idx=1)
            assert sqe is not None
            prep_nop(sqe)
            sqe.user_data = i
        ring.submit()
        done = {ring.wait_cqe(0).user_data for _ in range(REQUESTS)}
        assert done == set(range(1, REQUESTS + 1))
        assert progs.results[progs.WOKEN_REAPED] == REQUESTS
        assert ring.in_flight() == 0 and ring.cq_ready(1) == 0 and ring.fault_count == 0


def test_bpf_requests_that_submit_io_concurrently(backend: str, no_fd_leak: None) -> None:
    with Ring(64, cqs=[4096], backend=backend) as ring:
        ring.register_programs([progs.nop_then_reap])
        for key in range(1, 501):
            ring.prep_bpf(progs.nop_then_reap, user_data=key)
        ring.submit()
        done = {ring.wait_cqe(0).user_data for _ in range(500)}
        assert done == set(range(1, 501))
        assert len(ring.maps["phase"]) == 0 and ring.in_flight() == 0


def test_a_thousand_rings_open_and_close(backend: str, no_fd_leak: None) -> None:
    for i in range(1000):
        with Ring(4, cqs=[2], backend=backend) as ring:
            sqe = ring.get_sqe(cq_idx=1)
            assert sqe is not None
            prep_nop(sqe)
            sqe.user_data = i
            ring.submit()
            assert ring.wait_cqe(1).user_data == i
    # and some with programs, closed with requests still waiting
    for _ in range(20):
        ring = Ring(4, cqs=[2], backend=backend)
        ring.register_programs([progs.nop_then_reap])
        ring.prep_bpf(progs.nop_then_reap, user_data=1)
        ring.submit()
        ring.close()
        # no reset of progs.phase: the next ring's maps start fresh (docs/runtime.md)


def test_a_program_that_faults_on_every_run(backend: str, no_fd_leak: None) -> None:
    with Ring(32, backend=backend) as ring:
        ring.register_programs(faulting_elf())
        for i in range(2000):
            ring.prep_bpf(0, user_data=i)
        ring.submit()
        results = [ring.wait_cqe() for _ in range(2000)]
        assert {c.res for c in results} == {-errno.EFAULT}
        assert ring.fault_count == 2000 and len(ring.faults) == 1000  # the newest 1000 are kept
        assert all(f.loc is not None and f.loc.line == ring.faults[0].loc.line for f in ring.faults)
        sqe = ring.get_sqe()
        assert sqe is not None
        prep_nop(sqe)
        sqe.user_data = 5
        ring.submit()
        assert ring.wait_cqe() == (5, 0, 0)


def test_cqs_that_overflow(backend: str, no_fd_leak: None) -> None:
    with Ring(4, cqs=[2], backend=backend) as ring:
        size0 = ring.cq_size(0)
        # CQ 0 never drops: 50 x its size of kernel completions all arrive, in order.
        n = 50 * size0
        for i in range(n):
            sqe = ring.get_sqe()
            if sqe is None:
                ring.submit()
                sqe = ring.get_sqe()
            assert sqe is not None
            prep_nop(sqe)
            sqe.user_data = i
        ring.submit()
        while ring.in_flight():
            ring.peek_cqe()
        assert ring.cq_ready(0) == n
        assert ring.cq_overflow(0) == n - size0          # kept beyond its size, and counted
        assert [c.user_data for c in ring.cqes(0)] == list(range(n))
        # An extra CQ of 2 keeps the oldest 2 kernel completions routed to it and drops the rest.
        for i in range(4):
            sqe = ring.get_sqe(cq_idx=1)
            assert sqe is not None
            prep_nop(sqe)
            sqe.user_data = 100 + i
        ring.submit()
        while ring.in_flight():
            ring.peek_cqe()
        assert [c.user_data for c in ring.cqes(1)] == [100, 101]
        assert ring.cq_drops(1) == 2


def test_one_run_floods_a_small_ring(backend: str, no_fd_leak: None) -> None:
    with Ring(4, cqs=[512], backend=backend) as ring:
        ring.register_programs([progs.flood])
        ring.prep_bpf(progs.flood, user_data=1)
        ring.submit_and_wait(1)
        assert ring.wait_cqe() == (1, 0, 0)
        while ring.in_flight():
            ring.peek_cqe(1)
        assert progs.results[33] == 0
        assert [c.user_data for c in ring.cqes(1)] == list(range(256))
