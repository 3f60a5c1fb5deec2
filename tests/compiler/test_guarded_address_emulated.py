"""guarded_address ("the element's address, or a zeroed scratch object when it is not there") as a
program sees it, on pybpfuring's own engines: no bpf() needed, so this runs where
test_guarded_address.py (the host kernel) skips. An index inside the array reads and writes the
element; one outside reads 0 and its writes go nowhere; a missing map value reads as zeros, drops
writes, and a second miss never reads back what was written through the first. (The loop_step
region view, the third user, runs only in a Linux >= 7.1 kernel: tests/guest.)"""
from __future__ import annotations

import pytest

from pybpfuring.lang import Array, ArrayMap, Ctx, HashMap, complete, iouring_program, struct, u32, u64
from pybpfuring.runtime import Ring


@struct
class Box:
    a: u64
    v: Array[u32, 4]


out = ArrayMap(u64, 8)
boxes = HashMap(u32, Box, 4)


@iouring_program
def element_at(ctx: Ctx) -> int:
    b = Box()
    i = ctx.user_data
    b.v[i] = 7              # dropped when i >= 4
    out[0] = b.v[i]         # 0 when i >= 4
    b.v[i] += 5
    out[1] = b.v[0] + b.v[1] + b.v[2] + b.v[3]
    return complete(ctx, 0)


@iouring_program
def map_value(ctx: Ctx) -> int:
    k = u32(ctx.user_data)
    r = boxes[k]            # missing key: a zeroed object
    r.a += 9                # dropped when missing
    r.v[k & 3] = 3
    s = boxes[k + 1]        # a second miss reads zeros again, not the 9 and 3 above
    out[2] = s.a + s.v[0] + s.v[1] + s.v[2] + s.v[3]
    out[3] = r.a
    return complete(ctx, 0)


ENGINES = ["interp", "jit"]


def run(engine: str, program, user_data: int, present: dict[int, bytes] | None = None) -> Ring:
    """One run of `program` on a fresh ring (closed by the caller), `present` in `boxes` first."""
    ring = Ring(8, backend="emulated", engine=engine)
    ring.register_programs([element_at, map_value])
    for key, value in (present or {}).items():
        ring.maps["boxes"][key] = value
    ring.prep_bpf(program, user_data=user_data)
    ring.submit()
    assert ring.wait_cqe().res == 0
    return ring


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("i", [0, 3, 4, 5, 100, 2**64 - 1])
def test_an_index_inside_reaches_the_element_and_one_outside_reads_zero(engine, i):
    with run(engine, element_at, i) as ring:
        assert ring.maps["out"][0] == (7 if i < 4 else 0)
        assert ring.maps["out"][1] == (12 if i < 4 else 0)     # the += went nowhere outside


@pytest.mark.parametrize("engine", ENGINES)
def test_missing_map_values_read_zero_and_drop_writes(engine):
    with run(engine, map_value, 1) as ring:
        assert ring.maps["out"][2] == 0 and ring.maps["out"][3] == 0
        assert 1 not in ring.maps["boxes"] and 2 not in ring.maps["boxes"]


@pytest.mark.parametrize("engine", ENGINES)
def test_present_map_values_are_updated_in_place(engine):
    with run(engine, map_value, 2, {2: bytes(24), 3: (4).to_bytes(8, "little") + bytes(16)}) as ring:
        assert int.from_bytes(bytes(ring.maps["boxes"][2])[:8], "little") == 9
        assert ring.maps["out"][2] == 4 and ring.maps["out"][3] == 9
