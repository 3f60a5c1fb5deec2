"""Compiled programs computed by the host kernel agree with the language's integer rules
(`pybpfuring.compiler.ctypes_rules`): C's promotions and usual arithmetic conversions, truncating
`//` and `%`, x // 0 == 0 and x % 0 == x, INT_MIN // -1 wrapping, shift counts masked to the width,
wrap-around, casts. Also loops and maps (missing keys) as docs/language.md describes them.

Programs are compiled for target `generic` (a BPF_PROG_TYPE_SYSCALL program), loaded into the running
kernel (its verifier accepts them) and run with BPF_PROG_TEST_RUN. Inputs go in through the `inp`
map, results come out through `out`, so nothing folds at compile time.
"""
from __future__ import annotations

import ctypes
import itertools
import struct
from pathlib import Path

import pytest

from pybpfuring.compiler.ctypes_rules import common_type, convert, fold_binary, fold_compare, promote
from pybpfuring.compiler.driver import compile_module, load_module, programs_in, compile_functions
from pybpfuring.lang.types import INT_TYPES, IntType, i64, u64
from pybpfuring.loader.object import BpfObject

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("bpf_available")]

CTX = bytes(16)  # struct io_uring_bpf_ctx, all zero: the programs take their inputs from `inp`
ARITH_OPS = ["+", "-", "*", "/", "%", "&", "|", "^", "<<", ">>"]
CMP_OPS = ["<", "<=", "==", "!=", ">", ">="]
PY_OP = {"/": "//"}


def arith_program(t: IntType) -> str:
    """A program computing every operator on two `t` values read from `inp`."""
    lines = [f"@iouring_program\ndef arith_{t.name}(ctx: Ctx) -> int:",
             f"    a = {t.name}(inp[0])", f"    b = {t.name}(inp[1])"]
    slot = 0
    for op in ARITH_OPS:
        lines.append(f"    out[{slot}] = a {PY_OP.get(op, op)} b")
        slot += 1
    for op in CMP_OPS:
        lines.append(f"    out[{slot}] = a {op} b")
        slot += 1
    lines += [f"    out[{slot}] = -a", f"    out[{slot + 1}] = ~a"]
    slot += 2
    for op in ("+", "*", "<<"):  # compound assignment stores back into the narrow type
        lines += [f"    r{slot}: {t.name} = a", f"    r{slot} {op}= b", f"    out[{slot}] = r{slot}"]
        slot += 1
    lines.append("    return OK\n")
    return "\n".join(lines)


MIXED_PROGRAM = '''
@iouring_program
def mixed(ctx: Ctx) -> int:
    s8 = i8(inp[0])
    s32 = i32(inp[0])
    s64 = i64(inp[0])
    v8 = u8(inp[1])
    v32 = u32(inp[1])
    v64 = inp[1]
    out[0] = s32 < v32
    out[1] = s64 < v32
    out[2] = s64 < v64
    out[3] = s8 < v8
    out[4] = s32 + v32
    out[5] = s32 // v32
    out[6] = s64 // v32
    out[7] = s32 % v32
    out[8] = s8 * v8
    out[9] = s64 >> v32
    out[10] = s32 >> v8
    out[11] = s8 // v8
    return OK
'''
# (slot, operator, left type, right type): what MIXED_PROGRAM computes, for the expectations.
MIXED = [(0, "<", "i32", "u32"), (1, "<", "i64", "u32"), (2, "<", "i64", "u64"), (3, "<", "i8", "u8"),
         (4, "+", "i32", "u32"), (5, "/", "i32", "u32"), (6, "/", "i64", "u32"), (7, "%", "i32", "u32"),
         (8, "*", "i8", "u8"), (9, ">>", "i64", "u32"), (10, ">>", "i32", "u8"), (11, "/", "i8", "u8")]

CASTS_PROGRAM = '''
@iouring_program
def casts(ctx: Ctx) -> int:
    x = inp[0]
    out[0] = u8(x)
    out[1] = i8(x)
    out[2] = u16(x)
    out[3] = i16(x)
    out[4] = u32(x)
    out[5] = i32(x)
    out[6] = i64(x)
    out[7] = bool(x)
    out[8] = u32(i8(x))
    out[9] = i64(u32(x))
    out[10] = u16(i32(x) * 3)
    narrow: u8 = 0
    narrow = x
    out[11] = narrow
    return OK
'''
CASTS = [(0, "u8",), (1, "i8"), (2, "u16"), (3, "i16"), (4, "u32"), (5, "i32"), (6, "i64")]

CONTROL_PROGRAM = '''
@iouring_program
def control(ctx: Ctx) -> int:
    n = inp[0]
    total: u64 = 0
    for i in range(20):
        if i == n:
            break
        if i % 3 == 0:
            continue
        total += i
    out[0] = total
    w: u32 = 0
    steps: u32 = 0
    while w < 50 and w < u32(n) * 4:
        w += 3
        steps += 1
    out[1] = steps
    for j in range(min(n, 8)):
        out[2] += j
    out[3] = n if n < 5 else 5 + (n & 1)
    return i32(n > 10) + 1      # 2 or 1: the raw return value, read by test_run
'''


MAPS_PROGRAM = '''
@struct
class Pair:
    a: u32
    b: i64


h = HashMap(u32, u64, 16)
pairs = HashMap(u32, Pair, 16)


@iouring_program
def maps(ctx: Ctx) -> int:
    k = u32(inp[0])
    out[0] = h[k]                 # missing: 0
    out[1] = h.get(k, 77)         # missing: the default
    out[2] = k in h
    h[k] = 5
    h[k] += 2
    out[3] = h[k]
    out[4] = k in h
    out[5] = out[5] + 1           # array maps: every key exists
    p = pairs[k]                  # missing: a zeroed scratch object, writes dropped
    p.a = 9
    out[6] = k in pairs
    fresh = Pair()
    fresh.a = 3
    fresh.b = -4
    pairs[k] = fresh
    q = pairs[k]
    q.b -= 1                      # a reference into the map value: writes land in the map
    out[7] = u64(pairs[k].b)
    del h[k]
    out[8] = k in h
    out[9] = inp[1000]            # an array index past max_entries reads 0
    inp[1000] = 5                 # and the write is dropped
    return OK
'''

USER_COPY_PROGRAM = '''
@struct
class Args:
    word: u64
    half: u32
    byte: u8


@iouring_program
def user_copy(ctx: Ctx) -> int:
    a = Args()
    copy_from_user(a, inp[0])  # fills all of `a` (zeroes it when the copy fails): no zeroing first
    out[0] = a.word
    out[1] = a.half
    out[2] = a.byte
    return OK
'''

HEADER = "from pybpfuring.lang import *\n\ninp = ArrayMap(u64, 4)\nout = ArrayMap(u64, 32)\n\n\n"
TYPES = [INT_TYPES[n] for n in ("i8", "u8", "i16", "u16", "i32", "u32", "i64", "u64")]


def interesting(t: IntType) -> list[int]:
    return sorted({0, 1, 2, 3, 7, t.max, t.min, t.max - 1, t.min + 1, t.wrap(-1), t.wrap(-7),
                   t.bits - 1, t.bits, t.bits + 1, 31, 32, 63, 64, 200})


@pytest.fixture(scope="module")
def obj(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("semantics") / "semantics.py"
    path.write_text(HEADER + "\n\n".join(arith_program(t) for t in TYPES) + MIXED_PROGRAM
                    + CASTS_PROGRAM + CONTROL_PROGRAM + MAPS_PROGRAM + USER_COPY_PROGRAM)
    o = BpfObject.open(compile_module(path, "generic"))
    o.load()
    yield o
    o.close()


def run(obj: BpfObject, prog: str, *inputs: int) -> int:
    for i, v in enumerate(inputs):
        obj.maps["inp"][i] = u64.wrap(v)
    retval, _ = obj.programs[prog].test_run(CTX)
    return retval


def out(obj: BpfObject, n: int) -> list[int]:
    return [obj.maps["out"][i] for i in range(n)]


def arith_expected(t: IntType, a: int, b: int) -> list[int]:
    a, b = t.wrap(a), t.wrap(b)  # what `t(inp[i])` makes of the inputs
    p = promote(t)
    pa, pb = convert(a, p), convert(b, p)
    want = [convert(fold_binary(op, pa, pb, p), u64) for op in ARITH_OPS]
    want += [int(fold_compare(op, a, b)) for op in CMP_OPS]
    want += [convert(p.wrap(-pa), u64), convert(p.wrap(~pa), u64)]
    want += [convert(t.wrap(fold_binary(op, pa, pb, p)), u64) for op in ("+", "*", "<<")]
    return want


@pytest.mark.parametrize("t", TYPES, ids=lambda t: t.name)
def test_arithmetic(obj: BpfObject, t: IntType) -> None:
    n = len(ARITH_OPS) + len(CMP_OPS) + 5
    failures = []
    for a, b in itertools.product(interesting(t), repeat=2):
        run(obj, f"arith_{t.name}", a, b)
        got, want = out(obj, n), arith_expected(t, a, b)
        if got != want:
            ops = ARITH_OPS + CMP_OPS + ["neg", "invert", "+=", "*=", "<<="]
            failures.append((a, b, [(op, g, w) for op, g, w in zip(ops, got, want) if g != w]))
    assert not failures, failures[:5]


def test_division_corner_cases(obj: BpfObject) -> None:
    """The cases C leaves undefined are defined: spelled out, not only via fold_binary."""
    run(obj, "arith_i32", -(1 << 31), -1)
    got = out(obj, 5)
    assert got[3] == u64.wrap(-(1 << 31)) and got[4] == 0        # INT_MIN // -1 wraps, % is 0
    run(obj, "arith_i32", -7, 0)
    got = out(obj, 5)
    assert got[3] == 0 and got[4] == u64.wrap(-7)                 # x // 0 == 0, x % 0 == x
    run(obj, "arith_i32", -7, 2)
    got = out(obj, 5)
    assert got[3] == u64.wrap(-3) and got[4] == u64.wrap(-1)      # truncation, unlike Python's -4, 1
    run(obj, "arith_u32", 1, 33)
    assert out(obj, 10)[8] == 2                                   # 1 << 33 on u32 is 1 << 1
    run(obj, "arith_i64", -(1 << 63), -1)
    assert out(obj, 5)[3] == 1 << 63


@pytest.mark.parametrize("a,b", [(-1, 1), (1, -1), (-5, 3), (5, 3), (-(1 << 31), 7), (1 << 40, 1),
                                 (-100, 200), (127, 128)])
def test_mixed_signedness(obj: BpfObject, a: int, b: int) -> None:
    run(obj, "mixed", a, b)
    got = out(obj, len(MIXED))
    for slot, op, lt, rt in MIXED:
        lt_, rt_ = INT_TYPES[lt], INT_TYPES[rt]
        x, y = convert(a, lt_), convert(b, rt_)
        if op in ("<<", ">>"):
            t = promote(lt_)
        else:
            t = common_type(lt_, rt_)
        cx, cy = convert(x, t), convert(y, t)
        want = int(fold_compare(op, cx, cy)) if op == "<" else convert(fold_binary(op, cx, cy, t), u64)
        assert got[slot] == want, (slot, op, lt, rt, a, b)


@pytest.mark.parametrize("x", [0, 1, 0xFF, 0x80, 0x1_0000_8081, -1, -129, (1 << 63) + 0x7F, 0xDEAD_BEEF_CAFE])
def test_casts(obj: BpfObject, x: int) -> None:
    run(obj, "casts", x)
    got = out(obj, 12)
    v = u64.wrap(x)
    for slot, name in CASTS:
        assert got[slot] == u64.wrap(INT_TYPES[name].wrap(v)), (slot, name)
    assert got[7] == int(v != 0)
    assert got[8] == INT_TYPES["u32"].wrap(INT_TYPES["i8"].wrap(v))
    assert got[9] == INT_TYPES["u32"].wrap(v)
    assert got[10] == INT_TYPES["u16"].wrap(INT_TYPES["i32"].wrap(v) * 3)
    assert got[11] == v & 0xFF


@pytest.mark.parametrize("n", [0, 1, 3, 4, 7, 8, 13, 25, 1 << 33])
def test_control_flow(obj: BpfObject, n: int) -> None:
    obj.maps["out"][2] = 0
    retval = run(obj, "control", n)
    total = sum(i for i in range(min(n, 20)) if i % 3)
    w = steps = 0
    while w < 50 and w < (n % (1 << 32)) * 4 % (1 << 32):
        w += 3
        steps += 1
    assert out(obj, 4) == [total, steps, sum(range(min(n, 8))), n if n < 5 else 5 + (n & 1)]
    assert retval == (2 if n > 10 else 1)


def test_maps_semantics(obj: BpfObject) -> None:
    obj.maps["out"][5] = 41
    run(obj, "maps", 7)
    got = out(obj, 10)
    assert got[:3] == [0, 77, 0]          # a missing hash key reads 0, get() gives the default
    assert got[3:5] == [7, 1]             # stored, then += through the helpers
    assert got[5] == 42
    assert got[6] == 0                    # writing through a missing key's reference stored nothing
    assert got[7] == u64.wrap(-5)         # a struct value edited in place through its reference
    assert got[8] == 0                    # deleted
    assert got[9] == 0
    assert 7 not in obj.maps["h"]
    assert obj.maps["pairs"][7] == (3).to_bytes(4, "little") + bytes(4) + u64.wrap(-5).to_bytes(8, "little")


def test_copy_from_user(obj: BpfObject) -> None:
    """A sleepable SYSCALL program reads this process's memory; a bad address leaves zeroes."""
    buf = ctypes.create_string_buffer(struct.pack("<QIB", 0x1122_3344_5566_7788, 0xA0B0C0D0, 0x7F), 16)
    run(obj, "user_copy", ctypes.addressof(buf))
    assert out(obj, 3) == [0x1122_3344_5566_7788, 0xA0B0C0D0, 0x7F]
    run(obj, "user_copy", 8)  # unmapped
    assert out(obj, 3) == [0, 0, 0]


def test_valid_feature_programs_pass_the_verifier() -> None:
    """Every program of the valid-feature unit tests (target generic) is accepted by the kernel."""
    valid = load_module(Path(__file__).parents[1] / "unit" / "test_compiler_valid.py")
    for prog in valid.GENERIC:
        with BpfObject.open(compile_functions([prog], "generic", cache=False)) as o:
            o.load()
            assert o.programs[prog.name].insn_count > 0
