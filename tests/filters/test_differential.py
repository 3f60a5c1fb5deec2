"""Each filter run as Python vs our cBPF evaluator on the compiled program, on random contexts."""
from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybpfuring.filters import CTX_SIZE, FilterCtx
from pybpfuring.filters import cbpf
from pybpfuring.filters.evaluator import run

from . import policies

EXAMPLES = 2500
# values the policies compare against, and their neighbours: random bytes alone rarely hit them
_INTERESTING = [0, 1, 2, 3, 5, 16, 80, 127, 255, 256, 443, 0o755, 0o756, 0x40, 0x41, 0x10,
                0x7F000001, 0xFFFFFFFF, 0x1_0000_0000, 0x2_0000_0004, 0x2_0000_0005,
                policies.BIG, policies.BIG ^ 0x10000, 0xF << 60, 0xE << 60]


def _word(size: int) -> st.SearchStrategy[int]:
    top = (1 << (8 * size)) - 1
    return st.one_of(st.integers(0, top), st.integers(0, 20), st.sampled_from([v & top for v in _INTERESTING]),
                     st.sampled_from([v & top for v in _INTERESTING]).map(lambda v: v ^ (1 << 5)))


@st.composite
def contexts(draw) -> bytes:
    b = bytearray(CTX_SIZE)
    struct.pack_into("<QBBB", b, 0, draw(_word(8)), draw(_word(1)), draw(_word(1)), draw(_word(1)))
    layout = draw(st.sampled_from(["socket", "open", "connect", "raw"]))
    if layout == "socket":
        family = draw(st.one_of(st.sampled_from([1, 2, 10, 16]), _word(4)))
        kind = draw(st.one_of(st.sampled_from([1, 2, 3, 5, 0x80001, 0x802]), _word(4)))
        struct.pack_into("<III", b, 16, family, kind, draw(_word(4)))
    elif layout == "open":
        struct.pack_into("<QQQ", b, 16, draw(_word(8)), draw(_word(8)), draw(_word(8)))
    elif layout == "connect":
        struct.pack_into("<I", b, 16, draw(st.one_of(st.sampled_from([1, 2, 10]), _word(4))))
        struct.pack_into(">HxxI", b, 20, draw(_word(2)), draw(_word(4)))
    else:
        b[11:] = draw(st.binary(min_size=CTX_SIZE - 11, max_size=CTX_SIZE - 11))
    return bytes(b)


@pytest.mark.parametrize("filt", policies.ALL, ids=lambda f: f.__name__)
def test_compiled_filter_decides_as_python(filt) -> None:
    prog = list(filt.compiled.program)
    assert cbpf.check(prog) is None
    seen = {True: 0, False: 0}

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    @given(contexts())
    def check(ctx: bytes) -> None:
        want = filt(FilterCtx.from_bytes(ctx))
        seen[want] += 1
        assert bool(run(prog, ctx)) == want, FilterCtx.from_bytes(ctx)

    check()
    assert seen[True] + seen[False] >= 2000
    assert seen[True] > 10 and seen[False] > 10, seen     # both decisions were exercised (draws vary)
