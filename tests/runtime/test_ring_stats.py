"""Ring.stats(): the same counters on every engine of the emulated backend (the guest tier checks
bpf_ops: tests/guest/test_trace_guest.py), against what the programs did, counted by hand.

cp of N blocks: N + 1 reads and N writes submitted by the program, each completing on CQ 1; one run
per completion plus the first, all but the last returning WAIT; nothing overflows. A burst beyond an
extra CQ's size is counted as drops; CQEs beyond CQ 0's size as its overflow backlog.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

import ring_stats
from pybpfuring.runtime import Ring, RingStats, prep_nop
from pybpfuring.runtime.backends.native import unavailable_reason

NATIVE = unavailable_reason()
ENGINES = ["interp", "jit", pytest.param("native", marks=pytest.mark.skipif(
    NATIVE is not None, reason=f"native loop unavailable: {NATIVE}"))]


def _copy(tmp_path: Path, blocks: int, engine: str) -> RingStats:
    src, dst = tmp_path / "src", tmp_path / "dst"
    data = os.urandom(blocks * 4096)
    src.write_bytes(data)
    fd_in = os.open(src, os.O_RDONLY)
    fd_out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        copied, stats, _ = ring_stats.copy_with_stats(fd_in, fd_out, "emulated", engine)
    finally:
        os.close(fd_in)
        os.close(fd_out)
    assert copied == len(data) and dst.read_bytes() == data
    return stats


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("blocks", [0, 1, 37])
def test_cp_counts_match_the_copy(tmp_path: Path, engine: str, blocks: int) -> None:
    stats = _copy(tmp_path, blocks, engine)
    for key, want in ring_stats.expected_copy_stats(blocks).items():
        assert getattr(stats, key) == want, key
    assert stats.submitted == stats.user_submitted + stats.program_submitted
    assert stats.faults == 0 and stats.in_flight == 0


@pytest.mark.parametrize("engine", ENGINES)
def test_extra_cq_drops_are_overflows(engine: str) -> None:
    stats = ring_stats.burst_stats(10, "emulated", engine)
    assert stats.completed == (1, ring_stats.BURST_CQ_SIZE)
    assert stats.overflows == (0, 10 - ring_stats.BURST_CQ_SIZE)
    assert (stats.program_runs, stats.waits, stats.program_submitted) == (1, 0, 0)


@pytest.mark.parametrize("engine", ENGINES)
def test_cq0_backlog_is_counted_and_reaping_does_not_lower_completed(engine: str) -> None:
    with Ring(2, backend="emulated", engine=engine) as ring:     # CQ 0 holds 4
        for i in range(10):
            sqe = ring.get_sqe()
            prep_nop(sqe)
            sqe.user_data = i
            if i % 2:
                ring.submit()
        ring.submit_and_wait(10, timeout=10)
        before = ring.stats()
        assert before.user_submitted == 10 and before.completed == (10,)
        assert before.overflows == (6,)
        assert len(list(ring.cqes())) == 10
        after = ring.stats()
    assert after.completed == (10,) and after.overflows == (6,)


def test_as_dict_is_plain_json_values() -> None:
    import json
    stats = ring_stats.burst_stats(2, "emulated", "interp")
    d = json.loads(json.dumps(stats.as_dict()))
    assert d["completed"] == [1, 2] and d["overflows"] == [0, 0] and d["user_submitted"] == 1
