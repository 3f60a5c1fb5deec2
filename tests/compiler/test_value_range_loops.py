"""Loops bounded by what the program knows (docs/compiler.md): `range(min(n, K))`, `range(n)` after
`if n > K: return`, `while True:` with a counter checked against a constant. Each program is
compiled for target `generic`, loaded into this machine's kernel (the verifier must accept it) and
run with BPF_PROG_TEST_RUN next to the reference evaluator; a loop with no bound is a located error
that names the value."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "kernel"))

from diffharness import compile_error, loaded_object, run_both  # noqa: E402
from pybpfuring.errors import CompileError  # noqa: E402

HEADER = '''
from pybpfuring import Ctx, ArrayMap, HashMap, u32, u64, iouring_program, OK

out = ArrayMap(u64, 8)
'''

LOOPS = HEADER + '''

@iouring_program
def min_bound(ctx: Ctx) -> int:
    n = ctx.wait_nr
    for i in range(min(n, 16)):
        out[0] += i
    return OK


@iouring_program
def checked_first(ctx: Ctx) -> int:
    n = ctx.wait_nr
    if n > 12:
        return 1
    for i in range(n):
        out[1] += i + 1
    return OK


@iouring_program
def checked_in_loop(ctx: Ctx) -> int:
    n = ctx.wait_nr
    for j in range(3):
        if n >= 9:
            break
        for i in range(2, n):
            out[2] += i * (j + 1)
    return OK


@iouring_program
def counter_break(ctx: Ctx) -> int:
    k: u32 = 0
    while True:
        k += 3
        out[3] += ctx.wait_idx & 7
        if k >= 20:
            break
    out[4] = k
    return OK
'''


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    yield from loaded_object(LOOPS, tmp_path_factory.mktemp("loops"), "loops")


def ctx(wait_nr: int, wait_idx: int = 5) -> bytes:
    return bytes(8) + wait_nr.to_bytes(4, "little") + wait_idx.to_bytes(4, "little")


@pytest.mark.parametrize("program", ["min_bound", "checked_first", "checked_in_loop", "counter_break"])
def test_bounded_loops_verify_and_agree_with_the_evaluator(loaded, program):
    obj, typed = loaded
    for n in (0, 1, 5, 8, 9, 12, 13, 16, 17, 1000, 0xFFFFFFFF):
        mismatches = run_both(obj, typed, program, ctx(n))
        assert not mismatches, "\n".join(map(str, mismatches))


def test_checked_first_runs_n_trips(loaded):
    obj, _ = loaded
    before = obj.maps["out"][1]
    retval, _ = obj.programs["checked_first"].test_run(ctx(4))
    assert retval == 0 and obj.maps["out"][1] - before == 1 + 2 + 3 + 4
    retval, _ = obj.programs["checked_first"].test_run(ctx(13))
    assert retval == 1                         # the early return, not the loop


def _error(tmp_path: Path, body: str) -> CompileError:
    return compile_error(HEADER + body, tmp_path)


def test_unbounded_range_names_the_value_and_the_fix(tmp_path):
    err = _error(tmp_path, '''

@iouring_program
def p(ctx: Ctx) -> int:
    count = ctx.wait_nr
    for i in range(count):
        out[0] += i
    return OK
''')
    text = str(err)
    assert "bad_" in text and ":10:20:" in text          # file:line:col of the range() endpoint
    assert "`count` has no bound" in text and "range(min(count, N))" in text
    assert "if count > N: return" in text


def test_a_check_stops_holding_once_the_value_is_assigned(tmp_path):
    err = _error(tmp_path, '''

@iouring_program
def p(ctx: Ctx) -> int:
    n = ctx.wait_nr
    if n > 8:
        return OK
    n = ctx.wait_idx
    for i in range(n):
        out[0] += i
    return OK
''')
    assert "`n` has no bound" in str(err)


def test_a_check_with_else_gives_no_bound(tmp_path):
    err = _error(tmp_path, '''

@iouring_program
def p(ctx: Ctx) -> int:
    n = ctx.wait_nr
    if n > 8:
        return OK
    else:
        out[1] = 1
    for i in range(n):
        out[0] += i
    return OK
''')
    assert "`n` has no bound" in str(err)


def test_while_true_without_a_counter_check_is_refused(tmp_path):
    err = _error(tmp_path, '''

@iouring_program
def p(ctx: Ctx) -> int:
    k: u32 = 0
    while True:
        k += 1
        if ctx.wait_nr == k:
            break
    return OK
''')
    assert "while loop without a bound" in str(err) and "if k >= C: break" in str(err)
