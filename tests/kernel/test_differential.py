"""The differential tier: compiled programs (target `generic`) run on this machine's kernel with
BPF_PROG_TEST_RUN must agree with the reference evaluator of the typed IR, on the return value,
the ctx written back and every map's contents.

(a) hand-written programs over hypothesis-generated contexts and map contents;
(b) regression programs, one per compiler bug this tier found (each failed before its fix);
(c) hypothesis-drawn seeds of `progen`: 50 modules of 40 random programs (2,000 programs), each
    module one ELF and one load; a mismatch is reduced to a minimal program in the failure.
"""
from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from diffharness import (UserBuffer, compile_source, randomize_maps, random_ctx,
                         reduce_mismatch, run_both)
from progen import generate
from pybpfuring.loader.object import BpfObject

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("bpf_available")]

PROGRAMS_PER_MODULE = 40
GENERATED_MODULES = 50

PRELUDE = '''
from pybpfuring import (Ctx, ArrayMap, HashMap, Array, struct, iouring_program, u8, u16, u32, u64,
                        i8, i16, i32, i64)
from pybpfuring.lang import bpf_function, copy_from_user

am = ArrayMap(u64, 8)
hm = HashMap(u32, i64, 8)
hk = HashMap(i16, u8, 3)


@struct
class S:
    a: u8
    b: i16
    c: u32
    d: i64
    e: Array[i32, 4]
    f: u64
'''

HAND_WRITTEN = PRELUDE + '''

@bpf_function
def mix(a: u32, b: i16) -> i64:
    return (a * b) ^ (a >> (b & 7))


@bpf_function(inline=False)
def clamp(x: i64, lo: i32, hi: i32) -> i32:
    if x < lo:
        return lo
    if x > hi:
        return hi
    return i32(x)


@bpf_function
def fill(s: S, seed: u32) -> u32:
    for i in range(4):
        s.e[i] = i32(seed * (i + 1))
    s.c = seed
    return s.e[3]


@iouring_program
def arith(ctx: Ctx) -> int:
    a: u32 = ctx.wait_nr
    b: i32 = i32(ctx.wait_idx)
    c: u8 = u8(ctx.user_data)
    d: i64 = i64(ctx.user_data)
    am[0] = a // (b % 7) + (d // b) - (c % (a & 3))
    am[1] = (a << b) | (d >> c) | (i8(c) >> 2)
    am[2] = u64(-d) * 3 + ~a
    am[3] = (b < a) + (d < a) * 2 + (i8(c) < u8(c)) * 4
    am[4] = u16(a) * u16(a)
    ctx.wait_nr = (a if d > 0 else c) + min(a, b) + max(c, i8(c))
    return mix(a, i16(b)) & 0x7fffffff


@iouring_program
def maps(ctx: Ctx) -> int:
    k: u32 = ctx.wait_nr & 15
    hm[k] = hm.get(k, 100) + i64(ctx.user_data)
    hm[k ^ 1] += 3
    if ctx.wait_idx & 1:
        del hm[k ^ 2]
    hk[i16(k)] = hk.get(i16(k ^ 4), 7)
    am[k] = am[k - 1] + (k in hm) + (i16(k) not in hk) * 2
    return hm.get(k ^ 1, -1) + len_like()


@bpf_function
def len_like() -> i32:
    n: i32 = 0
    for i in range(8):
        if am[i] == 0:
            continue
        n += 1
        if n > 5:
            break
    return n


@iouring_program
def structs(ctx: Ctx) -> int:
    s = S()
    t = S()
    top = fill(s, ctx.wait_nr)
    t.e = s.e
    t.a = ctx.wait_idx
    t.b = i16(ctx.user_data)
    idx: u64 = ctx.user_data
    t.e[idx] = 99
    s.d = t.e[idx] + t.e[idx & 3]
    am[5] = u64(s.d) + t.a + u64(t.b)
    ctx.wait_idx = clamp(i64(top) - i64(t.b), -1000, 1000)
    w: u32 = 0
    total: u64 = 0
    while w < 10:
        w += 3
        total += s.e[w & 3]
    return i32(total)


@iouring_program
def user(ctx: Ctx) -> int:
    s = S()
    r = copy_from_user(s, ctx.user_data)
    x: u64 = 0
    r2 = copy_from_user(x, ctx.user_data + 8)
    am[6] = s.f ^ x
    am[7] = u64(s.b) + s.c
    return r * 100 + r2
'''


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("differential")


@pytest.fixture(scope="module")
def hand_written(workdir):
    res, _ = compile_source(HAND_WRITTEN, workdir, "hand")
    obj = BpfObject.open(res.elf)
    obj.load()
    yield obj, res.typed
    obj.close()


CTX_FIELDS = st.tuples(st.one_of(st.integers(0, 2**64 - 1), st.sampled_from([0, 1, 2**63, 2**64 - 1])),
                       st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))


@pytest.mark.parametrize("program", ["arith", "maps", "structs", "user"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fields=CTX_FIELDS, use_buffer=st.booleans(), data=st.binary(min_size=64, max_size=64),
       seed=st.integers(0, 2**32 - 1))
def test_hand_written_programs_agree(hand_written, program, fields, use_buffer, data, seed):
    obj, typed = hand_written
    randomize_maps(obj, typed, random.Random(seed))
    user = UserBuffer(data)
    ud = user.address if use_buffer else fields[0]
    ctx = ud.to_bytes(8, "little") + fields[1].to_bytes(4, "little") + fields[2].to_bytes(4, "little")
    mismatches = run_both(obj, typed, program, ctx, user)
    assert not mismatches, "\n".join(map(str, mismatches))


# ---- regressions: each was a verifier rejection or a wrong result before its fix --------------
REGRESSIONS = {
    # The ctx pointer was moved (`ctx + (c ? 8 : 12)`) before a load: "dereference of modified ctx ptr".
    "ctx_field_select": '''
@iouring_program
def prog(ctx: Ctx) -> int:
    x: u32 = ctx.wait_nr if am[0] else ctx.wait_idx
    am[1] = x
    return 0
''',
    # One load instruction for ctx.user_data and for a map value: "same insn cannot be used with
    # different pointers".
    "ctx_offset0_merged_with_map_load": '''
@iouring_program
def prog(ctx: Ctx) -> int:
    v: u32 = ctx.wait_nr
    x: u64 = ctx.user_data if ctx.wait_idx else am[v]
    am[1] = x
    return 0
''',
    # h[k] = h.get(j, d) stored the update under key j (the key temporary was reused).
    "hash_update_key_clobbered": '''
@iouring_program
def prog(ctx: Ctx) -> int:
    k: u16 = ctx.wait_nr
    hk[k % k] = hk.get(k < 5, 200)
    hm[k] = hm.get(k + 1, 9)
    return 0
''',
    # `(a in m) | (b in m)` became `(p | q) != 0`: "pointer |= pointer prohibited".
    "membership_values_merged": '''
@iouring_program
def prog(ctx: Ctx) -> int:
    s = S()
    v: u8 = ctx.wait_idx
    x: u8 = min((hk.get(3)) == v, ((bool(hm.get(v << 31, 7)) in hk)) | (((v % v) in hk)))
    return (((ctx.wait_nr or v) in hk)) or (s.f) + x
''',
    # range(min(n, C)) with n computed twice: the verifier could not bound the loop
    # ("The sequence of 8193 jumps is too complex").
    "min_bound_evaluated_once": '''
@iouring_program
def prog(ctx: Ctx) -> int:
    v: u8 = ctx.wait_idx
    n: u32 = 0
    for i in range(min(ctx.wait_nr // am[v], 3)):
        am[i] = 5
        n += 1
    return n
''',
    # m[f()] = v: the key's lookup (calling f, which updates hm) came before the value that reads
    # hm; the language, as Python, computes the value first.
    "map_store_value_first": '''
@bpf_function
def bump(k: u32) -> u32:
    hm[k] = 5
    return 0


@iouring_program
def prog(ctx: Ctx) -> int:
    am[bump(ctx.wait_nr)] = ctx.wait_nr in hm
    return 0
''',
    # range() bounds are computed once, as in Python (before: re-read every trip).
    "range_stop_once": '''
@iouring_program
def prog(ctx: Ctx) -> int:
    n: u32 = ctx.wait_nr
    total: u32 = 0
    for i in range(min(n, 6)):
        n -= 1
        total += 1
    return total
''',
}


@pytest.mark.parametrize("name", sorted(REGRESSIONS))
def test_regression_programs_verify_and_agree(workdir, name):
    res, _ = compile_source(PRELUDE + REGRESSIONS[name], workdir, name)
    with BpfObject.open(res.elf) as obj:
        obj.load()
        rng = random.Random(name)
        for ctx in [bytes(16), bytes(8) + (5).to_bytes(4, "little") + (3).to_bytes(4, "little")] + \
                [random_ctx(rng, None) for _ in range(20)]:
            randomize_maps(obj, res.typed, rng)
            mismatches = run_both(obj, res.typed, "prog", ctx)
            assert not mismatches, "\n".join(map(str, mismatches))


REGRESSION_MODULES = sorted((Path(__file__).parent / "regressions").glob("*.py"))


@pytest.mark.parametrize("path", REGRESSION_MODULES, ids=lambda p: p.stem)
def test_regression_modules_verify_and_agree(workdir, path):
    """Reduced generated modules kept whole (their failure needed the surrounding functions)."""
    res, _ = compile_source(path.read_text(), workdir, path.stem)
    with BpfObject.open(res.elf) as obj:
        obj.load()
        rng = random.Random(path.stem)
        for prog in res.typed.programs:
            for _ in range(10):
                randomize_maps(obj, res.typed, rng)
                mismatches = run_both(obj, res.typed, prog.name, random_ctx(rng, None))
                assert not mismatches, "\n".join(map(str, mismatches))


def test_range_bound_is_computed_once_as_in_python(workdir):
    """A user-visible promise, checked on the kernel: the loop runs min(n, 6) times even though
    the body lowers n."""
    res, _ = compile_source(PRELUDE + REGRESSIONS["range_stop_once"], workdir, "range")
    with BpfObject.open(res.elf) as obj:
        obj.load()
        for n, trips in [(0, 0), (3, 3), (5, 5), (9, 6)]:
            retval, _ = obj.programs["prog"].test_run(bytes(8) + n.to_bytes(4, "little") + bytes(4))
            assert retval == trips


# ---- generated programs -------------------------------------------------------------------------
# The same seeds every run (tests/conftest.py); PYBPFURING_FUZZ=1 draws new ones, as when hunting
# for bugs (each one found goes to regressions*/).
@settings(max_examples=GENERATED_MODULES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), size=st.integers(1, 3))
def test_generated_programs_agree(workdir, seed, size):
    source, names = generate(seed, PROGRAMS_PER_MODULE, size)
    res, path = compile_source(source, workdir, "gen")
    obj = BpfObject.open(res.elf)
    try:
        obj.load()  # every generated program must pass the verifier
        rng = random.Random(seed)
        user = UserBuffer(bytes(rng.getrandbits(8) for _ in range(96)))
        for name in names:
            randomize_maps(obj, res.typed, rng)
            for _ in range(3):
                mismatches = run_both(obj, res.typed, name, random_ctx(rng, user), user)
                if mismatches:
                    m = mismatches[0]
                    small = reduce_mismatch(source, name, m.ctx, m.maps_before, path.parent, user)
                    pytest.fail(f"seed {seed} size {size}: {m}\nreduced program:\n{small}")
    finally:
        obj.close()
