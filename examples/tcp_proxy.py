"""A small TCP proxy over loopback: asyncio accepts, a BPF program relays every request/response.

For each client connection an asyncio server (loop.sock_accept) makes an unconnected socket for
the upstream side and hands both fds to one `proxy_fd` request: it connects upstream
(`prep_connect`), then relays: recv from the client -> send all of it upstream -> recv the answer
-> send all of it to the client, until the client closes; it closes both sockets and completes with
the bytes relayed back (or the error that ended the relay: a refused upstream gives
-ECONNREFUSED). The upstream is examples/tcp_echo.py's `accept_and_echo` workers on the same ring,
so the whole path client -> proxy -> echo -> proxy -> client is BPF programs; the load generator is
tcp_echo.py's, in a subprocess.

    python3 examples/tcp_proxy.py [--clients 200] [--requests 20] [--size 64]
"""
from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tcp_echo as T  # noqa: E402
from pybpfuring.errors import PyBpfUringError
from pybpfuring.lang import (EIO, IORING_OP_CLOSE, IORING_OP_RECV, IORING_OP_SEND,  # noqa: E402
                             Ctx, Sqe, bpf_function, i32, iouring_program, prep_connect, struct,
                             submit, u32, u64, wait_cqe)
from tcp_echo import submit_sock  # noqa: E402  (the SQE in its own frame: see tcp_echo.py)

MAX_ROUNDS = 1 << 20
MAX_PIECES = 64
MAX_CLIENTS = 500         # proxy slots + upstream workers each take a CQ: 1,024 at most


@struct
class ProxyArgs:
    fd: i32       # the client's connection
    up: i32       # an unconnected TCP socket for the upstream side
    cq: u32
    addrlen: u32
    addr: u64     # the upstream's sockaddr, in user memory
    buf: u64      # T.BUF bytes of user memory
    size: u32


@bpf_function(inline=False)
def submit_connect(ctx: Ctx, args: ProxyArgs) -> i32:
    sqe = Sqe()
    prep_connect(sqe, args.up, args.addr, args.addrlen)
    sqe.cq_idx = args.cq
    return submit(ctx, sqe)


@iouring_program
def proxy_fd(ctx: Ctx, args: ProxyArgs) -> i32:
    # The two legs (request upstream, answer to the client) are written out rather than looped
    # over with `dst = args.up if leg == 0 else args.fd`: that form made the kernel verifier give
    # up on bpf_ops ("The sequence of 8193 jumps is too complex"; docs/usecases.md, Limits).
    tag = args.cq << 16                 # submit_sock's CQ half
    err = 0
    total = 0
    submit_connect(ctx, args)
    cqe = yield wait_cqe(ctx, args.cq)
    if cqe.res < 0:
        err = cqe.res
    for r in range(MAX_ROUNDS):
        if err != 0:
            break
        submit_sock(ctx, tag | IORING_OP_RECV, args.fd, args.buf, args.size)  # the request
        cqe = yield wait_cqe(ctx, args.cq)
        n = cqe.res
        if n <= 0:
            err = n
            break
        sent = 0
        for piece in range(MAX_PIECES):
            if sent >= n:
                break
            submit_sock(ctx, tag | IORING_OP_SEND, args.up, args.buf + u64(sent), u32(n - sent))
            cqe = yield wait_cqe(ctx, args.cq)
            if cqe.res <= 0:
                err = cqe.res if cqe.res < 0 else -EIO
                break
            sent += cqe.res
        if err != 0 or sent < n:
            break
        submit_sock(ctx, tag | IORING_OP_RECV, args.up, args.buf, args.size)  # the answer
        cqe = yield wait_cqe(ctx, args.cq)
        n = cqe.res
        if n <= 0:
            err = n if n < 0 else -EIO
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
        if err != 0 or sent < n:
            break
        total += n
    submit_sock(ctx, tag | IORING_OP_CLOSE, args.fd, 0, 0)
    cqe = yield wait_cqe(ctx, args.cq)
    submit_sock(ctx, tag | IORING_OP_CLOSE, args.up, 0, 0)
    cqe = yield wait_cqe(ctx, args.cq)
    if err < 0:
        return err
    return i32(total)


async def serve_proxy(front: socket.socket, upstream: tuple[str, int] | None, slots_n: int,
                      workers: int, done: asyncio.Event, backend: str, start) -> dict:
    """asyncio accepts on `front`; proxy_fd relays to `upstream` (None: to this ring's own
    accept_and_echo workers, `workers` of them)."""
    from pybpfuring.runtime import Ring, sockaddr_in
    loop = asyncio.get_running_loop()
    front.setblocking(False)
    echo_lst = T.listener() if upstream is None else None
    target = echo_lst.getsockname() if echo_lst is not None else upstream
    with Ring(64, cqs=[2] * (slots_n + workers), backend=backend) as ring:
        ring.register_programs([proxy_fd, T.accept_and_echo])
        addr = ring.user_memory(ctypes.c_uint8 * 16)
        ctypes.memmove(addr, sockaddr_in(*target), 16)
        slots = []
        for i in range(slots_n):
            buf = ring.user_memory(ctypes.c_uint8 * T.BUF)
            a = ring.user_memory(ProxyArgs.ctype)
            a.cq, a.addr, a.addrlen, a.buf, a.size = i + 1, ctypes.addressof(addr), 16, \
                ctypes.addressof(buf), T.BUF
            slots.append((a, buf))
        echo = T._slot_memory(ring, workers + slots_n)[slots_n:]    # CQs after the proxy slots
        for a, _ in echo:
            a.fd = echo_lst.fileno() if echo_lst is not None else -1
            ring.prep_bpf(T.accept_and_echo, user_data=ctypes.addressof(a))
        ring.submit()
        start()
        by_addr = {ctypes.addressof(a): i for i, (a, _) in enumerate(slots)}
        free: asyncio.Queue[int] = asyncio.Queue()
        for i in range(slots_n):
            free.put_nowait(i)
        results: list[int] = []
        echo_served: list[int] = []
        busy = 0

        async def reap() -> None:
            nonlocal busy
            async for cqe in ring.cqes_async():
                if cqe.user_data in by_addr:
                    results.append(cqe.res)
                    busy -= 1
                    free.put_nowait(by_addr[cqe.user_data])
                else:
                    echo_served.append(cqe.res)

        reaper = asyncio.create_task(reap())
        async for conn in T.accepted(loop, front, done):
            slot = await free.get()
            a = slots[slot][0]
            a.fd = conn.detach()
            a.up = socket.socket(socket.AF_INET, socket.SOCK_STREAM).detach()
            busy += 1
            ring.prep_bpf(proxy_fd, user_data=ctypes.addressof(a))
            ring.submit()
        while busy > 0:
            await asyncio.sleep(0.01)
        if echo_lst is not None:
            echo_lst.shutdown(socket.SHUT_RDWR)
            while len(echo_served) < workers:
                await asyncio.sleep(0.01)
            echo_lst.close()
        reaper.cancel()
        try:
            await reaper
        except asyncio.CancelledError:
            pass
        return {"served": len(results), "errors": sum(r < 0 for r in results),
                "first_error": next((r for r in results if r < 0), 0), "backend": ring.backend}


def run(clients: int, requests: int, size: int, duration: float, backend: str = "auto",
        upstream: tuple[str, int] | None = None) -> dict:
    front = T.listener()
    port = front.getsockname()[1]
    try:
        async def go() -> tuple[dict, object]:
            done = asyncio.Event()
            procs: list = []

            def start() -> None:
                procs.append(T.start_client(port, clients, requests, size, duration))

            async def watch() -> None:
                while not procs or procs[0].poll() is None:
                    await asyncio.sleep(0.02)
                done.set()
            w = asyncio.create_task(watch())
            info = await serve_proxy(front, upstream, clients, 0 if upstream else clients, done,
                                     backend, start)
            await w
            return info, procs[0]
        info, client = asyncio.run(go())
        out, _ = client.communicate(timeout=duration + 60)
    finally:
        front.close()
    figures = json.loads(out)
    figures.update(info)
    return figures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=200, help=f"concurrent clients (1..{MAX_CLIENTS})")
    p.add_argument("--requests", type=int, default=20, help="messages per client (default 20)")
    p.add_argument("--size", type=int, default=64, help=f"bytes per message (1..{T.BUF})")
    p.add_argument("--duration", type=float, default=60.0, help="load generator's limit in s")
    p.add_argument("--backend", default="auto", choices=["auto", "emulated", "bpf_ops"])
    a = p.parse_args(argv)
    if not 1 <= a.clients <= MAX_CLIENTS or not 1 <= a.size <= T.BUF or a.requests < 1 \
            or not 0 < a.duration <= 3600:
        p.error(f"--clients 1..{MAX_CLIENTS}, --size 1..{T.BUF}, --requests >= 1, --duration 0..3600")
    try:
        f = run(a.clients, a.requests, a.size, a.duration, a.backend)
    except (ValueError, PyBpfUringError) as e:
        if a.backend == "auto":
            raise
        # Where the kernel backend cannot run this (its 256 KiB of user memory per ring, a
        # verifier limit), say so instead of a traceback: docs/usecases.md lists these limits.
        print(f"{p.prog} cannot run on backend {a.backend}: {e}")
        return 3
    print(f"proxy ({f['backend']}): {f['requests']}/{f['expected']} echoes through the proxy from "
          f"{a.clients} clients in {f['elapsed']:.2f} s: {f['rps']:,.0f} requests/s, p50 "
          f"{f['p50_us']} us, p99 {f['p99_us']} us; {f['served']} connections relayed, "
          f"{f['errors']} with an error")
    if f["bad"] or f["timed_out"] or f["requests"] != f["expected"] or f["errors"]:
        print(f"FAILED: {f['bad']} wrong or closed, {f['timed_out']} unfinished, first error "
              f"{f['first_error']}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
