"""examples/fanout_collect.py: one request writes N files (or gathers N reads) and completes with
the total or the first (lowest-numbered) error; checked against the os.pwrite/os.pread loop doing
the same job, with ENOSPC (/dev/full), a bad fd and a short read, and no CQE left behind."""
from __future__ import annotations

import errno
import os
import shutil
import tempfile

import pytest

import fanout_collect as F


@pytest.fixture
def files():
    d = tempfile.mkdtemp(prefix="pybpfuring-fan-test-")
    opened: list[int] = []

    def make(n: int) -> list[int]:
        for i in range(n):
            opened.append(os.open(os.path.join(d, f"f{len(opened)}"),
                                  os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
        return opened[-n:]
    yield make
    for fd in opened:
        os.close(fd)
    shutil.rmtree(d, ignore_errors=True)


def _clean(fan: F.Fan) -> None:
    """Nothing left: no CQE on the request's CQ, nothing in flight."""
    assert fan.ring.cq_ready(1) == 0 and fan.ring.cq_ready(0) == 0
    assert fan.ring.in_flight() == 0


@pytest.mark.parametrize("n", [2, 7, 64])
def test_broadcast_then_gather_match_the_python_loop(files, n: int) -> None:
    fds = files(n)
    data = os.urandom(5000)
    fan = F.open_fan(5000, "emulated")
    with fan.ring:
        assert fan.broadcast(fds, data, 100) == 5000 * n
        _clean(fan)
        for fd in fds:
            assert os.pread(fd, 6000, 0) == bytes(100) + data
        res, buf = fan.gather(fds, 100)
        assert (res, buf) == F.python_gather(fds, 5000, 100) == (5000 * n, data * n)
        _clean(fan)


def test_enospc_and_bad_fd_give_the_lowest_numbered_error(files) -> None:
    fds = files(6)
    full = os.open("/dev/full", os.O_WRONLY)
    try:
        data = b"x" * 4096
        fan = F.open_fan(4096, "emulated")
        with fan.ring:
            mixed = fds[:2] + [full] + fds[2:4] + [99999] + fds[4:]
            want = F.python_broadcast(mixed, data)
            assert want == -errno.ENOSPC
            assert fan.broadcast(mixed, data) == want
            _clean(fan)
            # Every healthy file was written anyway: the error did not stop the others.
            for fd in fds:
                assert os.pread(fd, 4096, 0) == data
            swapped = fds[:1] + [99999] + [full] + fds[1:]
            assert fan.broadcast(swapped, data) == F.python_broadcast(swapped, data) == -errno.EBADF
            _clean(fan)
            # And the ring still works after errors.
            assert fan.broadcast(fds, data) == 6 * 4096
    finally:
        os.close(full)


def test_a_short_read_in_a_gather_is_eio_and_the_rest_still_arrive(files) -> None:
    fds = files(4)
    data = os.urandom(1024)
    for fd in fds:
        os.pwrite(fd, data, 0)
    os.ftruncate(fds[2], 1000)                   # file 2 ends 24 bytes early
    fan = F.open_fan(1024, "emulated")
    with fan.ring:
        res, buf = fan.gather(fds)
        want_res, want_buf = F.python_gather(fds, 1024)
        assert res == want_res == -errno.EIO
        assert buf[:2048] == want_buf[:2048] == data * 2 and buf[3072:] == data
        _clean(fan)


def test_the_example_runs_as_a_script(capsys) -> None:
    assert F.main(["--backend", "emulated", "--files", "3", "--size", "512", "--rounds", "3"]) == 0
    assert "every file holds the buffer" in capsys.readouterr().out
