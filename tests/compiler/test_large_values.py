"""Map values too big for a few stores (docs/compiler.md, "Big objects"): zeroing and copying a
4 KiB struct value in place, copying it between maps, and reading a big hash-map value after a
`k in m` test. LLVM's BPF backend would call `memset`/`memcpy` for them, which BPF lacks (a fatal
LLVM error that ended the process); the compiler emits a counted loop of words instead. Each program
loads into this machine's kernel and agrees with the reference evaluator; a big value that would need
a zeroed stack copy (a hash lookup with no `in` test) is a located error."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "kernel"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from diffharness import compile_error, loaded_object, run_both  # noqa: E402
from test_value_range_loops import ctx  # noqa: E402
from pybpfuring.compiler.lower.bulk import INLINE_STORES, inline_ok  # noqa: E402

HEADER = '''
from pybpfuring import Array, ArrayMap, Ctx, HashMap, u8, u16, u32, u64, iouring_program, struct, OK


@struct
class Page:
    n: u64
    data: Array[u8, 4088]


@struct
class Words:            # 4-byte aligned: copied and zeroed in u32 words
    a: u32
    w: Array[u16, 600]


pages = ArrayMap(Page, 4)
hpages = HashMap(u32, Page, 4)
words = ArrayMap(Words, 2)
out = ArrayMap(u64, 4)
'''

PROGRAMS = HEADER + '''

@iouring_program
def scribble(ctx: Ctx) -> int:
    pg = pages[ctx.wait_nr & 3]
    pg.n += 1
    pg.data[ctx.wait_idx % 4088] = u8(ctx.wait_idx)
    pg.data[4087] += 3
    words[0].w[ctx.wait_idx % 600] = u16(ctx.wait_nr)
    return OK


@iouring_program
def copy_and_zero(ctx: Ctx) -> int:
    pages[(ctx.wait_nr + 1) & 3] = pages[ctx.wait_nr & 3]   # 4 KiB copied in place
    pages[ctx.wait_idx & 3] = Page()                        # 4 KiB zeroed in place
    words[1] = words[0]
    if ctx.wait_idx == 7:
        words[0] = Words()
    return OK


@iouring_program
def into_hash(ctx: Ctx) -> int:
    hpages[ctx.wait_nr & 3] = pages[ctx.wait_nr & 3]
    if ctx.wait_idx in hpages:           # one lookup, no zeroed copy for a missing key
        pg = hpages[ctx.wait_idx]
        out[0] = pg.n + u64(pg.data[4087])
    return OK
'''


def test_what_takes_the_loop():
    assert inline_ok(64, 8) and inline_ok(INLINE_STORES * 8, 8)      # an SQE: 8 stores, as before
    assert not inline_ok(4096, 8) and not inline_ok(1204, 4)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    yield from loaded_object(PROGRAMS, tmp_path_factory.mktemp("big"), "big")


def test_big_values_verify_and_agree_with_the_evaluator(loaded):
    obj, typed = loaded
    for n, idx in ((0, 5), (1, 4095), (2, 7), (3, 1), (1, 2), (0, 0), (2, 3)):
        for program in ("scribble", "copy_and_zero", "into_hash"):
            mismatches = run_both(obj, typed, program, ctx(n, idx))
            assert not mismatches, "\n".join(str(m)[:400] for m in mismatches)


def test_copy_and_zero_move_every_byte(loaded):
    obj, _ = loaded
    page = bytes(range(256)) * 16
    obj.maps["pages"][2] = page
    retval, _ = obj.programs["copy_and_zero"].test_run(ctx(2, 2))    # 2 -> 3, then 2 zeroed
    assert retval == 0
    assert obj.maps["pages"][3] == page and obj.maps["pages"][2] == bytes(4096)


def test_a_big_scratch_copy_is_a_located_error(tmp_path):
    err = compile_error(HEADER + '''

@iouring_program
def p(ctx: Ctx) -> int:
    pg = hpages[ctx.wait_nr]
    out[0] = pg.n
    return OK
''', tmp_path)
    text = str(err)
    assert ":25:5:" in text and "pg = hpages[ctx.wait_nr]" in text and "zeroed 4096-byte object" in text and "if k in m" in text
