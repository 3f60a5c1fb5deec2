"""The prep_* functions the use cases need (accept, connect, splice, openat, statx, send/recv with
flags, shutdown, link_timeout): in programs (emulated backend: their SQEs reach the host's io_uring)
and from user space (IoUring), each checked against what the kernel did to real files and sockets."""
from __future__ import annotations

import ctypes
import errno
import os
import shutil
import socket
import tempfile

import pytest

import usecase_prep_progs as P
from pybpfuring.runtime import Ring, Sqe, Timespec
from pybpfuring.uring import (AT_FDCWD, IoUring, prep_accept, prep_connect, prep_link_timeout,
                                     prep_recv, prep_send, prep_shutdown, prep_splice, prep_statx,
                                     sockaddr_in)
from pybpfuring.errors import ArgumentError


@pytest.fixture
def workdir() -> str:
    d = tempfile.mkdtemp(prefix="pybpfuring-prep-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _run(ring: Ring, prog, args) -> int:
    ring.prep_bpf(prog, user_data=ctypes.addressof(args))
    ring.submit_and_wait(1, timeout=20)
    return ring.wait_cqe().res


def _ring() -> Ring:
    ring = Ring(16, cqs=[8], backend="emulated")
    ring.register_programs(P.PROGRAMS)
    return ring


def test_openat_statx_read_close_in_a_program(workdir: str) -> None:
    path = os.path.join(workdir, "data")
    data = os.urandom(3000)
    with open(path, "wb") as f:
        f.write(data)
    with _ring() as ring:
        args = ring.user_memory(P.PrepArgs.ctype)
        cpath = ring.user_memory(ctypes.c_char * 256)
        cpath.value = path.encode()
        buf = ring.user_memory(ctypes.c_uint8 * 4096)
        stat = ring.user_memory(ctypes.c_uint8 * 256)
        args.cq, args.path, args.buf, args.buf2, args.size = 1, ctypes.addressof(cpath), \
            ctypes.addressof(buf), ctypes.addressof(stat), 4096
        assert _run(ring, P.open_stat_read, args) == 3000
        assert bytes(buf[:3000]) == data
        cpath.value = os.path.join(workdir, "missing").encode()
        assert _run(ring, P.open_stat_read, args) == -errno.ENOENT


def test_splice_file_to_pipe_to_file_in_a_program(workdir: str) -> None:
    src, dst = os.path.join(workdir, "in"), os.path.join(workdir, "out")
    data = os.urandom(10000)
    with open(src, "wb") as f:
        f.write(data)
    fin = os.open(src, os.O_RDONLY)
    fout = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    r, w = os.pipe()
    try:
        with _ring() as ring:
            args = ring.user_memory(P.PrepArgs.ctype)
            args.cq, args.fd, args.fd2, args.fd3, args.addrlen = 1, fin, w, r, fout
            args.off, args.size = 1000, 5000
            assert _run(ring, P.splice_through_pipe, args) == 5000
            args.fd = 9999                      # a bad input fd: the kernel's -EBADF, as the CQE
            assert _run(ring, P.splice_through_pipe, args) == -errno.EBADF
    finally:
        for fd in (fin, fout, r, w):
            os.close(fd)
    with open(dst, "rb") as f:
        assert f.read() == data[1000:6000]


def test_accept_recv_send_shutdown_in_a_program() -> None:
    lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lst.bind(("127.0.0.1", 0))
    lst.listen(4)
    port = lst.getsockname()[1]
    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with _ring() as ring:
            srv = ring.user_memory(P.PrepArgs.ctype)
            sbuf = ring.user_memory(ctypes.c_uint8 * 256)
            srv.cq, srv.fd, srv.buf, srv.size = 1, lst.fileno(), ctypes.addressof(sbuf), 256
            ring.prep_bpf(P.accept_echo_once, user_data=ctypes.addressof(srv))
            ring.submit()
            # The program's accept is in flight in the kernel; a plain client connects.
            client.connect(("127.0.0.1", port))
            client.sendall(b"hello")
            ring.submit_and_wait(1, timeout=20)
            assert ring.wait_cqe().res == 5
            client.settimeout(10)
            assert client.recv(16) == b"hello"
            assert client.recv(16) == b""          # the program shut its write side down
    finally:
        client.close()
        lst.close()


def test_connect_and_send_in_a_program() -> None:
    lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lst.bind(("127.0.0.1", 0))
    lst.listen(4)
    lst.settimeout(10)
    port = lst.getsockname()[1]
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with _ring() as ring:
            args = ring.user_memory(P.PrepArgs.ctype)
            buf = ring.user_memory(ctypes.c_uint8 * 5)
            ctypes.memmove(buf, b"world", 5)
            addr = ring.user_memory(ctypes.c_uint8 * 16)
            ctypes.memmove(addr, sockaddr_in("127.0.0.1", port), 16)
            args.cq, args.fd, args.buf, args.size = 1, sock.fileno(), ctypes.addressof(buf), 5
            args.buf2, args.addrlen = ctypes.addressof(addr), 16
            assert _run(ring, P.connect_and_send, args) == 5
            conn, _ = lst.accept()
            with conn:
                conn.settimeout(10)
                assert conn.recv(16) == b"world"
            # Connecting a connected socket again: the kernel's -EISCONN reaches the program.
            assert _run(ring, P.connect_and_send, args) == -errno.EISCONN
    finally:
        sock.close()
        lst.close()


def test_link_timeout_cancels_a_silent_recv_in_a_program() -> None:
    a, b = socket.socketpair()
    try:
        with _ring() as ring:
            args = ring.user_memory(P.PrepArgs.ctype)
            buf = ring.user_memory(ctypes.c_uint8 * 16)
            ts = ring.user_memory(Timespec)
            ts.tv_sec, ts.tv_nsec = 0, 50_000_000
            args.cq, args.fd, args.buf, args.size = 1, a.fileno(), ctypes.addressof(buf), 16
            args.buf2 = ctypes.addressof(ts)
            # recv -ECANCELED, timeout -ETIME: -125 + 62000
            assert _run(ring, P.recv_with_deadline, args) == -errno.ECANCELED + 1000 * errno.ETIME
            b.send(b"x")                         # data in time: recv 1, timeout -ECANCELED
            assert _run(ring, P.recv_with_deadline, args) == 1 + 1000 * errno.ECANCELED
    finally:
        a.close()
        b.close()


# --- the same requests from user space (IoUring) ---------------------------------------------------
def _one(io: IoUring) -> int:
    io.submit_and_wait(1)
    return io.wait_cqe().res


def test_user_space_accept_connect_send_recv_shutdown() -> None:
    lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lst.bind(("127.0.0.1", 0))
    lst.listen(4)
    port = lst.getsockname()[1]
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    conn_fd = -1
    try:
        with IoUring(8) as io:
            prep_connect(io.get_sqe(), sock, sockaddr_in("127.0.0.1", port))
            assert _one(io) == 0
            peer, peerlen = bytearray(16), ctypes.c_uint32(16)
            prep_accept(io.get_sqe(), lst, peer, peerlen)
            conn_fd = _one(io)
            assert conn_fd >= 0 and peerlen.value == 16
            assert int.from_bytes(peer[2:4], "big") == sock.getsockname()[1]
            prep_send(io.get_sqe(), sock, b"ping", socket.MSG_NOSIGNAL)
            assert _one(io) == 4
            got = bytearray(8)
            prep_recv(io.get_sqe(), conn_fd, got, socket.MSG_WAITALL, nbytes=4)
            assert _one(io) == 4 and got[:4] == b"ping"
            prep_shutdown(io.get_sqe(), conn_fd, socket.SHUT_WR)
            assert _one(io) == 0
            sock.settimeout(10)
            assert sock.recv(4) == b""
            with pytest.raises(ArgumentError):
                prep_accept(Sqe(), lst, bytearray(16), None)
    finally:
        if conn_fd >= 0:
            os.close(conn_fd)
        sock.close()
        lst.close()


def test_user_space_splice_statx_and_link_timeout(workdir: str) -> None:
    src = os.path.join(workdir, "in")
    with open(src, "wb") as f:
        f.write(b"abcdefghij" * 100)
    fin = os.open(src, os.O_RDONLY)
    r, w = os.pipe()
    a, b = socket.socketpair()
    try:
        with IoUring(8) as io:
            prep_splice(io.get_sqe(), fin, 5, w, -1, 20)
            assert _one(io) == 20
            assert os.read(r, 20) == (b"abcdefghij" * 3)[5:25]
            stx = bytearray(256)
            prep_statx(io.get_sqe(), AT_FDCWD, src, 0, 0x200, stx)   # STATX_SIZE
            assert _one(io) == 0
            assert int.from_bytes(stx[40:48], "little") == 1000
            with pytest.raises(ArgumentError):
                prep_statx(Sqe(), AT_FDCWD, src, 0, 0x200, bytearray(100))
            sqe = io.get_sqe()
            prep_recv(sqe, a, bytearray(4))
            sqe.flags |= 4                          # IOSQE_IO_LINK
            sqe.user_data = 1
            sqe = io.get_sqe()
            prep_link_timeout(sqe, 0.02)
            sqe.user_data = 2
            io.submit_and_wait(2)
            got = {c.user_data: c.res for c in (io.wait_cqe(), io.wait_cqe())}
            assert got == {1: -errno.ECANCELED, 2: -errno.ETIME}
    finally:
        for fd in (fin, r, w):
            os.close(fd)
        a.close()
        b.close()
