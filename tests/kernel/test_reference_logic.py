"""The logic of the four 2021 reference programs (examples/reference.py) on this machine's kernel,
compared with the reference evaluator: everything except the io_uring helpers, which the generic
target does not have. Each helper call is replaced by what it leaves behind in a map the test can
read (the SQE a program would submit, the CQE it would emit, a reaped CQE taken from a map the test
fills), so map, ctx, prep_* and user-memory logic (copy_from_user, helper 148 of sleepable syscall
programs) run for real. Programs are re-run after WAIT as the runtime would, from the maps they left.
"""
from __future__ import annotations

import random
import struct as pystruct

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from diffharness import UserBuffer, compile_source, run_once
from pybpfuring.lang.constants import IORING_OP_TIMEOUT, IORING_OP_WRITE, IOSQE_FIXED_FILE
from pybpfuring.runtime.bpf.object import BpfObject

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("bpf_available")]

SOURCE = '''
from pybpfuring import Ctx, Cqe, Sqe, ArrayMap, i32, u32, u64, iouring_program, OK, WAIT
from pybpfuring.lang import IOSQE_FIXED_FILE, copy_from_user, prep_nop, prep_timeout, prep_write

arr = ArrayMap(u64, 256)
submitted = ArrayMap(Sqe, 8)   # what submit(ctx, sqe) would have queued, in order
emitted = ArrayMap(Cqe, 8)     # what emit_cqe would have posted (cq index in .flags)
reapable = ArrayMap(Cqe, 8)    # what reap_cqe(ctx, i, cqe) finds, filled by the test
counts = ArrayMap(u32, 4)      # 0: submitted, 1: emitted, 2: reaped

MAIN_CQ = 0
ARR_SLOT = 0
REENTER_SLOT = 10
FILL_QD = 4
FILL_BLOCKS = 16
FILL_BLOCK_SIZE = 4096 * 4
OFF_IDX = 1
INFL_IDX = 0


@iouring_program
def test(ctx: Ctx) -> int:
    if arr[REENTER_SLOT]:
        return OK
    arr[REENTER_SLOT] = 1
    arr[ARR_SLOT] = 11
    cqe = Cqe()
    n = counts[2]
    cqe = reapable[n]            # reap_cqe: the next CQE of the CQ
    counts[2] = n + 1
    arr[ARR_SLOT + 1] = cqe.user_data
    sqe = Sqe()
    prep_nop(sqe)
    sqe.user_data = 2
    submitted[counts[0]] = sqe   # submit
    counts[0] += 1
    arr[ARR_SLOT + 3] = 21
    arr[ARR_SLOT + 4] = ctx.user_data
    secret: u64 = 0
    r = copy_from_user(secret, ctx.user_data)
    arr[ARR_SLOT + 5] = secret
    arr[ARR_SLOT + 6] = u64(r)
    ctx.wait_idx = MAIN_CQ
    ctx.wait_nr = 1
    return WAIT


@iouring_program
def counting(ctx: Ctx) -> int:
    v = arr[0]
    if v > 10:
        return OK
    arr[0] = v + 1
    cq_idx = 1
    if v != 0:
        n = counts[2]
        arr[1] = reapable[n].user_data
        counts[2] = n + 1
    sqe = Sqe()
    prep_timeout(sqe, ctx.user_data, 0, 0)
    sqe.user_data = 5
    sqe.cq_idx = cq_idx
    submitted[counts[0] & 7] = sqe
    counts[0] += 1
    ctx.wait_idx = cq_idx
    ctx.wait_nr = 1
    return WAIT


@iouring_program
def pingpong(ctx: Ctx) -> int:
    idx: i32 = 0
    copy_from_user(idx, ctx.user_data)
    if arr[idx]:
        n = counts[2]
        it = i32(reapable[n & 7].user_data)
        counts[2] = n + 1
        e = counts[1]
        emitted[e & 7].user_data = it + 1     # emit_cqe(ctx, (idx ^ 1) + 1, it + 1, 0, 0)
        emitted[e & 7].flags = (idx ^ 1) + 1
        counts[1] = e + 1
        if it >= 20:
            arr[5 + idx] = it
            return OK
    else:
        arr[idx] = 1
    ctx.wait_idx = idx + 1
    ctx.wait_nr = 1
    return WAIT


@iouring_program
def write_file(ctx: Ctx) -> int:
    buf = ctx.user_data
    inflight = arr[INFL_IDX]
    cur_off = arr[OFF_IDX]
    for i in range(FILL_QD):
        if inflight:
            counts[2] += 1               # reap_cqe
            inflight -= 1
    sqe = Sqe()
    for i in range(FILL_QD):
        if inflight >= FILL_QD or cur_off >= FILL_BLOCKS:
            break
        prep_write(sqe, 0, buf, FILL_BLOCK_SIZE, cur_off * FILL_BLOCK_SIZE)
        sqe.flags = IOSQE_FIXED_FILE
        sqe.cq_idx = 1
        submitted[counts[0] & 7] = sqe
        counts[0] += 1
        inflight += 1
        cur_off += 1
    arr[OFF_IDX] = cur_off
    arr[INFL_IDX] = inflight
    if not inflight:
        return OK
    ctx.wait_idx = 1
    ctx.wait_nr = inflight
    return WAIT
'''

OK, WAIT = 0, 1
CQE = pystruct.Struct("<QiI")
SQE_OPCODE, SQE_FLAGS, SQE_OFF, SQE_ADDR, SQE_LEN, SQE_USER_DATA, SQE_CQ_IDX = 0, 1, 8, 16, 24, 32, 48


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    res, _ = compile_source(SOURCE, tmp_path_factory.mktemp("reference"), "reference")
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
