"""copy_{from,to}_user on the native engine: memory the ring keeps valid (Ring.user_memory, registered
buffers) is copied with plain loads and stores; any other address still takes the checked path, so a
bad pointer completes its request with -EFAULT and the ring stays usable. The counts come from the
loop itself (NativeBackend.copy_counts), so each test sees which path served its copies."""
from __future__ import annotations

import ctypes
import errno
import os

import pytest

from pybpfuring.lang import Ctx, complete, copy_from_user, copy_to_user, iouring_program, u64
from pybpfuring.runtime import Ring
from pybpfuring.runtime.backends.native import unavailable_reason

REASON = unavailable_reason()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"native loop unavailable: {REASON}")


@iouring_program
def add_one(ctx: Ctx) -> int:
    """*user_data += 1, through copy_from_user then copy_to_user."""
    v = u64(0)
    if copy_from_user(v, ctx.user_data) != 0:
        return complete(ctx, -14)
    v += 1
    if copy_to_user(ctx.user_data, v) != 0:
        return complete(ctx, -14)
    return complete(ctx, 0)


def _run(ring: Ring, user_data: int) -> int:
    ring.prep_bpf(add_one, user_data=user_data)
    ring.submit()
    return ring.wait_cqe().res


def test_user_memory_copies_need_no_system_call() -> None:
    with Ring(8, backend="emulated", engine="native") as ring:
        ring.register_programs([add_one])
        cell = ring.user_memory(ctypes.c_uint64)
        cell.value = 41
        assert _run(ring, ctypes.addressof(cell)) == 0
        assert cell.value == 42
        assert ring._backend().copy_counts() == (2, 0)


def test_registered_buffer_copies_need_no_system_call() -> None:
    with Ring(8, backend="emulated", engine="native") as ring:
        ring.register_programs([add_one])
        buf = bytearray(4096)
        ring.register_buffers([buf])
        addr = ctypes.addressof(ctypes.c_char.from_buffer(buf, 8))
        buf[8] = 7
        assert _run(ring, addr) == 0
        assert buf[8] == 8
        assert ring._backend().copy_counts() == (2, 0)


def test_other_memory_takes_the_checked_path() -> None:
    with Ring(8, backend="emulated", engine="native") as ring:
        ring.register_programs([add_one])
        cell = ctypes.c_uint64(5)   # plain process memory the ring does not know
        assert _run(ring, ctypes.addressof(cell)) == 0
        assert cell.value == 6
        assert ring._backend().copy_counts() == (0, 2)


@pytest.mark.parametrize("bad", [8, 1 << 47, (1 << 64) - 4])
def test_bad_pointer_fails_the_request_and_the_ring_goes_on(bad: int) -> None:
    with Ring(8, backend="emulated", engine="native") as ring:
        ring.register_programs([add_one])
        assert _run(ring, bad) == -errno.EFAULT
        cell = ring.user_memory(ctypes.c_uint64)
        assert _run(ring, ctypes.addressof(cell)) == 0 and cell.value == 1


def test_range_straddling_known_memory_takes_the_checked_path() -> None:
    """A span one byte past the arena's end is not inside it: the checked path decides."""
    with Ring(8, backend="emulated", engine="native") as ring:
        ring.register_programs([add_one])
        ring.user_memory(ctypes.c_uint64)
        addr, size = ring._backend().user_arena.spans()[0]
        res = _run(ring, addr + size - 4)   # 8 bytes straddling the end of the arena's mapping
        fast, checked = ring._backend().copy_counts()
        assert fast == 0 and checked >= 1
        assert res in (0, -errno.EFAULT)


def test_a_forked_child_copies_its_own_memory() -> None:
    """The checked path names our pid without a getpid per copy: after fork() it must be the
    child's (an atfork handler refreshes it), or the child would read and write its parent."""
    cell = ctypes.c_uint64(0)   # plain memory: the checked path
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            cell.value = 5
            with Ring(8, backend="emulated", engine="native") as ring:
                ring.register_programs([add_one])
                code = 0 if _run(ring, ctypes.addressof(cell)) == 0 and cell.value == 6 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert cell.value == 0          # the parent's copy was not touched


def test_a_helpers_region_hint_never_changes_a_check() -> None:
    """Native helpers try the table entry their last check found (ctx[CTX_HINT]) before the binary
    search: any hint value gives the search's answer. copy_from_user checks its destination before
    it needs a loop, so on a scratch context a passing check shows as the loop refusal (ST_HELPER)
    and a failing one as a memory fault (ST_MEMORY)."""
    from pybpfuring.runtime.backends.native.build import load
    from pybpfuring.runtime.engine import jit_abi as J
    from pybpfuring.runtime.engine.jit import _NATIVE_HELPER_TYPE, region_table
    from pybpfuring.runtime.engine.memory import Memory
    memory = Memory()
    rw, ro = memory.allocate(16, "rw"), memory.allocate(16, "ro", writable=False)
    memory.allocate(16, "other")
    table = region_table(memory.regions())
    copy_from_user = _NATIVE_HELPER_TYPE(load().nl_helper(148))
    for hint in [0, 1, 2, 3, 2**63, 2**64 - 1]:
        for dst, size, status in ((rw.start, 16, J.ST_HELPER), (rw.start + 8, 16, J.ST_MEMORY),
                                  (ro.start, 8, J.ST_MEMORY), (rw.end, 1, J.ST_MEMORY)):
            ctx = (ctypes.c_uint64 * J.CTX_FIELDS)()
            ctx[J.CTX_REGIONS], ctx[J.CTX_NREGIONS] = ctypes.addressof(table), len(table) // 3
            ctx[J.CTX_HINT] = hint
            copy_from_user(ctypes.addressof(ctx), dst, size, 0x1000, 0, 0)
            assert ctx[J.CTX_STATUS] == status, (hint, hex(dst), size)
