"""Loops over arrays whose size the type gives (docs/compiler.md): `range(len(v.field))` and
`for x in v.field:` over a struct map value's array field, an array-valued map, and an array of
structs written through the loop variable. Each program is compiled for target `generic`, loaded
into this machine's kernel (the verifier must accept it) and run with BPF_PROG_TEST_RUN next to the
reference evaluator; what is not an array is a located error."""
from __future__ import annotations

import struct
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "kernel"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from diffharness import compile_error, loaded_object, run_both  # noqa: E402
from test_value_range_loops import ctx  # noqa: E402
from pybpfuring.errors import CompileError  # noqa: E402

HEADER = '''
from pybpfuring import Array, ArrayMap, Ctx, HashMap, u32, u64, iouring_program, struct, OK


@struct
class Pt:
    x: u32
    y: u32


@struct
class Rec:
    n: u64
    data: Array[u32, 12]
    pts: Array[Pt, 4]


recs = ArrayMap(Rec, 4)
hrecs = HashMap(u32, Rec, 4)
rows = ArrayMap(Array[u64, 6], 2)
out = ArrayMap(u64, 8)
'''

LOOPS = HEADER + '''

@iouring_program
def fill_by_len(ctx: Ctx) -> int:
    r = recs[ctx.wait_nr & 3]
    for i in range(len(r.data)):
        r.data[i] = u32(i) * ctx.wait_idx + r.data[i]
    r.n = u64(len(r.pts))
    return OK


@iouring_program
def sum_elements(ctx: Ctx) -> int:
    total: u64 = 0
    for v in recs[ctx.wait_nr & 3].data:
        total += v
    for p in hrecs[ctx.wait_nr].pts:     # a missing key: four zeroed points, writes dropped
        total += p.x
        p.y = ctx.wait_idx
    out[0] = total
    return OK


@iouring_program
def struct_elements(ctx: Ctx) -> int:
    if ctx.wait_nr not in hrecs:
        hrecs[ctx.wait_nr] = Rec()
    r = hrecs[ctx.wait_nr]
    k: u32 = 0
    for p in r.pts:                      # p refers into the map value
        p.x += k + ctx.wait_idx
        k += 1
        if p.x > 40:
            break
    return OK


@iouring_program
def array_value(ctx: Ctx) -> int:
    for x in rows[0]:
        rows[1][ctx.wait_idx % 6] += x
        if x == 0:
            continue
        out[1] += 1
    return OK
'''

PROGRAMS = ["fill_by_len", "sum_elements", "struct_elements", "array_value"]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    yield from loaded_object(LOOPS, tmp_path_factory.mktemp("arrays"), "arrays")


def test_array_loops_verify_and_agree_with_the_evaluator(loaded):
    obj, typed = loaded
    for run in range(3):             # later runs start from what the earlier ones wrote
        for program in PROGRAMS:
            for n, idx in ((0, 3), (1, 5), (2, 11), (3, 0), (7, 2)):
                mismatches = run_both(obj, typed, program, ctx(n + run, idx))
                assert not mismatches, "\n".join(map(str, mismatches))


def test_len_is_the_array_length(loaded):
    obj, _ = loaded
    data = lambda raw: struct.unpack_from("<12I", raw, 8)  # noqa: E731  (Rec.data, after n: u64)
    before = data(obj.maps["recs"][2])
    retval, _ = obj.programs["fill_by_len"].test_run(ctx(2, 3))
    after = obj.maps["recs"][2]
    assert retval == 0
    assert struct.unpack_from("<Q", after)[0] == 4                       # r.n = len(r.pts)
    assert [a - b for a, b in zip(data(after), before)] == [3 * i for i in range(12)]  # all 12


def _error(tmp_path: Path, body: str) -> CompileError:
    return compile_error(HEADER + body, tmp_path)


def test_iterating_a_scalar_is_a_located_error(tmp_path):
    err = _error(tmp_path, '''

@iouring_program
def p(ctx: Ctx) -> int:
    for x in ctx.wait_nr:
        out[0] += x
    return OK
''')
    text = str(err)
    assert ":26:14:" in text and "range(...) or a fixed-size array" in text


def test_len_of_a_scalar_is_a_located_error(tmp_path):
    err = _error(tmp_path, '''

@iouring_program
def p(ctx: Ctx) -> int:
    for i in range(len(ctx.wait_nr)):
        out[0] += i
    return OK
''')
    assert ":26:24:" in str(err) and "len() takes a fixed-size array" in str(err)
