"""Run the four 2021 reference programs (examples/reference.py) the way liburing's bpf_v3
`examples/bpf/uring.c` test1..test4 do, and print what they did.

    python3 examples/run_reference.py [--backend emulated]
    pybpfuring run examples/run_reference.py

Each test gets a fresh ring set up like `ring_prep()`: 2 extra CQs of 128 entries, the four
programs registered as indices 0..3, sharing the array map `arr`.
"""
from __future__ import annotations

import ctypes
import os
import sys
import tempfile
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import reference  # noqa: E402  (the programs, next to this file)
from pybpfuring.runtime import Cqe, Ring, Timespec, prep_nop  # noqa: E402

EXTRA_CQS = [128, 128]
PROGRAMS = [reference.test, reference.counting, reference.pingpong, reference.write_file]


@dataclass
class Result:
    name: str
    cq0: list[Cqe] = field(default_factory=list)
    slots: list[int] = field(default_factory=list)
    extra: dict[str, object] = field(default_factory=dict)


def ring_prep(backend: str, engine: str = "auto") -> Ring:
    ring = Ring(8, cqs=EXTRA_CQS, backend=backend, engine=engine)
    ring.register_programs(PROGRAMS)
    return ring


def _wait_for(ring: Ring, user_data: int) -> list[Cqe]:
    """CQ 0's CQEs up to and including the one with `user_data` (the request's completion)."""
    seen = []
    while True:
        cqe = ring.wait_cqe(0)
        seen.append(cqe)
        if cqe.user_data == user_data:
            return seen


def test1(backend: str = "auto", engine: str = "auto") -> Result:
    """Maps, emit/reap, a NOP submitted by BPF, user memory, a wait on the main CQ."""
    with ring_prep(backend, engine) as ring:
        # The program copy_to_user's a new secret: memory the ring provides is writable by
        # programs on every backend (on bpf_ops only the ring's MEM region is).
        secret = ring.user_memory(ctypes.c_uint64)
        secret.value = 29
        addr = ctypes.addressof(secret)
        ring.prep_bpf(reference.test, user_data=addr)
        ring.submit_and_wait(1)
        cq0 = _wait_for(ring, addr)
        while ring.in_flight():          # the NOP it submitted may complete after it
            cq0.append(ring.wait_cqe(0))
        cq0 += list(ring.cqes(0))
        slots = [reference.arr[i] for i in range(11)]
        return Result("test", cq0, slots, {"secret": secret.value, "user_data": addr})


def test2(backend: str = "auto", engine: str = "auto") -> Result:
    """Ticks 11 times on 200 ms timeouts that complete on CQ 1."""
    ts = Timespec(tv_sec=0, tv_nsec=200_000_000)  # CountingCtx: a Timespec at offset 0
    with ring_prep(backend, engine) as ring:
        addr = ctypes.addressof(ts)
        ring.prep_bpf(reference.counting, user_data=addr)
        ring.submit()
        cq0 = _wait_for(ring, addr)
        return Result("counting", cq0, [reference.arr[i] for i in range(2)],
                      {"runs": ring.stats().program_runs})


def test3(backend: str = "auto", engine: str = "auto") -> Result:
    """Two requests bounce a counter through CQs 1 and 2 until it reaches 20."""
    idx = (ctypes.c_int32 * 2)(0, 1)
    with ring_prep(backend, engine) as ring:
        ring.prep_bpf(reference.pingpong, user_data=ctypes.addressof(idx) + 0)
        ring.prep_bpf(reference.pingpong, user_data=ctypes.addressof(idx) + 4)
        sqe = ring.get_sqe(cq_idx=1)
        assert sqe is not None
        prep_nop(sqe)
        sqe.user_data = 0
        ring.submit_and_wait(2)
        cq0 = [ring.wait_cqe(0), ring.wait_cqe(0)]
        return Result("pingpong", cq0, [reference.arr[i] for i in range(7)])


FILL = 0xAE
FILE_SIZE = reference.FILL_BLOCKS * reference.FILL_BLOCK_SIZE


def test4(backend: str = "auto", directory: str | None = None, engine: str = "auto") -> Result:
    """Writes 256 KiB of 0xae to fixed file 0 with 4 writes of 16 KiB in flight; reads it back."""
    buf = (ctypes.c_uint8 * FILE_SIZE).from_buffer(bytearray([FILL]) * FILE_SIZE)
    fd, path = tempfile.mkstemp(prefix="bpf_file_", dir=directory)
    os.unlink(path)
    try:
        with ring_prep(backend, engine) as ring:
            ring.register_files([fd])
            addr = ctypes.addressof(buf)
            ring.prep_bpf(reference.write_file, user_data=addr)
            ring.submit()
            cq0 = _wait_for(ring, addr)
            slots = [reference.arr[i] for i in range(2)]
            runs = ring.stats().program_runs
        data = os.pread(fd, FILE_SIZE + 1, 0)
    finally:
        os.close(fd)
    return Result("write_file", cq0, slots,
                  {"size": len(data), "all_0xae": data == bytes([FILL]) * FILE_SIZE, "runs": runs})


def main(argv: list[str]) -> int:
    backend = "auto"
    if argv[:1] == ["--backend"] and len(argv) > 1:
        backend = argv[1]
    r1 = test1(backend)
    print(f"test1: CQ0 = {[(c.user_data, c.res) for c in r1.cq0]}")
    print(f"       map slots 0..5 = {r1.slots[:6]} (user_data = {r1.extra['user_data']:#x}), "
          f"slot 10 = {r1.slots[10]}, new secret = {r1.extra['secret']}")
    r2 = test2(backend)
    print(f"test2: counting ticked {r2.slots[0]} times, completion res = {r2.cq0[-1].res}")
    r3 = test3(backend)
    print(f"test3: pingpong final iters arr[5] = {r3.slots[5]}, arr[6] = {r3.slots[6]}, "
          f"completions = {[(c.res) for c in r3.cq0]}")
    r4 = test4(backend)
    print(f"test4: write_file wrote {r4.extra['size']} bytes, all 0xae: {r4.extra['all_0xae']}, "
          f"completion res = {r4.cq0[-1].res}")
    ok = (r1.slots[:6] == [11, 4, 5, 21, r1.extra["user_data"], 29] and r1.slots[10] == 1
          and r1.extra["secret"] == 31 and r2.slots[0] == 11 and r3.slots[5] >= 20
          and r3.slots[6] >= 20 and r4.extra["all_0xae"] and r4.extra["size"] == FILE_SIZE)
    print("all as in the 2021 tests" if ok else "MISMATCH with the 2021 results")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
