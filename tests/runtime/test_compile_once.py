"""Programs are compiled once per process, not once per Ring: the compiled forms are cached by the
program's content (engine/compile_cache.py), and a closed ring leaves no file descriptors behind."""
from __future__ import annotations

import os

import pytest

from pybpfuring.lang import ArrayMap, Ctx, complete, iouring_program, u64
from pybpfuring.runtime import Ring
from pybpfuring.runtime.engine import interp, jit
from pybpfuring.runtime.backends.native import unavailable_reason

counts = ArrayMap(u64, 4)


@iouring_program
def count_runs(ctx: Ctx) -> int:
    """A map reference: its address differs per ring, the compiled code must not."""
    counts[0] = counts[0] + 1
    return complete(ctx, 0)


ENGINES = ["interp", "jit"] + (["native"] if unavailable_reason() is None else [])


def _one_ring(engine: str) -> int:
    with Ring(8, backend="emulated", engine=engine) as ring:
        ring.register_programs([count_runs])
        for _ in range(3):
            ring.prep_bpf(count_runs)
        ring.submit()
        assert [ring.wait_cqe().res for _ in range(3)] == [0, 0, 0]
        return int(ring.maps["counts"][0])


@pytest.mark.parametrize("engine", ENGINES)
def test_second_ring_compiles_nothing(engine: str) -> None:
    cache = interp._SLOT_CODE if engine == "interp" else jit._CODE
    assert _one_ring(engine) == 3
    misses = cache.misses
    assert _one_ring(engine) == 3          # each ring has its own map, counted from zero
    assert cache.misses == misses and cache.hits > 0


@pytest.mark.parametrize("engine", ENGINES)
def test_closed_rings_leave_no_descriptors(engine: str) -> None:
    _one_ring(engine)
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(30):
        _one_ring(engine)
    assert len(os.listdir("/proc/self/fd")) == before
