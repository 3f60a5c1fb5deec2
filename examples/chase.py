"""Dependent reads as a generator program: follow a chain of 4 KiB records through a file.

Each lookup is ONE IORING_OP_BPF request: the program reads a record, looks at its header, submits
the read of the next record and waits for it (`cqe = yield wait_cqe(ctx, cq)`), until the chain
ends; the request then completes with the value of the last record (or an error). The loop, the
hop counter and the record index live in the request's frame across the waits; nothing goes back
to user space between hops. User space only starts the lookups and reads one CQE per lookup.

    python3 examples/chase.py [--chains 16] [--hops 50] [--backend auto|emulated|bpf_ops]
"""
from __future__ import annotations

import argparse
import ctypes
import os
import random
import shutil
import sys
import tempfile

from pybpfuring.lang import (E2BIG, EFAULT, EIO, WAIT, Cqe, Ctx, Sqe, complete, copy_from_user, i32,
                             iouring_program, prep_read, reap_cqe, request_state, struct, submit,
                             u32, u64, wait_cqe)

RECORD = 4096
MAX_HOPS = 64
END = 0xFFFFFFFF


@struct
class Args:
    fd: i32
    start: u32
    buf: u64      # RECORD bytes of user memory for this lookup
    cq: u32       # the lookup's own CQ: its reads complete there, no other request reaps them


@struct
class RecHead:
    next: u32     # index of the next record, END at the chain's end
    pad: u32
    value: u64


@iouring_program
def chase(ctx: Ctx, args: Args) -> i32:   # args copied from ctx.user_data once, at the start
    idx = args.start
    for hop in range(MAX_HOPS):
        sqe = Sqe()
        prep_read(sqe, args.fd, args.buf, RECORD, u64(idx) * RECORD)
        sqe.cq_idx = args.cq
        submit(ctx, sqe)
        cqe = yield wait_cqe(ctx, args.cq)
        if cqe.res != RECORD:
            return cqe.res if cqe.res < 0 else -EIO   # the request completes with this res
        rec = RecHead()
        copy_from_user(rec, args.buf)
        if rec.next == END:
            return i32(rec.value)
        idx = rec.next
    return -E2BIG


@struct
class ChaseState:
    idx: u32
    hop: u32
    fd: i32
    cq: u32
    buf: u64


@iouring_program
def chase_classic(ctx: Ctx) -> int:
    """The same lookup written by hand: a state machine in request_state, one step per run."""
    st = request_state(ctx, ChaseState)
    if ctx.runs == 0:
        args = Args()
        if copy_from_user(args, ctx.user_data) != 0:
            return complete(ctx, -EFAULT)
        st.idx = args.start
        st.fd = args.fd
        st.cq = args.cq
        st.buf = args.buf
    else:
        cqe = Cqe()
        if reap_cqe(ctx, st.cq, cqe) != 0:      # woken without a CQE: wait again
            ctx.wait_idx = st.cq
            ctx.wait_nr = 1
            return WAIT
        if cqe.res != RECORD:
            return complete(ctx, cqe.res if cqe.res < 0 else -EIO)
        rec = RecHead()
        copy_from_user(rec, st.buf)
        if rec.next == END:
            return complete(ctx, i32(rec.value))
        st.idx = rec.next
        st.hop += 1
        if st.hop >= MAX_HOPS:
            return complete(ctx, -E2BIG)
    sqe = Sqe()
    prep_read(sqe, st.fd, st.buf, RECORD, u64(st.idx) * RECORD)
    sqe.cq_idx = st.cq
    submit(ctx, sqe)
    ctx.wait_idx = st.cq
    ctx.wait_nr = 1
    return WAIT


def build_file(path: str, chains: int, hops: int, rng: random.Random) -> list[tuple[int, int]]:
    """Records in a random order; chain c visits `hops` of them. Returns (start, last value)."""
    order = list(range(chains * hops))
    rng.shuffle(order)
    data = bytearray(RECORD * chains * hops)
    expected = []
    for c in range(chains):
        visit = order[c * hops:(c + 1) * hops]
        for h, rec in enumerate(visit):
            nxt = visit[h + 1] if h + 1 < hops else END
            value = rng.randrange(1, 1 << 30)
            data[rec * RECORD:rec * RECORD + 16] = (nxt.to_bytes(4, "little") + bytes(4)
                                                    + value.to_bytes(8, "little"))
        expected.append((visit[0], value))
    with open(path, "wb") as f:
        f.write(data)
    return expected


def python_chase(path: str, start: int) -> int:
    """The same lookup with plain os.pread: the oracle."""
    fd = os.open(path, os.O_RDONLY)
    try:
        idx = start
        for _ in range(MAX_HOPS):
            rec = os.pread(fd, 16, idx * RECORD)
            nxt, value = int.from_bytes(rec[:4], "little"), int.from_bytes(rec[8:16], "little")
            if nxt == END:
                return ctypes.c_int32(value).value
            idx = nxt
        return -E2BIG
    finally:
        os.close(fd)


def run(chains: int, hops: int, backend: str, seed: int = 1, style: str = "generator") -> list[int]:
    from pybpfuring.runtime import Ring
    work = tempfile.mkdtemp(prefix="pybpfuring-chase-")
    try:
        path = os.path.join(work, "records")
        expected = build_file(path, chains, hops, random.Random(seed))
        fd = os.open(path, os.O_RDONLY)
        try:
            with Ring(64, cqs=[4] * chains, backend=backend) as ring:
                prog = chase if style == "generator" else chase_classic
                ring.register_programs([prog])
                keep = []
                for c, (start, _) in enumerate(expected):
                    buf = ring.user_memory(ctypes.c_uint8 * RECORD)
                    args = ring.user_memory(Args.ctype)
                    args.fd, args.start, args.buf, args.cq = fd, start, ctypes.addressof(buf), c + 1
                    keep += [buf, args]
                    ring.prep_bpf(prog, user_data=ctypes.addressof(args), cq_idx=0)
                ring.submit()
                results = {}
                while len(results) < chains:
                    cqe = ring.wait_cqe()
                    results[cqe.user_data] = cqe.res
                got = [results[ctypes.addressof(keep[2 * c + 1])] for c in range(chains)]
                print(f"{chains} lookups of {hops} dependent reads ({style}) on {ring.backend}: "
                      f"{ring.backend_reason}")
        finally:
            os.close(fd)
        want = [python_chase(path, start) for start, _ in expected]
        if got != want:
            raise SystemExit(f"mismatch: BPF {got[:8]}... vs Python {want[:8]}...")
        print(f"all {chains} results match plain os.pread (first: {got[0]})")
        return got
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--chains", type=int, default=16, help="lookups in flight at once (default 16)")
    p.add_argument("--hops", type=int, default=50, help=f"dependent reads per lookup (<= {MAX_HOPS})")
    p.add_argument("--backend", default="auto", choices=["auto", "emulated", "bpf_ops"])
    p.add_argument("--style", default="generator", choices=["generator", "classic"],
                   help="the generator program, or its hand-written twin (same results)")
    a = p.parse_args(argv)
    if not 1 <= a.hops <= MAX_HOPS or not 1 <= a.chains <= 1024:
        p.error(f"--hops must be 1..{MAX_HOPS} and --chains 1..1024")
    run(a.chains, a.hops, a.backend, style=a.style)
    return 0


if __name__ == "__main__":
    sys.exit(main())
