"""Data-driven splicing: copy only the records a filter selects, deciding from each record's header.

The input is a file of variable-length records, each an 8-byte header (type u32, length u32) and
`length` payload bytes, back to back. ONE BPF request walks the file: it reads a header, and if the
record's type is in the selection mask it splices the payload file -> pipe -> output (a file, or a
socket: no offset) without the payload ever entering user memory; then it reads the next header at
the offset the length gives. It completes with the payload bytes copied, or the error that stopped
it (-EIO for a record that runs past the end of the file).

    python3 examples/splice_records.py [--records 2000] [--types 0,3] [--to file|socket]
                                       [--backend auto|emulated|bpf_ops]
"""
from __future__ import annotations

import argparse
import ctypes
import os
import random
import shutil
import socket
import sys
import tempfile
import threading
import time

from pybpfuring.errors import PyBpfUringError
from pybpfuring.lang import (EIO, Ctx, Sqe, bpf_function, copy_from_user, i32, i64, iouring_program,
                             prep_read, prep_splice, struct, submit, u32, u64, wait_cqe)

HEADER = 8
MAX_RECORDS = 1 << 20
MAX_PAYLOAD = 1 << 16          # one pipe's default capacity: a payload fits the pipe in one go
MAX_PIECES = 64


@struct
class SpliceArgs:
    fd_in: i32
    fd_out: i32
    pipe_r: i32
    pipe_w: i32
    cq: u32
    stream: u32         # 1: fd_out has no offset (a socket or pipe)
    mask: u64           # record types to keep: bit t for type t (t < 64)
    hdr: u64            # HEADER bytes of user memory
    end: u64            # input size: where the records stop


@struct
class RecHdr:
    type: u32
    length: u32


# The kernel backend's scheduler and the program share BPF's 512-byte stack, and each `Sqe()` in a
# program is its own 64-byte object: the SQEs are made in these real BPF-to-BPF calls instead.
@bpf_function(inline=False)
def read_header(ctx: Ctx, args: SpliceArgs, pos: u64) -> i32:
    sqe = Sqe()
    prep_read(sqe, args.fd_in, args.hdr, HEADER, pos)
    sqe.cq_idx = args.cq
    return submit(ctx, sqe)


@bpf_function(inline=False)
def splice_in(ctx: Ctx, args: SpliceArgs, src: u64, nbytes: u32) -> i32:
    """`nbytes` of the input at `src` into the pipe."""
    sqe = Sqe()
    prep_splice(sqe, args.fd_in, i64(src), args.pipe_w, -1, nbytes, 0)
    sqe.cq_idx = args.cq
    return submit(ctx, sqe)


@bpf_function(inline=False)
def splice_out(ctx: Ctx, args: SpliceArgs, out: u64, nbytes: u32) -> i32:
    """`nbytes` from the pipe to the output (at `out`, unless it is a stream)."""
    sqe = Sqe()
    prep_splice(sqe, args.pipe_r, -1, args.fd_out, -1 if args.stream == 1 else i64(out), nbytes, 0)
    sqe.cq_idx = args.cq
    return submit(ctx, sqe)


@iouring_program
def splice_selected(ctx: Ctx, args: SpliceArgs) -> i32:
    pos: u64 = 0
    out: u64 = 0
    for rec in range(MAX_RECORDS):
        if pos == args.end:
            break
        if pos + HEADER > args.end:
            return -EIO                                   # a header cut short by the end
        read_header(ctx, args, pos)
        cqe = yield wait_cqe(ctx, args.cq)
        if cqe.res != HEADER:
            return cqe.res if cqe.res < 0 else -EIO
        h = RecHdr()
        copy_from_user(h, args.hdr)
        length = h.length
        if length > MAX_PAYLOAD or pos + HEADER + length > args.end:
            return -EIO                                   # a record past the end: corrupt input
        keep = h.type < 64 and (args.mask >> h.type) & 1 == 1
        src = pos + HEADER
        pos = src + length
        if not keep or length == 0:
            continue
        left = length
        for piece in range(MAX_PIECES):       # a payload not page-aligned may take two rounds
            if left == 0:
                break
            splice_in(ctx, args, src, left)
            cqe = yield wait_cqe(ctx, args.cq)
            if cqe.res <= 0:
                return cqe.res if cqe.res < 0 else -EIO
            moved = u32(cqe.res)
            src += u64(moved)
            left -= moved
            for drain in range(MAX_PIECES):      # empty the pipe into the output
                if moved == 0:
                    break
                splice_out(ctx, args, out, moved)
                cqe = yield wait_cqe(ctx, args.cq)
                if cqe.res <= 0:
                    return cqe.res if cqe.res < 0 else -EIO
                moved -= u32(cqe.res)
                out += u64(cqe.res)
        if left != 0:
            return -EIO
    return i32(out)


def build_records(path: str, records: int, seed: int = 1) -> list[tuple[int, bytes]]:
    rng = random.Random(seed)
    recs = [(rng.randrange(8), rng.randbytes(rng.choice([0, 1, 17, 100, 4096, 9000, 65536])))
            for _ in range(records)]
    with open(path, "xb") as f:
        for t, payload in recs:
            f.write(t.to_bytes(4, "little") + len(payload).to_bytes(4, "little") + payload)
    return recs


def python_select(path: str, mask: int) -> bytes:
    """The same job in plain Python: read each header, read and keep the selected payloads."""
    out = bytearray()
    with open(path, "rb") as f:
        while hdr := f.read(HEADER):
            t, n = int.from_bytes(hdr[:4], "little"), int.from_bytes(hdr[4:], "little")
            payload = f.read(n)
            if len(hdr) < HEADER or len(payload) < n:
                raise ValueError("record past the end of the file")
            if t < 64 and mask >> t & 1:
                out += payload
    return bytes(out)


class Splicer:
    """A ring with splice_selected and its pipe; `run()` copies one file's selected records."""

    def __init__(self, backend: str = "auto", engine: str = "auto") -> None:
        from pybpfuring.runtime import Ring
        self.ring = Ring(16, cqs=[4], backend=backend,
                         **({"engine": engine} if backend == "emulated" else {}))
        self.ring.register_programs([splice_selected])
        self.args = self.ring.user_memory(SpliceArgs.ctype)
        self.hdr = self.ring.user_memory(ctypes.c_uint8 * HEADER)
        self.pipe_r, self.pipe_w = os.pipe()

    def run(self, fd_in: int, fd_out: int, mask: int, stream: bool, timeout: float = 60) -> int:
        a = self.args
        a.fd_in, a.fd_out, a.pipe_r, a.pipe_w, a.cq = fd_in, fd_out, self.pipe_r, self.pipe_w, 1
        a.stream, a.mask, a.hdr, a.end = int(stream), mask, ctypes.addressof(self.hdr), \
            os.fstat(fd_in).st_size
        self.ring.prep_bpf(splice_selected, user_data=ctypes.addressof(a))
        self.ring.submit_and_wait(1, timeout=timeout)
        res = self.ring.wait_cqe().res
        if res < 0:
            self._empty_pipe()       # an output error can leave a payload in the pipe
        return res

    def _empty_pipe(self) -> None:
        os.set_blocking(self.pipe_r, False)
        try:
            while os.read(self.pipe_r, 1 << 16):
                pass
        except BlockingIOError:
            pass
        finally:
            os.set_blocking(self.pipe_r, True)

    def close(self) -> None:
        self.ring.close()
        os.close(self.pipe_r)
        os.close(self.pipe_w)


def _read_all(sock: socket.socket, sink: bytearray) -> None:
    while data := sock.recv(1 << 16):
        sink += data


def run(records: int, types: list[int], to: str, backend: str) -> None:
    work = tempfile.mkdtemp(prefix="pybpfuring-splice-")
    try:
        src = os.path.join(work, "records")
        build_records(src, records)
        mask = sum(1 << t for t in types)
        want = python_select(src, mask)
        fd_in = os.open(src, os.O_RDONLY)
        sp = Splicer(backend)
        try:
            if to == "file":
                dst = os.path.join(work, "selected")
                fd_out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                t0 = time.perf_counter()
                res = sp.run(fd_in, fd_out, mask, stream=False)
                dt = time.perf_counter() - t0
                os.close(fd_out)
                with open(dst, "rb") as f:
                    got = f.read()
            else:
                a, b = socket.socketpair()
                sink = bytearray()
                reader = threading.Thread(target=_read_all, args=(b, sink))
                reader.start()
                t0 = time.perf_counter()
                res = sp.run(fd_in, a.fileno(), mask, stream=True)
                dt = time.perf_counter() - t0
                a.shutdown(socket.SHUT_WR)
                reader.join(60)
                a.close()
                b.close()
                got = bytes(sink)
            print(f"{records} records ({os.path.getsize(src):,} B), types {types} -> {to} on "
                  f"{sp.ring.backend}: {res:,} B spliced in {dt * 1e3:.1f} ms")
        finally:
            sp.close()
            os.close(fd_in)
        if res != len(want) or got != want:
            raise SystemExit(f"mismatch: BPF {res} B, Python {len(want)} B")
        print("the output holds exactly the selected payloads, in order")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, default=2000, help="records to generate (default 2000)")
    p.add_argument("--types", default="0,3", help="record types (0..7) to keep (default 0,3)")
    p.add_argument("--to", default="file", choices=["file", "socket"])
    p.add_argument("--backend", default="auto", choices=["auto", "emulated", "bpf_ops"])
    a = p.parse_args(argv)
    try:
        types = [int(t) for t in a.types.split(",") if t]
    except ValueError:
        p.error("--types is a comma-separated list of integers")
    if not 1 <= a.records <= 100_000 or not all(0 <= t < 64 for t in types):
        p.error("--records 1..100000, --types each 0..63")
    try:
        run(a.records, types, a.to, a.backend)
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
