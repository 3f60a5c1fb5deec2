"""The logic of the four 2021 reference programs (examples/reference.py) on this machine's kernel,
compared with the reference evaluator: everything except the io_uring helpers, which the generic
target does not have. The programs are examples/reference_generic.py: each helper call is replaced
by what it leaves behind in a map the test can read (the SQE a program would submit, the CQE it would
emit, a reaped CQE taken from a map the test fills), so map, ctx, prep_* and user-memory logic
(copy_from_user, helper 148 of sleepable syscall programs) run for real. Programs are re-run after WAIT as the runtime would, from the maps they left.
"""
from __future__ import annotations

import random
import struct as pystruct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from diffharness import UserBuffer, run_once
from pybpfuring.compiler.driver import compile_full, load_module, programs_in
from pybpfuring.lang.constants import IORING_OP_TIMEOUT, IORING_OP_WRITE, IOSQE_FIXED_FILE
from pybpfuring.loader.object import BpfObject

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("bpf_available")]

# The programs live in examples/ so bench/verifier.py measures the same ones.
REFERENCE_GENERIC = Path(__file__).resolve().parents[2] / "examples" / "reference_generic.py"

OK, WAIT = 0, 1
CQE = pystruct.Struct("<QiI")
SQE_OPCODE, SQE_FLAGS, SQE_OFF, SQE_ADDR, SQE_LEN, SQE_USER_DATA, SQE_CQ_IDX = 0, 1, 8, 16, 24, 32, 48


@pytest.fixture(scope="module")
def reference():
    res = compile_full(programs_in(load_module(REFERENCE_GENERIC)), "generic")
    obj = BpfObject.open(res.elf)
    obj.load()
    yield obj, res.typed
    obj.close()


def reset(obj: BpfObject, cqe_user_data: list[int]) -> None:
    for name in ("arr", "submitted", "emitted", "counts", "reapable"):
        m = obj.maps[name]
        zero = 0 if isinstance(m[0], int) else bytes(len(m[0]))
        for k in range(m.definition.max_entries):
            m[k] = zero
    for i, ud in enumerate(cqe_user_data[:8]):
        obj.maps["reapable"][i] = CQE.pack(ud, 0, 0)


def run_until_ok(obj, typed, program: str, ctx: bytes, user: UserBuffer | None,
                 max_runs: int = 40) -> int:
    """Run as the runtime would (again after each WAIT), comparing every run with the evaluator;
    the number of runs until OK (max_runs if it never returned OK)."""
    for n in range(1, max_runs + 1):
        retval, mismatches = run_once(obj, typed, program, ctx, user)
        assert not mismatches, f"run {n}:\n" + "\n".join(map(str, mismatches))
        if retval == OK:
            return n
    return max_runs


def ctx_for(user_data: int) -> bytes:
    return user_data.to_bytes(8, "little") + bytes(8)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(secret=st.integers(0, 2**64 - 1), reaped=st.lists(st.integers(0, 2**64 - 1), min_size=8, max_size=8),
       readable=st.booleans())
def test_test_program(reference, secret, reaped, readable):
    obj, typed = reference
    reset(obj, reaped)
    user = UserBuffer(secret.to_bytes(8, "little"))
    ctx = ctx_for(user.address if readable else 0xFFFF_8000_0000_0000)
    assert run_until_ok(obj, typed, "test", ctx, user) == 2   # WAIT once, then OK
    arr = obj.maps["arr"]
    assert arr[1] == reaped[0] and arr[5] == (secret if readable else 0)
    assert arr[6] == (0 if readable else 2**64 - 14)           # copy_from_user: 0 or -EFAULT
    sqe = obj.maps["submitted"][0]
    assert sqe[SQE_OPCODE] == 0 and int.from_bytes(sqe[32:40], "little") == 2   # a NOP, user_data 2


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ts_addr=st.integers(0, 2**64 - 1), reaped=st.lists(st.integers(0, 2**64 - 1), min_size=8, max_size=8))
def test_counting_program(reference, ts_addr, reaped):
    obj, typed = reference
    reset(obj, reaped)
    assert run_until_ok(obj, typed, "counting", ctx_for(ts_addr), None) == 12  # 11 ticks, then OK
    assert obj.maps["arr"][0] == 11 and obj.maps["counts"][0] == 11
    sqe = obj.maps["submitted"][2]
    assert sqe[SQE_OPCODE] == IORING_OP_TIMEOUT
    assert int.from_bytes(sqe[SQE_ADDR:SQE_ADDR + 8], "little") == ts_addr
    assert int.from_bytes(sqe[SQE_CQ_IDX:SQE_CQ_IDX + 2], "little") == 1


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(idx=st.sampled_from([0, 1, 2, 7, -1, 300]), start=st.integers(-5, 30),
       reaped=st.lists(st.integers(0, 2**64 - 1), min_size=7, max_size=7))
def test_pingpong_program(reference, idx, start, reaped):
    obj, typed = reference
    reset(obj, [start % 2**64] + reaped)
    user = UserBuffer(pystruct.pack("<i", idx) + bytes(4))
    runs = run_until_ok(obj, typed, "pingpong", ctx_for(user.address), user, max_runs=4)
    if 0 <= idx < 256 and start >= 20:
        assert runs == 2 and obj.maps["arr"][5 + idx] == start   # arm, then the bounce ends it


@pytest.mark.parametrize("seed", range(3))
def test_write_file_program(reference, seed):
    obj, typed = reference
    reset(obj, [])
    rng = random.Random(seed)
    buf = rng.getrandbits(64)
    runs = run_until_ok(obj, typed, "write_file", ctx_for(buf), None)
    assert runs == 5                                  # 16 blocks, 4 in flight per run
    assert obj.maps["arr"][1] == 16 and obj.maps["counts"][0] == 16
    for k in range(8):
        sqe = obj.maps["submitted"][k]
        assert sqe[SQE_OPCODE] == IORING_OP_WRITE and sqe[SQE_FLAGS] == IOSQE_FIXED_FILE
        assert int.from_bytes(sqe[SQE_ADDR:SQE_ADDR + 8], "little") == buf
        assert int.from_bytes(sqe[SQE_LEN:SQE_LEN + 4], "little") == 16384
