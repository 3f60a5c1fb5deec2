"""The io_uring binding against the host kernel's real io_uring (no mocks): core I/O paths."""
from __future__ import annotations

import errno
import os
import socket
import select

import pytest

from pybpfuring.uring import Cqe, IoUring, Timespec, prep_close, prep_fsync, prep_link_timeout, prep_nop, prep_openat, prep_poll_add, prep_read, prep_read_fixed, prep_readv, prep_recv, prep_send, prep_timeout, prep_write, prep_write_fixed, prep_writev, prep_cancel, AT_FDCWD
from pybpfuring.abi import uring as C


@pytest.fixture
def ring():
    with IoUring(16) as r:
        yield r


@pytest.fixture
def tmpfile(tmp_path):
    path = tmp_path / "data.bin"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    yield fd, path
    os.close(fd)


def submit_one(ring: IoUring, prep, *args, user_data: int = 1, **kwargs) -> Cqe:
    sqe = ring.get_sqe()
    prep(sqe, *args, **kwargs)
    sqe.user_data = user_data
    assert ring.submit() == 1
    return ring.wait_cqe()


def test_nop_round_trip_carries_user_data(ring):
    cqe = submit_one(ring, prep_nop, user_data=0xDEADBEEF_CAFEF00D)
    assert cqe == Cqe(user_data=0xDEADBEEF_CAFEF00D, res=0, flags=0)
    assert ring.cq_ready() == 0
    assert ring.peek_cqe() is None


def test_many_nops_in_one_submit_each_complete_once(ring):
    for i in range(10):
        sqe = ring.get_sqe()
        prep_nop(sqe)
        sqe.user_data = 100 + i
    assert ring.submit_and_wait(10) == 10
    assert ring.cq_ready() == 10
    assert sorted(c.user_data for c in ring.cqes()) == list(range(100, 110))
    assert ring.cq_ready() == 0


def test_write_then_read_at_offsets(ring, tmpfile):
    fd, path = tmpfile
    assert submit_one(ring, prep_write, fd, b"hello world", 0).res == 11
    assert submit_one(ring, prep_write, fd, bytearray(b"XYZ"), 100).res == 3
    assert path.read_bytes()[:11] == b"hello world"
    assert path.read_bytes()[100:] == b"XYZ"
    buf = bytearray(5)
    cqe = submit_one(ring, prep_read, fd, buf, 6)
    assert (cqe.res, bytes(buf)) == (5, b"world")
    part = bytearray(8)
    cqe = submit_one(ring, prep_read, fd, memoryview(part)[2:], 99, nbytes=4)
    assert cqe.res == 4 and bytes(part) == b"\0\0\0XYZ\0\0"


def test_read_at_end_of_file_returns_zero(ring, tmpfile):
    fd, _ = tmpfile
    os.pwrite(fd, b"abc", 0)
    assert submit_one(ring, prep_read, fd, bytearray(4), 3).res == 0


def test_failed_request_reports_negative_errno(ring):
    cqe = submit_one(ring, prep_read, 987654, bytearray(4), 0)
    assert cqe.res == -errno.EBADF


def test_readv_writev_scatter_gather(ring, tmpfile):
    fd, path = tmpfile
    cqe = submit_one(ring, prep_writev, fd, [b"abc", bytearray(b"defg"), memoryview(b"hi")], 0)
    assert cqe.res == 9 and path.read_bytes() == b"abcdefghi"
    a, b = bytearray(4), bytearray(5)
    cqe = submit_one(ring, prep_readv, fd, [a, b], 0)
    assert cqe.res == 9 and (bytes(a), bytes(b)) == (b"abcd", b"efghi")


def test_fsync_succeeds_on_file_and_fails_on_bad_fd(ring, tmpfile):
    fd, _ = tmpfile
    os.write(fd, b"x" * 4096)
    assert submit_one(ring, prep_fsync, fd).res == 0
    assert submit_one(ring, prep_fsync, fd, C.IORING_FSYNC_DATASYNC).res == 0
    assert submit_one(ring, prep_fsync, 999999).res == -errno.EBADF


def test_timeout_fires_with_etime(ring):
    assert submit_one(ring, prep_timeout, 0.01, user_data=5) == Cqe(5, -errno.ETIME, 0)
    assert submit_one(ring, prep_timeout, Timespec(0, 1_000_000), user_data=6).res == -errno.ETIME


def test_timeout_with_count_completes_after_other_cqes(ring):
    sqe = ring.get_sqe()
    prep_timeout(sqe, 30.0, count=1)
    sqe.user_data = 1
    sqe = ring.get_sqe()
    prep_nop(sqe)
    sqe.user_data = 2
    ring.submit()
    got = {ring.wait_cqe(timeout=10).user_data: None for _ in range(2)}
    assert set(got) == {1, 2}


def test_link_chain_failure_cancels_the_linked_write(ring, tmpfile):
    fd, path = tmpfile
    wronly = os.open(path, os.O_WRONLY)
    try:
        sqe = ring.get_sqe()
        prep_read(sqe, wronly, bytearray(4), 0)  # EBADF: the fd is not open for reading
        sqe.flags = C.IOSQE_IO_LINK
        sqe.user_data = 1
        sqe = ring.get_sqe()
        prep_write(sqe, fd, b"must not appear", 0)
        sqe.user_data = 2
        ring.submit_and_wait(2)
        results = {c.user_data: c.res for c in ring.cqes()}
    finally:
        os.close(wronly)
    assert results == {1: -errno.EBADF, 2: -errno.ECANCELED}
    assert path.read_bytes() == b""


def test_link_chain_success_runs_in_order(ring, tmpfile):
    fd, path = tmpfile
    sqe = ring.get_sqe()
    prep_write(sqe, fd, b"first", 0)
    sqe.flags = C.IOSQE_IO_LINK
    sqe.user_data = 1
    buf = bytearray(5)
    sqe = ring.get_sqe()
    prep_read(sqe, fd, buf, 0)
    sqe.user_data = 2
    ring.submit_and_wait(2)
    assert {c.user_data: c.res for c in ring.cqes()} == {1: 5, 2: 5}
    assert buf == b"first"


def test_link_timeout_results(ring):
    r, w = os.pipe()
    try:
        sqe = ring.get_sqe()
        prep_read(sqe, r, bytearray(8))
        sqe.flags = C.IOSQE_IO_LINK
        sqe.user_data = 1
        sqe = ring.get_sqe()
        prep_link_timeout(sqe, 0.01)
        sqe.user_data = 2
        ring.submit()
        results = {}
        for _ in range(2):
            cqe = ring.wait_cqe(timeout=10)
            results[cqe.user_data] = cqe.res
    finally:
        os.close(r)
        os.close(w)
    assert results == {1: -errno.ECANCELED, 2: -errno.ETIME}


def test_cancel_by_user_data(ring):
    r, w = os.pipe()
    try:
        sqe = ring.get_sqe()
        prep_read(sqe, r, bytearray(8))
        sqe.user_data = 77
        ring.submit()
        sqe = ring.get_sqe()
        prep_cancel(sqe, 77)
        sqe.user_data = 78
        ring.submit()
        results = {}
        for _ in range(2):
            cqe = ring.wait_cqe(timeout=10)
            results[cqe.user_data] = cqe.res
    finally:
        os.close(r)
        os.close(w)
    assert results == {77: -errno.ECANCELED, 78: 0}
    assert ring.inflight_pins() == 0


def test_send_recv_over_socketpair(ring):
    a, b = socket.socketpair()
    with a, b:
        assert submit_one(ring, prep_send, a.fileno(), b"ping over io_uring").res == 18
        buf = bytearray(64)
        cqe = submit_one(ring, prep_recv, b, buf)  # a socket object works as fd too
        assert cqe.res == 18 and buf[:18] == b"ping over io_uring"


def test_poll_add_reports_readiness(ring):
    a, b = socket.socketpair()
    with a, b:
        sqe = ring.get_sqe()
        prep_poll_add(sqe, b.fileno(), select.POLLIN)
        sqe.user_data = 3
        ring.submit()
        with pytest.raises(TimeoutError):
            ring.wait_cqe(timeout=0.01)  # nothing to read yet
        a.send(b"x")
        cqe = ring.wait_cqe(timeout=10)
        assert cqe.user_data == 3 and cqe.res & select.POLLIN


def test_close_closes_the_fd(ring, tmp_path):
    fd = os.open(tmp_path / "c", os.O_CREAT | os.O_RDWR, 0o600)
    assert submit_one(ring, prep_close, fd).res == 0
    with pytest.raises(OSError) as info:
        os.fstat(fd)
    assert info.value.errno == errno.EBADF


def test_openat_returns_a_working_fd(ring, tmp_path):
    (tmp_path / "f.txt").write_bytes(b"opened by the kernel")
    cqe = submit_one(ring, prep_openat, AT_FDCWD, str(tmp_path / "f.txt"), os.O_RDONLY)
    assert cqe.res >= 0
    try:
        assert os.read(cqe.res, 100) == b"opened by the kernel"
    finally:
        os.close(cqe.res)
    missing = submit_one(ring, prep_openat, AT_FDCWD, tmp_path / "missing", os.O_RDONLY)
    assert missing.res == -errno.ENOENT


def test_registered_files_with_fixed_file_flag(ring, tmpfile):
    fd, path = tmpfile
    os.pwrite(fd, b"fixed-file data", 0)
    ring.register_files([fd])
    buf = bytearray(10)
    sqe = ring.get_sqe()
    prep_read(sqe, 0, buf, 6)  # fd 0 = index into the registered table, not stdin
    sqe.flags = C.IOSQE_FIXED_FILE
    ring.submit()
    assert ring.wait_cqe().res == 9 and buf[:9] == b"file data"
    ring.unregister_files()
    sqe = ring.get_sqe()
    prep_read(sqe, 0, buf, 0)
    sqe.flags = C.IOSQE_FIXED_FILE
    ring.submit()
    assert ring.wait_cqe().res == -errno.EBADF


def test_registered_buffers_read_fixed_and_write_fixed(ring, tmpfile):
    fd, path = tmpfile
    os.pwrite(fd, bytes(range(256)) * 32, 0)
    region = bytearray(8192)
    ring.register_buffers([bytearray(4096), region])
    view = memoryview(region)
    cqe = submit_one(ring, prep_read_fixed, fd, view[4096:], 256, 1)
    assert cqe.res == 4096 and bytes(region[4096:4100]) == bytes([0, 1, 2, 3])
    region[:5] = b"fixed"
    assert submit_one(ring, prep_write_fixed, fd, view[:5], 8192, 1).res == 5
    assert path.read_bytes()[8192:] == b"fixed"
    with pytest.raises(BufferError):
        region.extend(b"!")  # pinned while registered: it cannot move under the kernel
    del view
    ring.unregister_buffers()
    region.extend(b"!")


def test_read_fixed_outside_registered_memory_fails(ring, tmpfile):
    fd, _ = tmpfile
    ring.register_buffers([bytearray(4096)])
    cqe = submit_one(ring, prep_read_fixed, fd, bytearray(16), 0, 0)
    assert cqe.res == -errno.EFAULT


def test_probe_lists_basic_opcodes(ring):
    ops = ring.probe()
    assert {C.IORING_OP_NOP, C.IORING_OP_READ, C.IORING_OP_WRITE} <= ops
    assert all(0 <= op < 256 for op in ops)


def test_wait_cqe_timeout_on_idle_ring(ring):
    with pytest.raises(TimeoutError, match="no io_uring completion"):
        ring.wait_cqe(timeout=0.05)
    with pytest.raises(TimeoutError):
        ring.wait_cqe(timeout=0)
    # The ring still works afterwards.
    assert submit_one(ring, prep_nop, user_data=9).user_data == 9


def test_peek_does_not_consume_until_seen(ring):
    sqe = ring.get_sqe()
    prep_nop(sqe)
    sqe.user_data = 12
    ring.submit_and_wait(1)
    first = ring.peek_cqe()
    assert first == ring.peek_cqe() and first.user_data == 12
    ring.cqe_seen()
    assert ring.peek_cqe() is None
    with pytest.raises(ValueError, match="only 0 are ready"):
        ring.cqe_seen()


def test_sq_full_returns_none_until_submitted():
    with IoUring(4) as ring:
        sqes = [ring.get_sqe() for _ in range(4)]
        assert all(s is not None for s in sqes) and ring.sq_space_left() == 0
        assert ring.get_sqe() is None
        for s in sqes:
            prep_nop(s)
        assert ring.submit() == 4
        assert ring.sq_space_left() == 4
        assert len(list(ring.cqes())) == 4


def test_get_sqe_returns_zeroed_entries():
    with IoUring(2) as ring:
        for _ in range(3):  # wraps around the 2 slots
            sqe = ring.get_sqe()
            assert bytes(sqe) == bytes(64)
            prep_nop(sqe)
            sqe.off, sqe.addr, sqe.user_data = 5, 0xABC, 1  # dirt that NOP ignores
            ring.submit_and_wait(1)
            ring.wait_cqe()


def test_docs_snippet_runs(capsys):
    """docs/ring.md's example is executed as written, so the documentation cannot rot."""
    import pathlib
    import re
    doc = pathlib.Path(__file__).resolve().parents[2] / "docs" / "ring.md"
    code = re.search(r"```python\n(.*?)```", doc.read_text(), re.S).group(1)
    exec(compile(code, str(doc), "exec"), {"__name__": "ring_doc"})
    out = capsys.readouterr().out
    assert "Cqe(user_data=1, res=14, flags=0)" in out and "no io_uring completion" in out


def test_wait_ready_returns_the_cqe_without_consuming_it():
    with IoUring(4) as ring:
        with pytest.raises(TimeoutError):
            ring.wait_ready(timeout=0.05)             # nothing submitted
        sqe = ring.get_sqe()
        prep_nop(sqe)
        sqe.user_data = 77
        ring.submit()
        assert ring.wait_ready().user_data == 77
        assert ring.cq_ready() == 1                   # still there: as liburing's io_uring_wait_cqe
        assert ring.wait_cqe().user_data == 77 and ring.cq_ready() == 0
