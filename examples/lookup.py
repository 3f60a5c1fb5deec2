"""Dependent-read lookups in an on-disk B+tree: the database case, one BPF request per lookup.

The index is a B+tree of 4 KiB pages built by this example (`build_tree`); page 0 is the root. A
page is laid out for a reader that copies little: a 136-byte head (kind, count, and 16 "fence"
keys, the first key of each run of 16 keys), then the sorted keys (u64), then the values (u64) - an inner
page's value is a child page number, a leaf's the record's value. One IORING_OP_BPF request per
lookup reads the root, copies its head (136 bytes), picks the run of 16 keys by the fences, copies
that run (128 bytes), finds the key in it, copies the one value (8 bytes): three copies per page, not
the ten of a binary search probing the page in place. It submits the read of the child page, waits
for it (`cqe = yield wait_cqe(ctx, cq)`) and goes on down to the leaf; the request completes with
the value, or -ENOENT when the key is absent. User space hands out lookups and reads one CQE per
lookup; `--inflight` lookups run at once, each on its own CQ.

    python3 examples/lookup.py [--keys 200000] [--lookups 4096] [--inflight 1|16|256]
                               [--backend auto|emulated|bpf_ops]
"""
from __future__ import annotations

import argparse
import ctypes
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence

from pybpfuring.errors import PyBpfUringError
from pybpfuring.lang import (EIO, ENOENT, Array, Ctx, Sqe, bpf_function, copy_from_user, i32,
                             i64, iouring_program, prep_read, struct, submit, u32, u64, wait_cqe)

PAGE = 4096
FENCES = 16                              # runs of keys per page, each named by its first key
RUN = 16                                 # keys per run (128 bytes: one copy onto the stack)
HEAD = 8 + 8 * FENCES                    # kind u32, count u32, fences u64[16]
MAX_ENTRIES = (PAGE - HEAD) // 16        # 247 keys and 247 values fill a page
KEYS_AT = HEAD
VALUES_AT = HEAD + 8 * MAX_ENTRIES
LEAF_FILL = 200                          # keys per page the builder writes (room to grow)
MAX_DEPTH = 8                            # 200**8 keys: deeper trees are refused as corrupt
LEAF, INNER = 1, 2
VALUE_LIMIT = 1 << 31                    # values travel as a CQE's i32 res
NO_FENCE = (1 << 64) - 1
WORDS = 1 + FENCES                       # the one stack buffer: the head, then a run of keys
FOUND = 1 << 40                          # search_page's "leaf value follows" mark


@struct
class LookupArgs:
    fd: i32
    cq: u32       # this lookup's own CQ: its page reads complete there
    key: u64
    buf: u64      # PAGE bytes of user memory for the page being searched


# The stack is small on the kernel backend: its scheduler calls the program, and together they get
# BPF's 512 bytes. So the program keeps only scalars, and the SQE and the page search live in the
# frames of two real BPF-to-BPF calls (not inlined), which are never on the stack at the same time.
@bpf_function(inline=False)
def read_page(ctx: Ctx, args: LookupArgs, page: u64) -> i32:
    sqe = Sqe()
    prep_read(sqe, args.fd, args.buf, PAGE, page * PAGE)
    sqe.cq_idx = args.cq
    return submit(ctx, sqe)


@bpf_function(inline=False)
def search_page(args: LookupArgs) -> i64:
    """The page now in args.buf: -errno, or FOUND + the leaf's value, or the child page to read."""
    w = Array[u64, WORDS]()
    copy_from_user(w, args.buf)                   # w[0]: kind | count << 32; w[1..16]: fences
    kind = u32(w[0])
    count = u32(w[0] >> 32)
    if count == 0 or count > MAX_ENTRIES or (kind != LEAF and kind != INNER):
        return -EIO                               # not a page of this tree
    if w[1] > args.key:
        return -ENOENT                            # below the page's (so the subtree's) first key
    run: u32 = 0                                  # the last run whose first key <= args.key
    for f in range(1, FENCES):
        if u32(f) * RUN >= count or w[1 + f] > args.key:
            break
        run = f
    copy_from_user(w, args.buf + KEYS_AT + u64(run) * RUN * 8)        # w[0..15]: the run's keys
    n = min(count - run * RUN, RUN)
    i: u32 = 0                                    # the last key <= args.key in the run
    for j in range(1, RUN):
        if u32(j) >= n or w[j] > args.key:
            break
        i = j
    if kind == LEAF and w[i] != args.key:
        return -ENOENT
    value: u64 = 0
    copy_from_user(value, args.buf + VALUES_AT + u64(run * RUN + i) * 8)
    if kind == LEAF:
        return FOUND + i64(value & 0x7FFFFFFF)
    return i64(value & 0xFFFFFFFF)                # a page number (the file has < 2**32 pages)


@iouring_program
def btree_lookup(ctx: Ctx, args: LookupArgs) -> i32:
    page: u64 = 0
    for level in range(MAX_DEPTH):
        read_page(ctx, args, page)
        cqe = yield wait_cqe(ctx, args.cq)
        if cqe.res != PAGE:
            return cqe.res if cqe.res < 0 else -EIO
        r = search_page(args)
        if r < 0:
            return i32(r)
        if r >= FOUND:
            return i32(r - FOUND)
        page = u64(r)
    return -EIO                                   # deeper than any tree the builder makes


# --- the index: built here, searched by the program and by plain Python ----------------------------
def build_tree(path: str, keys: int, seed: int = 1) -> dict[int, int]:
    """Write a B+tree of `keys` random keys to `path` (a new file); returns the key -> value dict."""
    rng = random.Random(seed)
    items: dict[int, int] = {}
    while len(items) < keys:
        items[rng.getrandbits(63) | 1] = rng.randrange(1, VALUE_LIMIT)   # odd keys: evens are absent
    pairs = sorted(items.items())
    levels: list[list[tuple[int, list[tuple[int, int]]]]] = []   # per level: (kind, pairs) pages
    level = [(LEAF, pairs[i:i + LEAF_FILL]) for i in range(0, len(pairs), LEAF_FILL)] or [(LEAF, [])]
    levels.append(level)
    while len(level) > 1:          # an inner page points at LEAF_FILL children by their first keys
        children = list(range(len(level)))
        # Each child is named by its smallest key (an inner page's first pair carries it).
        level = [(INNER, [(level[c][1][0][0], c) for c in children[i:i + LEAF_FILL]])
                 for i in range(0, len(children), LEAF_FILL)]
        levels.append(level)
    levels.reverse()                              # root first: page numbers go top-down
    first = [0]
    for lv in levels[:-1]:
        first.append(first[-1] + len(lv))
    out = bytearray()
    for depth, lv in enumerate(levels):
        for kind, entries in lv:
            ks = [k for k, _ in entries]
            vs = [v + first[depth + 1] if kind == INNER else v for _, v in entries]
            out += page_bytes(kind, ks, vs)
    with open(path, "xb") as f:                   # never over an existing file
        f.write(out)
    return items


def page_bytes(kind: int, keys: list[int], values: list[int]) -> bytes:
    """One page: head (kind, count, fences), keys, values; zero padding."""
    fences = [keys[r * RUN] if r * RUN < len(keys) else NO_FENCE for r in range(FENCES)]
    page = bytearray(PAGE)
    page[0:HEAD] = (kind.to_bytes(4, "little") + len(keys).to_bytes(4, "little")
                    + b"".join(f.to_bytes(8, "little") for f in fences))
    for j, (k, v) in enumerate(zip(keys, values)):
        page[KEYS_AT + 8 * j:KEYS_AT + 8 * j + 8] = k.to_bytes(8, "little")
        page[VALUES_AT + 8 * j:VALUES_AT + 8 * j + 8] = v.to_bytes(8, "little")
    return bytes(page)


def _u64(data: bytes, at: int) -> int:
    return int.from_bytes(data[at:at + 8], "little")


def python_lookup(fd: int, key: int) -> int:
    """The same search with os.pread, one syscall per page: the oracle and the baseline."""
    page = 0
    for _ in range(MAX_DEPTH):
        data = os.pread(fd, PAGE, page * PAGE)
        if len(data) != PAGE:
            return -EIO
        kind = int.from_bytes(data[0:4], "little")
        count = int.from_bytes(data[4:8], "little")
        if not 0 < count <= MAX_ENTRIES or kind not in (LEAF, INNER):
            return -EIO
        lo, hi = 0, count                          # the last key <= key, by bisection
        if _u64(data, KEYS_AT) > key:
            return -ENOENT
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if _u64(data, KEYS_AT + 8 * mid) <= key:
                lo = mid
            else:
                hi = mid
        if kind == LEAF:
            return _u64(data, VALUES_AT + 8 * lo) if _u64(data, KEYS_AT + 8 * lo) == key else -ENOENT
        page = _u64(data, VALUES_AT + 8 * lo)
    return -EIO


def tree_depth(path: str) -> int:
    fd = os.open(path, os.O_RDONLY)
    try:
        depth, page = 1, 0
        while int.from_bytes(os.pread(fd, 4, page * PAGE), "little") == INNER:
            page = _u64(os.pread(fd, 8, page * PAGE + VALUES_AT), 0)
            depth += 1
        return depth
    finally:
        os.close(fd)


def query_keys(items: dict[int, int], n: int, missing: float, seed: int = 2) -> list[int]:
    """`n` keys to look up: present ones, and a share `missing` of absent (even) ones."""
    rng = random.Random(seed)
    present = list(items)
    return [rng.getrandbits(62) << 1 if rng.random() < missing else rng.choice(present)
            for _ in range(n)]


# --- running the lookups on a Ring -----------------------------------------------------------------
def bpf_lookups(ring, fd: int, keys: Sequence[int], inflight: int) -> list[int]:
    """Look every key up with `inflight` requests at once (slot i on CQ i + 1); results in order."""
    slots = []
    for i in range(inflight):
        buf = ring.user_memory(ctypes.c_uint8 * PAGE)
        args = ring.user_memory(LookupArgs.ctype)
        args.fd, args.cq, args.buf = fd, i + 1, ctypes.addressof(buf)
        slots.append((args, buf))
    by_addr = {ctypes.addressof(a): i for i, (a, _) in enumerate(slots)}
    results = [0] * len(keys)
    owner = [-1] * inflight                       # which key each slot is looking up
    nxt = 0
    for i in range(min(inflight, len(keys))):
        slots[i][0].key, owner[i] = keys[nxt], nxt
        ring.prep_bpf(btree_lookup, user_data=ctypes.addressof(slots[i][0]))
        nxt += 1
    done = 0
    while done < len(keys):
        ring.submit_and_wait(1)
        while ring.cq_ready():                    # every lookup that finished in this batch
            cqe = ring.wait_cqe()
            slot = by_addr[cqe.user_data]
            results[owner[slot]] = cqe.res
            done += 1
            if nxt < len(keys):                   # the slot's next lookup, submitted with the batch
                slots[slot][0].key, owner[slot] = keys[nxt], nxt
                ring.prep_bpf(btree_lookup, user_data=cqe.user_data)
                nxt += 1
    return results


def open_ring(inflight: int, backend: str, engine: str = "auto"):
    from pybpfuring.runtime import Ring
    ring = Ring(max(64, inflight), cqs=[2] * inflight, backend=backend,
                **({"engine": engine} if backend == "emulated" else {}))
    ring.register_programs([btree_lookup])
    return ring


def run(keys: int, lookups: int, inflight: int, backend: str, missing: float = 0.1) -> list[int]:
    work = tempfile.mkdtemp(prefix="pybpfuring-lookup-")
    try:
        path = os.path.join(work, "index")
        items = build_tree(path, keys)
        queries = query_keys(items, lookups, missing)
        fd = os.open(path, os.O_RDONLY)
        try:
            with open_ring(inflight, backend) as ring:
                t0 = time.perf_counter()
                got = bpf_lookups(ring, fd, queries, inflight)
                dt = time.perf_counter() - t0
                print(f"{lookups} lookups, {inflight} in flight, tree of {keys} keys "
                      f"(depth {tree_depth(path)}, {os.path.getsize(path) // PAGE} pages) on "
                      f"{ring.backend}: {lookups / dt:,.0f} lookups/s")
            want = [python_lookup(fd, k) for k in queries]
        finally:
            os.close(fd)
        model = [items.get(k, -ENOENT) for k in queries]
        if got != want or want != model:
            bad = next(i for i in range(lookups) if got[i] != model[i] or want[i] != model[i])
            raise SystemExit(f"mismatch at lookup {bad} (key {queries[bad]:#x}): BPF {got[bad]}, "
                             f"os.pread {want[bad]}, dict {model[bad]}")
        print(f"all {lookups} results match the os.pread lookup and the dict "
              f"({sum(r == -ENOENT for r in got)} keys absent: -ENOENT)")
        return got
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--keys", type=int, default=200_000, help="keys in the tree (default 200000)")
    p.add_argument("--lookups", type=int, default=4096, help="lookups to run (default 4096)")
    p.add_argument("--inflight", type=int, default=16, help="lookups in flight at once, each "
                   "on its own CQ (1..1024, default 16)")
    p.add_argument("--missing", type=float, default=0.1, help="share of absent keys (default 0.1)")
    p.add_argument("--backend", default="auto", choices=["auto", "emulated", "bpf_ops"])
    a = p.parse_args(argv)
    if not 1 <= a.inflight <= 1024 or not 1 <= a.keys <= 10_000_000 or a.lookups < 1 \
            or not 0 <= a.missing <= 1:
        p.error("--inflight 1..1024, --keys 1..10000000, --lookups >= 1, --missing 0..1")
    try:
        run(a.keys, a.lookups, a.inflight, a.backend, a.missing)
    except (ValueError, PyBpfUringError) as e:
        if a.backend == "auto":
            raise
        # Where the kernel backend cannot run this (its 256 KiB of user memory per ring, a
        # verifier limit), say so instead of a traceback: docs/usecases.md lists these limits.
        print(f"{p.prog} cannot run on backend {a.backend}: {e}")
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
