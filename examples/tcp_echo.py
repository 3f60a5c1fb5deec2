"""TCP echo over loopback: every request/response stays in a BPF program, never returns to Python.

Two ways to hand connections to programs:
  --server bpf          W worker requests (one per CQ) each loop accept -> recv -> send ... -> close,
                        then accept the next connection; they complete when the listening socket
                        is shut down, with the number of connections they served.
  --server asyncio-bpf  an asyncio server accepts (loop.sock_accept) and hands each connection's fd
                        to one `echo_fd` request, awaiting its completion (`ring.cqes_async()`): how
                        an asyncio application embeds the programs.
and, for comparison, what users write without them: --server asyncio (streams) and --server
selectors (a non-blocking epoll loop).

The load generator (`--client`, run as a subprocess of this script) opens `--clients` connections at
once, sends `--requests` messages of `--size` bytes on each, one at a time, checks each echo and
reports requests/s and p50/p99 latency. It is bounded in count and in time (`--duration`).

    python3 examples/tcp_echo.py [--server bpf] [--clients 1000] [--requests 20] [--size 64]
"""
from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import os
import selectors
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable

from pybpfuring.errors import PyBpfUringError
from pybpfuring.lang import (EIO, IORING_OP_ACCEPT, IORING_OP_CLOSE, IORING_OP_RECV, IORING_OP_SEND,
                             MSG_NOSIGNAL, Ctx, Sqe, bpf_function, i32, iouring_program, prep_rw,
                             struct, submit, u8, u16, u32, u64, wait_cqe)

MAX_CONNS = 1 << 20       # connections one worker serves before it completes
MAX_ROUNDS = 1 << 20      # requests per connection
MAX_PIECES = 64           # a send that the socket takes in more pieces than this is an error
BUF = 4096


@struct
class EchoArgs:
    fd: i32       # bpf: the listening socket; asyncio-bpf: the connection
    cq: u32       # this request's own CQ
    buf: u64      # BUF bytes of user memory
    size: u32


# On the kernel backend the scheduler and the program share BPF's 512-byte stack, and every
# `Sqe()` of a program is its own 64-byte object. So the SQE is made in this one function, a real
# BPF-to-BPF call (not inlined): the programs keep only scalars.
@bpf_function(inline=False)
def submit_sock(ctx: Ctx, op_cq: u32, fd: i32, addr: u64, length: u32) -> i32:
    """Submit `op` (op_cq & 0xFF: ACCEPT, RECV, SEND or CLOSE) on `fd`, completing on CQ
    op_cq >> 16. Accepts take no peer address; sends never raise SIGPIPE (MSG_NOSIGNAL)."""
    sqe = Sqe()
    op = u8(op_cq & 0xFF)
    prep_rw(sqe, op, fd, addr, length, 0)
    if op == IORING_OP_SEND:
        sqe.msg_flags = MSG_NOSIGNAL
    sqe.cq_idx = u16(op_cq >> 16)
    return submit(ctx, sqe)


@iouring_program
def accept_and_echo(ctx: Ctx, args: EchoArgs) -> i32:
    tag = args.cq << 16                 # submit_sock's CQ half
    served = 0
    for c in range(MAX_CONNS):
        submit_sock(ctx, tag | IORING_OP_ACCEPT, args.fd, 0, 0)
        cqe = yield wait_cqe(ctx, args.cq)
        if cqe.res < 0:
            return served          # the listening socket was shut down (or failed)
        conn = cqe.res
        for r in range(MAX_ROUNDS):
            submit_sock(ctx, tag | IORING_OP_RECV, conn, args.buf, args.size)
            cqe = yield wait_cqe(ctx, args.cq)
            n = cqe.res
            if n <= 0:
                break              # 0: the peer closed; < 0: reset or error
            sent = 0
            for piece in range(MAX_PIECES):
                if sent >= n:
                    break
                submit_sock(ctx, tag | IORING_OP_SEND, conn, args.buf + u64(sent), u32(n - sent))
                cqe = yield wait_cqe(ctx, args.cq)
                if cqe.res <= 0:
                    break
                sent += cqe.res
            if sent < n:
                break              # the peer went away mid-send
        submit_sock(ctx, tag | IORING_OP_CLOSE, conn, 0, 0)
        cqe = yield wait_cqe(ctx, args.cq)
        served += 1
    return served


@iouring_program
def echo_fd(ctx: Ctx, args: EchoArgs) -> i32:
    """Echo on connection `args.fd` until the peer closes; close it; complete with the bytes echoed,
    or the error that ended it (a reset peer: -ECONNRESET; a failed send: its error or -EIO)."""
    tag = args.cq << 16                 # submit_sock's CQ half
    total = 0
    err = 0
    for r in range(MAX_ROUNDS):
        submit_sock(ctx, tag | IORING_OP_RECV, args.fd, args.buf, args.size)
        cqe = yield wait_cqe(ctx, args.cq)
        n = cqe.res
        if n <= 0:
            err = n
            break
        sent = 0
        for piece in range(MAX_PIECES):
            if sent >= n:
                break
            submit_sock(ctx, tag | IORING_OP_SEND, args.fd, args.buf + u64(sent), u32(n - sent))
            cqe = yield wait_cqe(ctx, args.cq)
            if cqe.res <= 0:
                err = cqe.res if cqe.res < 0 else -EIO
                break
            sent += cqe.res
        total += sent
        if err != 0:
            break
    submit_sock(ctx, tag | IORING_OP_CLOSE, args.fd, 0, 0)
    cqe = yield wait_cqe(ctx, args.cq)
    if err < 0:
        return err
    return i32(total)


PROGRAMS = [accept_and_echo, echo_fd]


# --- servers -----------------------------------------------------------------------------------
def listener(backlog: int = 4096) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(backlog)
    return s


def _slot_memory(ring, n: int) -> list:
    slots = []
    for i in range(n):
        buf = ring.user_memory(ctypes.c_uint8 * BUF)
        a = ring.user_memory(EchoArgs.ctype)
        a.cq, a.buf, a.size = i + 1, ctypes.addressof(buf), BUF
        slots.append((a, buf))
    return slots


def serve_bpf(lst: socket.socket, workers: int, start: Callable[[], subprocess.Popen],
              backend: str) -> dict:
    """Run `workers` accept_and_echo requests, then the client (`start()`), until it ends."""
    from pybpfuring.runtime import Ring
    with Ring(max(64, workers), cqs=[2] * workers, backend=backend) as ring:
        ring.register_programs(PROGRAMS)
        slots = _slot_memory(ring, workers)
        for a, _ in slots:
            a.fd = lst.fileno()
            ring.prep_bpf(accept_and_echo, user_data=ctypes.addressof(a))
        ring.submit()
        client = start()
        served, finished = 0, 0
        while client.poll() is None:
            try:
                served += ring.wait_cqe(timeout=0.05).res   # a worker ended early: count it
                finished += 1
            except TimeoutError:
                pass
        lst.shutdown(socket.SHUT_RDWR)          # pending accepts fail: every worker completes
        while finished < workers:
            served += ring.wait_cqe(timeout=30).res
            finished += 1
        return {"served": served, "backend": ring.backend}


async def accepted(loop: asyncio.AbstractEventLoop, lst: socket.socket,
                   done: asyncio.Event) -> AsyncIterator[socket.socket]:
    """Connections accepted on `lst` until `done` is set (an accept still waiting is cancelled)."""
    waiter = asyncio.create_task(done.wait())
    while not done.is_set():
        acc = asyncio.create_task(loop.sock_accept(lst))
        await asyncio.wait({acc, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if not acc.done():
            acc.cancel()
            return
        yield acc.result()[0]


async def serve_asyncio_bpf(lst: socket.socket, slots_n: int, done: asyncio.Event,
                            backend: str, start: Callable[[], None]) -> dict:
    """asyncio accepts; each connection's fd goes to an echo_fd request on a free slot."""
    from pybpfuring.runtime import Ring
    loop = asyncio.get_running_loop()
    lst.setblocking(False)
    with Ring(max(64, slots_n), cqs=[2] * slots_n, backend=backend) as ring:
        ring.register_programs(PROGRAMS)
        start()
        slots = _slot_memory(ring, slots_n)
        free: asyncio.Queue[int] = asyncio.Queue()
        for i in range(slots_n):
            free.put_nowait(i)
        by_addr = {ctypes.addressof(a): i for i, (a, _) in enumerate(slots)}
        results: list[int] = []
        busy = 0

        async def reap() -> None:               # the one task that awaits CQ 0
            nonlocal busy
            async for cqe in ring.cqes_async():
                results.append(cqe.res)
                busy -= 1
                free.put_nowait(by_addr[cqe.user_data])

        reaper = asyncio.create_task(reap())
        async for conn in accepted(loop, lst, done):
            slot = await free.get()
            fd = conn.detach()                  # the program owns the fd now: it closes it
            slots[slot][0].fd = fd
            busy += 1
            ring.prep_bpf(echo_fd, user_data=ctypes.addressof(slots[slot][0]))
            ring.submit()
        while busy > 0:
            await asyncio.sleep(0.01)
        reaper.cancel()
        try:
            await reaper
        except asyncio.CancelledError:
            pass
        return {"served": len(results), "errors": sum(r < 0 for r in results),
                "backend": ring.backend}


async def serve_asyncio(lst: socket.socket, done: asyncio.Event) -> dict:
    served = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        while data := await reader.read(BUF):
            writer.write(data)
            await writer.drain()
        writer.close()
        served += 1

    server = await asyncio.start_server(handle, sock=lst, backlog=4096)
    await done.wait()
    server.close()
    return {"served": served, "backend": "asyncio"}


def serve_selectors(lst: socket.socket, client: subprocess.Popen) -> dict:
    sel = selectors.DefaultSelector()
    lst.setblocking(False)
    sel.register(lst, selectors.EVENT_READ)
    served = 0
    while client.poll() is None:
        for key, _ in sel.select(0.05):
            if key.fileobj is lst:
                try:
                    conn, _ = lst.accept()
                except BlockingIOError:
                    continue
                conn.setblocking(False)
                sel.register(conn, selectors.EVENT_READ)
                continue
            conn = key.fileobj
            try:
                data = conn.recv(BUF)
            except ConnectionError:
                data = b""
            if data:
                conn.setblocking(True)          # echo the whole message, then back to polling
                conn.sendall(data)
                conn.setblocking(False)
            else:
                sel.unregister(conn)
                conn.close()
                served += 1
    sel.close()
    return {"served": served, "backend": "selectors"}


# --- the load generator --------------------------------------------------------------------------
def load(port: int, clients: int, requests: int, size: int, duration: float) -> dict:
    """`clients` connections, each sending `requests` messages one at a time; latencies in us."""
    sel = selectors.DefaultSelector()
    msg = os.urandom(size)
    state: dict[socket.socket, list] = {}
    for _ in range(clients):
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.connect(("127.0.0.1", port))
        c.setblocking(False)
        state[c] = [0, bytearray(), 0.0]          # requests done, echo so far, send time
        sel.register(c, selectors.EVENT_READ)
    lat: list[float] = []
    bad = 0
    t0 = time.perf_counter()
    for c, st in state.items():
        st[2] = time.perf_counter()
        c.sendall(msg)
    left = clients
    end = t0 + duration
    while left and time.perf_counter() < end:
        for key, _ in sel.select(0.1):
            c, st = key.fileobj, state[key.fileobj]
            try:
                data = c.recv(size - len(st[1]))
            except (BlockingIOError, InterruptedError):
                continue
            except ConnectionError:
                data = b""
            if not data:
                bad += 1
                sel.unregister(c)
                left -= 1
                continue
            st[1] += data
            if len(st[1]) < size:
                continue
            now = time.perf_counter()
            lat.append((now - st[2]) * 1e6)
            bad += st[1] != msg
            st[0] += 1
            st[1] = bytearray()
            if st[0] < requests:
                st[2] = now
                c.sendall(msg)
            else:
                sel.unregister(c)
                left -= 1
    elapsed = time.perf_counter() - t0
    for c in state:
        c.close()
    lat.sort()
    pick = (lambda q: round(lat[min(len(lat) - 1, int(q * len(lat)))], 1)) if lat else (lambda q: None)
    return {"requests": len(lat), "expected": clients * requests, "bad": bad,
            "timed_out": left, "elapsed": elapsed, "rps": len(lat) / elapsed if elapsed else 0,
            "p50_us": pick(0.5), "p99_us": pick(0.99)}


def start_client(port: int, clients: int, requests: int, size: int,
                 duration: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), "--client", str(port),
                             "--clients", str(clients), "--requests", str(requests),
                             "--size", str(size), "--duration", str(duration)],
                            stdout=subprocess.PIPE, text=True)


def run(server: str, clients: int, requests: int, size: int, duration: float,
        backend: str = "auto", workers: int | None = None,
        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None) -> dict:
    """One server against one load generator; returns the client's figures plus the server's.
    The asyncio servers run on `loop_factory`'s event loop (e.g. uvloop.new_event_loop), asyncio's
    own by default."""
    lst = listener()
    port = lst.getsockname()[1]
    try:
        if server == "bpf":
            procs: list[subprocess.Popen] = []

            def start() -> subprocess.Popen:
                procs.append(start_client(port, clients, requests, size, duration))
                return procs[0]
            info = serve_bpf(lst, workers or clients, start, backend)
            client = procs[0]
        elif server == "selectors":
            client = start_client(port, clients, requests, size, duration)
            info = serve_selectors(lst, client)
        else:
            async def go() -> dict:
                done = asyncio.Event()
                procs: list[subprocess.Popen] = []

                async def watch() -> None:
                    while not procs or procs[0].poll() is None:
                        await asyncio.sleep(0.02)
                    done.set()

                def start() -> None:            # once the server is ready
                    procs.append(start_client(port, clients, requests, size, duration))
                w = asyncio.create_task(watch())
                if server == "asyncio":
                    start()
                    info = await serve_asyncio(lst, done)
                else:
                    info = await serve_asyncio_bpf(lst, workers or min(clients, 1000), done,
                                                   backend, start)
                await w
                info["_client"] = procs[0]
                return info
            with asyncio.Runner(loop_factory=loop_factory) as runner:
                info = runner.run(go())
            client = info.pop("_client")
        out, _ = client.communicate(timeout=duration + 60)
    finally:
        lst.close()
    figures = json.loads(out)
    figures.update(server=server, **info)
    return figures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server", default="bpf", choices=["bpf", "asyncio-bpf", "asyncio", "selectors"])
    p.add_argument("--clients", type=int, default=1000, help="concurrent connections (1..1000)")
    p.add_argument("--requests", type=int, default=20, help="messages per connection (default 20)")
    p.add_argument("--size", type=int, default=64, help=f"bytes per message (1..{BUF})")
    p.add_argument("--duration", type=float, default=60.0, help="load generator's limit in s")
    p.add_argument("--backend", default="auto", choices=["auto", "emulated", "bpf_ops"])
    p.add_argument("--client", type=int, metavar="PORT", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if not 1 <= a.clients <= 1000 or not 1 <= a.size <= BUF or not 1 <= a.requests <= 1_000_000 \
            or not 0 < a.duration <= 3600:
        p.error(f"--clients 1..1000, --size 1..{BUF}, --requests 1..1000000, --duration 0..3600")
    if a.client is not None:
        print(json.dumps(load(a.client, a.clients, a.requests, a.size, a.duration)))
        return 0
    try:
        f = run(a.server, a.clients, a.requests, a.size, a.duration, a.backend)
    except (ValueError, PyBpfUringError) as e:
        if a.backend == "auto":
            raise
        # Where the kernel backend cannot run this (its 256 KiB of user memory per ring, a
        # verifier limit), say so instead of a traceback: docs/usecases.md lists these limits.
        print(f"{p.prog} cannot run on backend {a.backend}: {e}")
        return 3
    print(f"{a.server} ({f['backend']}): {f['requests']}/{f['expected']} echoes from {a.clients} "
          f"clients in {f['elapsed']:.2f} s: {f['rps']:,.0f} requests/s, p50 {f['p50_us']} us, "
          f"p99 {f['p99_us']} us; {f['served']} connections served")
    if f["bad"] or f["timed_out"] or f["requests"] != f["expected"]:
        print(f"FAILED: {f['bad']} wrong or closed, {f['timed_out']} clients unfinished")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
