"""examples/splice_records.py: one request splices the payloads of the records a mask selects,
to a file or a socket; checked against the plain-Python filter of the same file. A record cut
short by the end of the file is -EIO, a bad output fd -EBADF, and the next run is still right."""
from __future__ import annotations

import errno
import os
import shutil
import socket
import tempfile
import threading

import pytest

import splice_records as S


@pytest.fixture
def work():
    d = tempfile.mkdtemp(prefix="pybpfuring-splice-test-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _to_file(sp: S.Splicer, src: str, dst: str, mask: int) -> tuple[int, bytes]:
    fd_in = os.open(src, os.O_RDONLY)
    fd_out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        res = sp.run(fd_in, fd_out, mask, stream=False)
    finally:
        os.close(fd_in)
        os.close(fd_out)
    with open(dst, "rb") as f:
        return res, f.read()


@pytest.mark.parametrize("mask", [0, 0b1, 0b1001, 0xFF])
def test_selected_payloads_reach_a_file(work: str, mask: int) -> None:
    src = os.path.join(work, "in")
    S.build_records(src, 300)
    sp = S.Splicer("emulated")
    try:
        res, got = _to_file(sp, src, os.path.join(work, "out"), mask)
    finally:
        sp.close()
    want = S.python_select(src, mask)
    assert (res, got) == (len(want), want)


def test_selected_payloads_reach_a_socket(work: str) -> None:
    src = os.path.join(work, "in")
    S.build_records(src, 200, seed=5)
    a, b = socket.socketpair()
    sink = bytearray()
    reader = threading.Thread(target=S._read_all, args=(b, sink))
    reader.start()
    sp = S.Splicer("emulated")
    fd_in = os.open(src, os.O_RDONLY)
    try:
        res = sp.run(fd_in, a.fileno(), 0b110, stream=True)
        a.shutdown(socket.SHUT_WR)
        reader.join(30)
    finally:
        os.close(fd_in)
        sp.close()
        a.close()
        b.close()
    want = S.python_select(src, 0b110)
    assert (res, bytes(sink)) == (len(want), want)


def test_a_truncated_record_is_eio_and_a_bad_output_ebadf(work: str) -> None:
    src = os.path.join(work, "in")
    recs = S.build_records(src, 50, seed=3)
    size = os.path.getsize(src)
    cut = os.path.join(work, "cut")
    with open(src, "rb") as f, open(cut, "xb") as g:
        g.write(f.read(size - 1))                       # the last payload one byte short
    with pytest.raises(ValueError):
        S.python_select(cut, 0xFF)
    sp = S.Splicer("emulated")
    try:
        assert _to_file(sp, cut, os.path.join(work, "o1"), 0xFF)[0] == -errno.EIO
        fd_in = os.open(src, os.O_RDONLY)
        try:
            nonempty = next(t for t, p in recs if p)
            assert sp.run(fd_in, 99999, 1 << nonempty, stream=True) == -errno.EBADF
        finally:
            os.close(fd_in)
        # The ring and its pipe are clean for the next run.
        res, got = _to_file(sp, src, os.path.join(work, "o2"), 0b11)
        assert (res, got) == (len(S.python_select(src, 0b11)), S.python_select(src, 0b11))
    finally:
        sp.close()


def test_the_example_runs_as_a_script(capsys) -> None:
    assert S.main(["--backend", "emulated", "--records", "100", "--to", "socket"]) == 0
    assert "exactly the selected payloads" in capsys.readouterr().out
