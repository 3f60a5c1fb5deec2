"""examples/tcp_echo.py: echo over loopback with the request/response loop in BPF programs, both
hand-offs (BPF accepts; asyncio accepts and hands the fd over), checked by the example's own load
generator (every echo compared with what was sent); a closed and a reset peer give the right CQE."""
from __future__ import annotations

import ctypes
import errno
import socket
import struct
import threading

import pytest

import tcp_echo as T
from pybpfuring.runtime import Ring


@pytest.mark.parametrize("server", ["bpf", "asyncio-bpf"])
def test_every_echo_comes_back_intact(server: str) -> None:
    f = T.run(server, clients=40, requests=10, size=300, duration=60, backend="emulated")
    assert (f["requests"], f["bad"], f["timed_out"]) == (400, 0, 0)
    assert f["served"] == 40
    assert f.get("errors", 0) == 0


def _echo_ring() -> tuple[Ring, object, object]:
    ring = Ring(8, cqs=[4], backend="emulated")
    ring.register_programs(T.PROGRAMS)
    a = ring.user_memory(T.EchoArgs.ctype)
    buf = ring.user_memory(ctypes.c_uint8 * T.BUF)
    a.cq, a.buf, a.size = 1, ctypes.addressof(buf), T.BUF
    return ring, a, buf


def _pair() -> tuple[socket.socket, socket.socket]:
    lst = T.listener()
    c = socket.create_connection(lst.getsockname())
    s, _ = lst.accept()
    lst.close()
    return c, s


def test_a_peer_that_closes_ends_echo_fd_with_the_bytes_echoed() -> None:
    c, s = _pair()
    ring, a, _ = _echo_ring()
    seen: list[bytes] = []

    def peer() -> None:          # the emulated ring moves only while the main thread waits in it
        c.sendall(b"x" * 1000)
        c.settimeout(10)
        got = b""
        while len(got) < 1000:
            got += c.recv(4096)
        c.shutdown(socket.SHUT_WR)
        seen.extend([got, c.recv(10)])

    with ring:
        a.fd = s.detach()                    # the program closes it
        ring.prep_bpf(T.echo_fd, user_data=ctypes.addressof(a))
        ring.submit()
        t = threading.Thread(target=peer)
        t.start()
        assert ring.wait_cqe(timeout=20).res == 1000
        t.join(20)
    assert seen == [b"x" * 1000, b""]        # every byte back, then the program's close
    c.close()


def test_a_reset_peer_ends_echo_fd_with_econnreset() -> None:
    c, s = _pair()
    ring, a, _ = _echo_ring()
    with ring:
        a.fd = s.detach()
        ring.prep_bpf(T.echo_fd, user_data=ctypes.addressof(a))
        ring.submit()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()                            # linger 0: an RST, not a FIN
        assert ring.wait_cqe(timeout=20).res == -errno.ECONNRESET
        assert ring.in_flight() == 0 and ring.cq_ready(1) == 0


def test_workers_complete_when_the_listener_is_shut_down() -> None:
    lst = T.listener()
    ring, a, _ = _echo_ring()
    seen: list[bytes] = []

    def peer() -> None:
        with socket.create_connection(lst.getsockname()) as c:
            c.sendall(b"ping")
            c.settimeout(10)
            seen.append(c.recv(4))
        lst.shutdown(socket.SHUT_RDWR)

    with ring:
        a.fd = lst.fileno()
        ring.prep_bpf(T.accept_and_echo, user_data=ctypes.addressof(a))
        ring.submit()
        t = threading.Thread(target=peer)
        t.start()
        assert ring.wait_cqe(timeout=20).res == 1   # one connection served
        t.join(20)
    assert seen == [b"ping"]
    lst.close()


def test_the_proxy_relays_every_echo() -> None:
    import tcp_proxy as X
    f = X.run(30, 8, 200, 60, "emulated")
    assert (f["requests"], f["bad"], f["timed_out"], f["errors"]) == (240, 0, 0, 0)
    assert f["served"] == 30


def test_a_refused_upstream_gives_econnrefused_and_closes_the_client() -> None:
    import tcp_proxy as X
    gone = T.listener()
    addr = gone.getsockname()
    gone.close()                              # nothing listens there now
    f = X.run(3, 1, 10, 30, "emulated", upstream=addr)
    assert f["served"] == 3 and f["errors"] == 3 and f["first_error"] == -errno.ECONNREFUSED
    assert f["requests"] == 0 and f["bad"] == 3   # each client saw its connection closed
