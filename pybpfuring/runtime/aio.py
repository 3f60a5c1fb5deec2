"""`Ring` inside asyncio: `await ring.wait_cqe_async(cq)` and `async for cqe in ring.cqes_async(cq)`.

An eventfd is registered with the ring's real io_uring (IORING_REGISTER_EVENTFD): the kernel
signals it for every CQE it posts there, and the event loop watches it with `loop.add_reader`. When
it fires, the coroutine clears it, then pumps the ring without blocking (programs run, their SQEs
reach the kernel, CQEs are routed to CQs) and looks at the CQ again. Clearing before pumping means a
CQE the kernel posts during the pump signals the eventfd again, so no wake-up is lost.

Not every CQE of a Ring comes from the kernel: a BPF request can complete, or post to an extra CQ,
during a pump with nothing new from the kernel, and a non-blocking pump does a bounded number of
program runs (`run_budget`). So a waiter also re-pumps after `TICK` seconds without a signal; with
I/O in flight the eventfd is what wakes it.
"""
from __future__ import annotations

import asyncio
import ctypes
import os
from collections.abc import AsyncIterator
from typing import Any

from pybpfuring.abi import uring as C
from pybpfuring.abi.structs import Cqe
from pybpfuring.uring.syscalls import io_uring_register

TICK = 0.1   # seconds between safety re-pumps while no eventfd signal arrives


class RingEventFd:
    """One eventfd registered with a ring's real io_uring; closed with the ring."""

    def __init__(self, ring_fd: int) -> None:
        self.fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        try:
            value = ctypes.c_int32(self.fd)
            io_uring_register(ring_fd, C.IORING_REGISTER_EVENTFD, ctypes.addressof(value), 1,
                              "REGISTER_EVENTFD")
        except BaseException:
            os.close(self.fd)
            raise
        self.ring_fd = ring_fd

    def clear(self) -> None:
        try:
            os.eventfd_read(self.fd)
        except BlockingIOError:
            pass

    def close(self, ring_open: bool) -> None:
        if self.fd < 0:
            return
        if ring_open:   # a closed ring dropped its eventfd with it
            try:
                io_uring_register(self.ring_fd, C.IORING_UNREGISTER_EVENTFD, None, 0,
                                  "UNREGISTER_EVENTFD")
            except OSError:
                pass
        os.close(self.fd)
        self.fd = -1

    async def signalled(self, timeout: float) -> None:
        """Returns when the eventfd is readable, or after `timeout` s."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()

        def ready() -> None:
            if not fut.done():
                fut.set_result(None)

        fd = self.fd          # close() may run while this waits (the ring closed under a task)
        loop.add_reader(fd, ready)
        try:
            await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            loop.remove_reader(fd)


async def wait_cqe_async(ring: Any, cq: int, timeout: float | None) -> Cqe:
    """The body of `Ring.wait_cqe_async`: see there."""
    queue = ring._cq(cq)
    efd: RingEventFd = ring._eventfd()
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    while True:
        efd.clear()
        if not queue.ready:
            ring._backend().pump()        # non-blocking: runs what is ready, reaps the kernel's CQEs
        if queue.ready:
            cqe: Cqe = queue.reap()
            return cqe
        wait = TICK
        if deadline is not None:
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(f"no CQE on CQ {cq} within {timeout} s")
            wait = min(wait, left)
        await efd.signalled(wait)


async def cqes_async(ring: Any, cq: int) -> AsyncIterator[Cqe]:
    """The body of `Ring.cqes_async`: every CQE of CQ `cq`, as it arrives, until the ring closes."""
    while not ring.closed:
        yield await wait_cqe_async(ring, cq, None)
