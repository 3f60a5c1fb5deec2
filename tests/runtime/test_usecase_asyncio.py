"""Ring inside asyncio (runtime/aio.py): awaiting CQEs through an eventfd registered with the ring
leaves the event loop free for other tasks, wakes when the kernel completes I/O a BPF program
submitted, times out, and iterates. Every engine of the emulated backend."""
from __future__ import annotations

import asyncio
import ctypes
import errno
import os
import shutil
import socket
import tempfile

import pytest

import lookup as L
import usecase_prep_progs as P
from pybpfuring.runtime import Ring, aio

ENGINES = ["interp", "jit", "native"]


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
@pytest.mark.parametrize("engine", ENGINES)
def test_an_asyncio_client_talks_to_a_bpf_echo_while_the_loop_runs(engine: str, loop: str,
                                                                    monkeypatch) -> None:
    # No safety re-pump within the test's time: only the eventfd can wake the waiter.
    monkeypatch.setattr(aio, "TICK", 60.0)
    lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lst.bind(("127.0.0.1", 0))
    lst.listen(4)
    port = lst.getsockname()[1]

    async def main() -> tuple[int, bytes, int]:
        with Ring(16, cqs=[8], backend="emulated", engine=engine) as ring:
            ring.register_programs(P.PROGRAMS)
            args = ring.user_memory(P.PrepArgs.ctype)
            buf = ring.user_memory(ctypes.c_uint8 * 64)
            args.cq, args.fd, args.buf, args.size = 1, lst.fileno(), ctypes.addressof(buf), 64
            ring.prep_bpf(P.accept_echo_once, user_data=ctypes.addressof(args))
            ring.submit()
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.005)
                    ticks += 1

            async def client() -> bytes:
                await asyncio.sleep(0.1)                 # the accept waits in the kernel till now
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"over asyncio")
                await writer.drain()
                data = await reader.read()               # until the program's shutdown(SHUT_WR)
                writer.close()
                return data

            tick = asyncio.create_task(ticker())
            got, cqe = await asyncio.gather(client(), ring.wait_cqe_async(timeout=20))
            tick.cancel()
            return cqe.res, got, ticks

    try:
        res, got, ticks = run_on(loop, main())
    finally:
        lst.close()
    assert (res, got) == (12, b"over asyncio")
    assert ticks >= 5          # the loop ran other tasks while the ring waited


def run_on(loop: str, coro):
    """Run `coro` on asyncio's own event loop or on uvloop's (the same Ring code serves both)."""
    if loop == "uvloop":
        uvloop = pytest.importorskip("uvloop", reason="uvloop is not installed (the bench extra)")
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coro)
    return asyncio.run(coro)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
@pytest.mark.parametrize("engine", ENGINES)
def test_lookups_awaited_and_iterated(engine: str, loop: str) -> None:
    d = tempfile.mkdtemp(prefix="pybpfuring-aio-")
    try:
        path = os.path.join(d, "index")
        items = L.build_tree(path, 5000)
        keys = L.query_keys(items, 40, 0.25)
        fd = os.open(path, os.O_RDONLY)

        async def main() -> dict[int, int]:
            with L.open_ring(len(keys), "emulated", engine) as ring:
                slots = []
                for i, k in enumerate(keys):
                    buf = ring.user_memory(ctypes.c_uint8 * L.PAGE)
                    a = ring.user_memory(L.LookupArgs.ctype)
                    a.fd, a.cq, a.key, a.buf = fd, i + 1, k, ctypes.addressof(buf)
                    slots.append((a, buf))
                    ring.prep_bpf(L.btree_lookup, user_data=ctypes.addressof(a))
                ring.submit()
                got: dict[int, int] = {}
                first = await ring.wait_cqe_async()
                got[first.user_data] = first.res
                async for cqe in ring.cqes_async():
                    got[cqe.user_data] = cqe.res
                    if len(got) == len(keys):
                        break
                return {int(a.key): got[ctypes.addressof(a)] for a, _ in slots}
        try:
            results = run_on(loop, main())
        finally:
            os.close(fd)
        assert results == {k: items.get(k, -errno.ENOENT) for k in keys}
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_wait_cqe_async_times_out_and_the_eventfd_goes_with_the_ring() -> None:
    a, b = socket.socketpair()

    async def main() -> None:
        ring = Ring(8, cqs=[4], backend="emulated")
        ring.register_programs(P.PROGRAMS)
        args = ring.user_memory(P.PrepArgs.ctype)
        buf = ring.user_memory(ctypes.c_uint8 * 8)
        args.cq, args.fd, args.buf, args.size = 1, a.fileno(), ctypes.addressof(buf), 8
        args.buf2 = 0
        with pytest.raises(TimeoutError):
            await ring.wait_cqe_async(cq=1, timeout=0.2)   # nothing submitted to CQ 1
        efd = ring._efd.fd
        os.fstat(efd)
        ring.close()
        with pytest.raises(OSError):
            os.fstat(efd)                                   # closed with the ring

    try:
        asyncio.run(main())
    finally:
        a.close()
        b.close()
