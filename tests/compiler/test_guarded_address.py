"""lowering_guard.guarded_address, the one "element or zeroed scratch" mechanism, through the two
users a host kernel can run (array index, map value; the loop_step region view runs in the guest,
tests/guest): out of range or missing, reads give 0 and writes are dropped, and a write through one
miss is never read back through the next. Checked on the kernel (BPF_PROG_TEST_RUN) and against the
reference evaluator."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "kernel"))

from diffharness import loaded_object, run_both  # noqa: E402

SOURCE = '''
from pybpfuring import Array, ArrayMap, Ctx, HashMap, iouring_program, struct, u32, u64, OK


@struct
class Box:
    a: u64
    v: Array[u32, 4]


out = ArrayMap(u64, 8)
boxes = HashMap(u32, Box, 4)


@iouring_program
def index(ctx: Ctx) -> int:
    b = Box()
    i = ctx.wait_nr
    b.v[i] = 7              # dropped when i >= 4
    out[0] = b.v[i]         # 0 when i >= 4
    b.v[i] += 5
    out[1] = b.v[0] + b.v[1] + b.v[2] + b.v[3]
    return OK


@iouring_program
def map_value(ctx: Ctx) -> int:
    k = ctx.wait_nr
    r = boxes[k]            # missing key: a zeroed object
    r.a += 9                # dropped when missing
    r.v[k & 3] = 3
    s = boxes[k + 1]        # a second miss must read zeros again, not the 9 and 3 above
    out[2] = s.a + s.v[0] + s.v[1] + s.v[2] + s.v[3]
    out[3] = r.a
    return OK
'''


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    yield from loaded_object(SOURCE, tmp_path_factory.mktemp("guard"), "guard")


def ctx(n: int) -> bytes:
    return bytes(8) + n.to_bytes(4, "little") + bytes(4)


@pytest.mark.parametrize("n", [0, 3, 4, 5, 100, 0xFFFFFFFF])
def test_index_in_and_out_of_range(loaded, n):
    obj, typed = loaded
    assert not run_both(obj, typed, "index", ctx(n))
    obj.programs["index"].test_run(ctx(n))
    assert obj.maps["out"][0] == (7 if n < 4 else 0)
    assert obj.maps["out"][1] == (12 if n < 4 else 0)


def test_missing_map_values_read_zero_and_drop_writes(loaded):
    obj, typed = loaded
    for n in (1, 2):
        assert not run_both(obj, typed, "map_value", ctx(n))
        obj.programs["map_value"].test_run(ctx(n))
        # One scratch slot per function, zeroed by each miss: after s's miss, r (which pointed at it
        # too) reads 0 as well. The evaluator models the same slot (run_both above agrees).
        assert obj.maps["out"][2] == 0 and obj.maps["out"][3] == 0
        assert n not in obj.maps["boxes"]


def test_present_map_values_are_updated_in_place(loaded):
    obj, typed = loaded
    obj.maps["boxes"][2] = bytes(24)
    obj.maps["boxes"][3] = (4).to_bytes(8, "little") + bytes(16)
    assert not run_both(obj, typed, "map_value", ctx(2))   # one run on each side
    assert int.from_bytes(obj.maps["boxes"][2][:8], "little") == 9
    assert obj.maps["out"][2] == 4
