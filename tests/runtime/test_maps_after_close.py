"""After a ring closes, its programs' maps keep the values they left, read-only, until another ring
binds them (the same on every backend: docs/runtime.md, "Maps after close")."""
from __future__ import annotations

import pytest

from pybpfuring.runtime import Ring
from pybpfuring.uring import RingClosedError

import progs
from progs import LOG_LEN, record, results


def _record(ring: Ring, *values: int) -> None:
    for v in values:
        ring.prep_bpf(record, user_data=v)
    ring.submit_and_wait(len(values))


def test_values_stay_readable_after_the_ring_closes(backend: str, no_fd_leak: None) -> None:
    with Ring(8, backend=backend) as ring:
        ring.register_programs([record])
        _record(ring, 7, 9)
    assert results[LOG_LEN] == 2 and [results[10], results[11]] == [7, 9]
    assert 11 in results and list(results)[:2] == [0, 1] and len(list(results)) == 64
    kept = results.live_map                           # the dict-like reads of a live map
    assert kept is not None and len(kept) == 64 and kept.items()[10] == (10, 7) and kept.get(11) == 9
    with pytest.raises(RingClosedError, match="'results' belongs to a closed ring"):
        results[0] = 1
    assert results[0] == 0
    del ring                      # the ring object going does not take the values with it
    assert results[10] == 7


def test_another_ring_binding_the_map_takes_it_over(backend: str) -> None:
    with Ring(8, backend=backend) as ring:
        ring.register_programs([record])
        _record(ring, 5)
    with Ring(8, backend=backend) as second:
        second.register_programs([record])
        assert results[LOG_LEN] == 0                # the new ring's own, fresh map
        results[LOG_LEN] = 3                        # and writable again
        _record(second, 4)
        first_closed_late = Ring(8, backend=backend)
        first_closed_late.close()                   # closing a ring that bound nothing: no change
        assert results[LOG_LEN] == 4 and results[13] == 4
    assert results[13] == 4


def test_a_hash_map_after_close(backend: str) -> None:
    with Ring(8, backend=backend) as ring:
        ring.register_programs([progs.nop_then_reap])
        progs.phase[42] = 1
        assert progs.phase[42] == 1
    assert progs.phase[42] == 1 and 42 in progs.phase and list(progs.phase) == [42]
    with pytest.raises(RingClosedError):
        del progs.phase[42]
