"""The io_uring binding on the real kernel: setup variants, lifetime, errors, pinning, overflow."""
from __future__ import annotations

import errno
import gc
import os
import threading
import time
import weakref

import pytest
import typeguard

from pybpfuring.errors import PyBpfUringError
from pybpfuring.uring import Cqe, IoUring, IoUringParams, IoUringRegisterError, IoUringSetupError, RingClosedError, prep_nop, prep_read, prep_write
from pybpfuring.abi import uring as C
from pybpfuring.uring import ring as ring_module


class Buffer(bytearray):
    """A bytearray that supports weak references, so a test can see when the ring lets go of it."""


def open_fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def nop(ring: IoUring, user_data: int) -> None:
    sqe = ring.get_sqe()
    prep_nop(sqe)
    sqe.user_data = user_data


# ----- setup variants ---------------------------------------------------------------------------

def test_params_and_addresses_are_exposed():
    with IoUring(8, cq_entries=64) as ring:
        p = ring.params
        assert isinstance(p, IoUringParams)
        assert (ring.sq_entries, ring.cq_entries) == (8, 64) == (p.sq_entries, p.cq_entries)
        assert p.flags & C.IORING_SETUP_CQSIZE
        assert p.features & C.IORING_FEAT_SINGLE_MMAP and ring.features == p.features
        assert p.sq_off.tail and p.cq_off.cqes and ring.fd >= 0
        assert ring.sq_ring_addr == ring.cq_ring_addr  # one mapping with SINGLE_MMAP
        assert ring.sq_ring_size >= p.cq_off.cqes + 64 * C.CQE_SIZE
        assert ring.sqes_size == 8 * C.SQE_SIZE and ring.sqes_addr % 4096 == 0
        assert ring.sq_array_addr == ring.sq_ring_addr + p.sq_off.array


def test_no_sqarray_maps_no_array_and_works():
    with IoUring(8, flags=C.IORING_SETUP_NO_SQARRAY) as ring:
        assert ring.sq_array_addr is None
        for i in range(20):  # several wraps of the 8 slots
            nop(ring, i)
            ring.submit_and_wait(1)
            assert ring.wait_cqe().user_data == i


def test_single_issuer_defer_taskrun_completions_need_getevents(tmp_path):
    flags = C.IORING_SETUP_SINGLE_ISSUER | C.IORING_SETUP_DEFER_TASKRUN
    with IoUring(8, flags=flags) as ring:
        fd = os.open(tmp_path / "f", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            sqe = ring.get_sqe()
            prep_write(sqe, fd, b"deferred", 0)
            sqe.user_data = 1
            ring.submit()
            cqe = ring.wait_cqe(timeout=10)
            assert cqe == Cqe(1, 8, 0)
            nop(ring, 2)
            nop(ring, 3)
            ring.submit()
            # Completions are posted only inside io_uring_enter(GETEVENTS); peek_cqe/cqes enter.
            assert sorted(c.user_data for c in ring.cqes()) == [2, 3]
        finally:
            os.close(fd)


def test_defer_taskrun_posts_async_completions_only_on_getevents():
    flags = (C.IORING_SETUP_SINGLE_ISSUER | C.IORING_SETUP_DEFER_TASKRUN
             | C.IORING_SETUP_TASKRUN_FLAG)
    r, w = os.pipe()
    try:
        with IoUring(8, flags=flags) as ring:
            buf = bytearray(8)
            sqe = ring.get_sqe()
            prep_read(sqe, r, buf)  # waits for data: completes later, through task work
            sqe.user_data = 4
            ring.submit()
            os.write(w, b"later")
            deadline = time.monotonic() + 10
            while not ring.sq_flags() & C.IORING_SQ_TASKRUN and time.monotonic() < deadline:
                time.sleep(0.005)
            assert ring.sq_flags() & C.IORING_SQ_TASKRUN  # the kernel asks us to enter
            assert ring.cq_ready() == 0  # nothing posted until we enter with GETEVENTS
            assert ring.peek_cqe() == Cqe(4, 5, 0)  # peek_cqe enters, task work runs, CQE posted
            ring.cqe_seen()
            assert buf[:5] == b"later"
    finally:
        os.close(r)
        os.close(w)


def test_single_issuer_rejects_another_thread():
    flags = C.IORING_SETUP_SINGLE_ISSUER | C.IORING_SETUP_DEFER_TASKRUN
    with IoUring(4, flags=flags) as ring:
        nop(ring, 1)
        ring.submit()  # binds the ring to this task
        errors: list[BaseException] = []

        def other() -> None:
            try:
                nop(ring, 2)
                ring.submit()
            except OSError as exc:
                errors.append(exc)

        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert len(errors) == 1 and errors[0].errno == errno.EEXIST
        assert "io_uring_enter" in str(errors[0])


@pytest.mark.parametrize("flags", [C.IORING_SETUP_COOP_TASKRUN | C.IORING_SETUP_TASKRUN_FLAG,
                                   C.IORING_SETUP_SUBMIT_ALL, C.IORING_SETUP_SQE128,
                                   C.IORING_SETUP_CQE32, C.IORING_SETUP_CLAMP],
                         ids=["coop_taskrun", "submit_all", "sqe128", "cqe32", "clamp"])
def test_setup_flag_variants_round_trip(flags):
    with IoUring(4, flags=flags) as ring:
        for i in range(10):
            nop(ring, 1000 + i)
            ring.submit()
            assert ring.wait_cqe(timeout=10) == Cqe(1000 + i, 0, 0)


def test_sqpoll_ring_submits_without_enter_when_awake():
    with IoUring(8, flags=C.IORING_SETUP_SQPOLL, sq_thread_idle=50) as ring:
        for i in range(5):
            nop(ring, i)
            ring.submit()
            assert ring.wait_cqe(timeout=10).user_data == i


def test_sqpoll_thread_is_woken_after_it_went_idle():
    with IoUring(8, flags=C.IORING_SETUP_SQPOLL, sq_thread_idle=1) as ring:
        nop(ring, 1)
        ring.submit()
        assert ring.wait_cqe(timeout=10).user_data == 1
        deadline = time.monotonic() + 10
        while not ring.sq_flags() & C.IORING_SQ_NEED_WAKEUP and time.monotonic() < deadline:
            time.sleep(0.01)  # the thread sleeps after 1 ms without work
        assert ring.sq_flags() & C.IORING_SQ_NEED_WAKEUP
        nop(ring, 2)
        ring.submit()  # must notice NEED_WAKEUP and enter with IORING_ENTER_SQ_WAKEUP
        assert ring.wait_cqe(timeout=10).user_data == 2


def test_sq_rewind_is_passed_through():
    """Linux >= 7.x knows SQ_REWIND; older kernels must reject the unknown bit with EINVAL."""
    flags = C.IORING_SETUP_SQ_REWIND | C.IORING_SETUP_NO_SQARRAY
    try:
        ring = IoUring(4, flags=flags)
    except IoUringSetupError as exc:
        assert exc.errno == errno.EINVAL and "io_uring_setup(entries=4)" in str(exc)
        return
    with ring:
        for round_ in range(3):
            for i in range(4):
                nop(ring, round_ * 10 + i)
            assert ring.submit_and_wait(4) == 4
            assert sorted(c.user_data for c in ring.cqes()) == [round_ * 10 + i for i in range(4)]


def test_unknown_future_flag_reaches_the_kernel():
    with pytest.raises(IoUringSetupError) as info:
        IoUring(4, flags=1 << 30)
    assert info.value.errno == errno.EINVAL


# ----- errors -----------------------------------------------------------------------------------

def test_bad_entries_give_a_clear_error():
    with pytest.raises(IoUringSetupError) as info:
        IoUring(0)
    assert str(info.value).startswith("io_uring_setup(entries=0): Invalid argument [EINVAL]")
    assert isinstance(info.value, OSError) and isinstance(info.value, PyBpfUringError)
    # The ring's own check, or typeguard's (tests/conftest.py) which runs first in the test run.
    with pytest.raises(TypeError, match=r'entries must be an int|argument "entries" \(str\) is not an instance of int'):
        IoUring("8")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unsigned 32-bit"):
        IoUring(-1)
    with pytest.raises(ValueError, match="NO_MMAP is not supported"):
        IoUring(4, flags=C.IORING_SETUP_NO_MMAP)


def test_register_errors_name_the_operation():
    with IoUring(4) as ring:
        with pytest.raises(IoUringRegisterError, match=r"REGISTER_FILES.*Bad file descriptor"):
            ring.register_files([123456])
        with pytest.raises(ValueError, match="file descriptor"):
            ring.register_files(["x"])  # type: ignore[list-item]
        with pytest.raises(TypeError, match="read-only"):
            ring.register_buffers([b"immutable"])
        with pytest.raises(IoUringRegisterError, match="UNREGISTER_BUFFERS"):
            ring.unregister_buffers()  # nothing registered: ENXIO


def test_prep_argument_errors():
    with IoUring(4) as ring:
        sqe = ring.get_sqe()
        with pytest.raises(TypeError, match="read-only"):
            prep_read(sqe, 0, b"immutable")
        with pytest.raises(TypeError, match="buffer protocol"):
            prep_read(sqe, 0, 42)
        with pytest.raises(ValueError, match="nbytes=9"):
            prep_read(sqe, 0, bytearray(4), nbytes=9)
        with pytest.raises(TypeError, match="fd must be"):
            prep_read(sqe, "zero", bytearray(4))


def test_closed_ring_raises_and_close_is_idempotent():
    ring = IoUring(4)
    ring.close()
    ring.close()
    assert ring.closed and "closed" in repr(ring)
    for use in (ring.get_sqe, ring.submit, ring.peek_cqe, ring.wait_cqe, ring.probe,
                lambda: ring.fd, ring.cq_ready, lambda: list(ring.cqes())):
        with pytest.raises(RingClosedError, match="closed"):
            use()
    with pytest.raises(ValueError):  # RingClosedError is a ValueError, like closed files
        ring.submit()


def test_sqe_held_after_close_cannot_crash():
    ring = IoUring(4)
    sqe = ring.get_sqe()
    ring.close()
    sqe.user_data = 5  # the mapping outlives the ring while a view exists
    assert sqe.user_data == 5


# ----- lifetime -----------------------------------------------------------------------------------

def test_thousand_rings_leak_no_fds():
    before = open_fd_count()
    for i in range(1000):
        ring = IoUring(4)
        if i % 2:
            ring.close()
        else:
            with ring:
                nop(ring, i)
                ring.submit()
    for i in range(50):  # rings dropped without close(): __del__ is the last resort
        IoUring(4)
    gc.collect()
    assert open_fd_count() == before


def test_buffer_stays_alive_until_its_cqe_is_reaped():
    r, w = os.pipe()
    try:
        with IoUring(4) as ring:
            buf = Buffer(16)
            alive = weakref.ref(buf)
            sqe = ring.get_sqe()
            prep_read(sqe, r, buf)
            sqe.user_data = 1
            ring.submit()
            del buf, sqe
            gc.collect()
            assert alive() is not None, "the ring must pin the buffer of an in-flight read"
            os.write(w, b"arrives safely")
            cqe = ring.peek_cqe() or ring._wait_one()
            assert cqe.res == 14 and bytes(alive()[:14]) == b"arrives safely"
            ring.cqe_seen()
            gc.collect()
            assert alive() is None, "the pin must go once the CQE is consumed"
            assert ring.inflight_pins() == 0
    finally:
        os.close(r)
        os.close(w)


def test_pins_shared_by_one_user_data_last_until_every_cqe():
    r, w = os.pipe()
    try:
        with IoUring(4) as ring:
            bufs = [Buffer(4), Buffer(4)]
            refs = [weakref.ref(b) for b in bufs]
            for b in bufs:
                sqe = ring.get_sqe()
                prep_read(sqe, r, b)
                sqe.user_data = 9  # same key for both requests
            ring.submit()
            del bufs, b, sqe
            os.write(w, b"abcd")
            assert ring.wait_cqe(timeout=10).res == 4
            gc.collect()
            assert all(ref() is not None for ref in refs)  # one read is still in flight
            os.write(w, b"efgh")
            assert ring.wait_cqe(timeout=10).res == 4
            gc.collect()
            assert all(ref() is None for ref in refs)
    finally:
        os.close(r)
        os.close(w)


def test_older_unpinned_request_with_same_user_data_does_not_release_pins():
    r, w = os.pipe()
    try:
        with IoUring(4) as ring:
            nop(ring, 0)  # user_data 0, nothing pinned, completes at once but is not reaped yet
            ring.submit()
            buf = Buffer(4)
            alive = weakref.ref(buf)
            sqe = ring.get_sqe()
            prep_read(sqe, r, buf)  # user_data 0 as well (the default)
            ring.submit()
            del buf, sqe
            assert ring.wait_cqe(timeout=10).res == 0  # the NOP's CQE
            gc.collect()
            assert alive() is not None, "the read is still in flight"
            os.write(w, b"late")
            assert ring.wait_cqe(timeout=10).res == 4
            gc.collect()
            assert alive() is None
    finally:
        os.close(r)
        os.close(w)


def test_cqe_skip_success_request_keeps_its_pins_for_the_ring_lifetime(tmp_path):
    fd = os.open(tmp_path / "s", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        with IoUring(4) as ring:
            buf = Buffer(b"skip")
            alive = weakref.ref(buf)
            sqe = ring.get_sqe()
            prep_write(sqe, fd, buf, 0)
            sqe.flags = C.IOSQE_CQE_SKIP_SUCCESS
            del buf, sqe
            nop(ring, 1)
            ring.submit()
            assert ring.wait_cqe(timeout=10).user_data == 1  # the write posted no CQE
            gc.collect()
            assert alive() is not None  # no CQE will ever say the kernel is done with it
        assert os.pread(fd, 4, 0) == b"skip"
    finally:
        os.close(fd)


def test_close_with_requests_in_flight_cancels_them():
    r, w = os.pipe()
    try:
        orphans = len(ring_module._ORPHANED_PINS)
        ring = IoUring(4)
        buf = Buffer(8)
        alive = weakref.ref(buf)
        sqe = ring.get_sqe()
        prep_read(sqe, r, buf)
        ring.submit()
        del buf, sqe
        ring.close()  # cancels the pipe read and reaps it before unmapping
        gc.collect()
        assert alive() is None and len(ring_module._ORPHANED_PINS) == orphans
    finally:
        os.close(r)
        os.close(w)


# ----- CQ overflow --------------------------------------------------------------------------------

def test_cq_overflow_keeps_every_completion_with_nodrop():
    with IoUring(8, cq_entries=8) as ring:
        assert ring.features & C.IORING_FEAT_NODROP
        total = 40  # five times the CQ size, never reaped in between
        for i in range(total):
            sqe = ring.get_sqe()
            if sqe is None:
                ring.submit()
                sqe = ring.get_sqe()
            prep_nop(sqe)
            sqe.user_data = i
        ring.submit()
        assert ring.cq_ready() == 8
        assert ring.sq_flags() & C.IORING_SQ_CQ_OVERFLOW  # the rest wait in the kernel
        seen = [c.user_data for c in ring.cqes()]  # cqes() flushes the overflow list as it drains
        assert sorted(seen) == list(range(total))
        assert ring.cq_overflow() == 0  # nothing dropped
        assert not ring.sq_flags() & C.IORING_SQ_CQ_OVERFLOW


# ----- typed public API ---------------------------------------------------------------------------

def test_public_api_returns_declared_types():
    with IoUring(4) as ring:
        typeguard.check_type(ring.probe(), set[int])
        nop(ring, 1)
        typeguard.check_type(ring.submit_and_wait(1), int)
        typeguard.check_type(ring.peek_cqe(), Cqe | None)
        typeguard.check_type(ring.wait_cqe(), Cqe)
        typeguard.check_type(ring.get_sqe(), object)
        typeguard.check_type(ring.sq_space_left(), int)
