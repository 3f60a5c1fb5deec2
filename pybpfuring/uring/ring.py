"""`IoUring`: one io_uring instance driven from Python by raw syscalls and shared memory.

Memory ordering. The SQ and CQ rings are single-producer/single-consumer queues shared with the kernel:
  * we publish SQEs by storing the SQ tail *after* writing the SQE bytes (a release store), and read
    the SQ head the kernel advances (an acquire load) before reusing a slot;
  * we read the CQ tail (acquire) before reading CQE bytes, and store the CQ head (release) only after
    copying the CQE out, so the kernel cannot overwrite a slot we are still reading.
On x86_64 (TSO) plain loads and stores already have acquire/release semantics, so the memoryview word
accesses below are enough. The one x86 exception is store->load (SQPOLL: store the tail, then load the
NEED_WAKEUP flag), which needs a full fence: `_full_fence()` provides one. On aarch64 the syscall paths
are ordered by the kernel entry/exit itself, but a pure user-space peek of the CQ has no acquire fence
(Python offers none cheaply); see docs/ring.md.

Keep-alive. A request's memory (buffers, iovec arrays, timespecs, path strings) is pinned by the prep_*
functions onto the SQE object (`sqe._keep`). When the SQE is handed to the kernel (`_flush`), the pins
move to `self._inflight`, which counts *every* submitted request per user_data (pinned or not, so an
older unpinned request sharing a user_data cannot release a newer one's memory early). Each reaped CQE
that is not a multishot "more to come" CQE drops one count; pins go when their count reaches zero.
Requests flagged IOSQE_CQE_SKIP_SUCCESS may post no CQE, so they are not counted and their pins live
as long as the ring (then in `_ORPHANED_PINS`). CQEs that no SQE of ours produced (IORING_OP_MSG_RING
from another ring) could release a colliding user_data early: give such traffic distinct user_data.
"""
from __future__ import annotations

import ctypes
import errno
import mmap
import os
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

from pybpfuring.errors import ArgumentError, check_int_arg, check_timeout_arg
from pybpfuring.abi import uring as C
from .registration import RegistrationMixin
from pybpfuring.abi.structs import Cqe, IoUringGeteventsArg, IoUringParams, Sqe, Timespec
from .syscalls import (ARGSZ_NONE, ENTER_NR, IoUringEnterError, IoUringSetupError, RingClosedError,
                       io_uring_enter_raw, io_uring_setup)
from .syscalls import _sys_enter_fast as _sys_enter

_U32 = 0xFFFFFFFF
_ZERO_SQE = bytes(C.SQE_SIZE)
_CQE_LAYOUT = struct.Struct("=QiI")  # struct io_uring_cqe: user_data, res, flags
_tuple_new = tuple.__new__  # builds a Cqe from the unpacked fields without NamedTuple's __new__
# Setup flags whose memory layout this implementation does not drive (mixed-size entries, user-provided
# ring memory, an fd that is only a registered index); refused with a clear message instead of misread.
_UNSUPPORTED_SETUP = {C.IORING_SETUP_NO_MMAP: "NO_MMAP", C.IORING_SETUP_CQE_MIXED: "CQE_MIXED",
                      C.IORING_SETUP_SQE_MIXED: "SQE_MIXED",
                      C.IORING_SETUP_REGISTERED_FD_ONLY: "REGISTERED_FD_ONLY"}
# user_data of the cancel request `close()` issues to quiesce the ring: never a user's pins key.
_QUIESCE_USER_DATA = 0xFFFF_FFFF_FFFF_FFFE
# Pins of requests still unfinished when their ring was closed (the kernel tears a ring down
# asynchronously, so they may still be written). Kept for the process lifetime: a bounded leak beats
# a use-after-free. Normally empty, because close() cancels and reaps everything first.
_ORPHANED_PINS: list[object] = []
_fence_lock = threading.Lock()


def _full_fence() -> None:
    """A full memory barrier: the uncontended lock uses an atomic read-modify-write (LOCK CMPXCHG on
    x86), which orders the earlier SQ tail store before the later SQ flags load."""
    _fence_lock.acquire(False)
    _fence_lock.release()


class IoUring(RegistrationMixin):
    """An io_uring instance: `with IoUring(64) as ring: sqe = ring.get_sqe(); prep_nop(sqe); ...`.

    Not thread-safe (like liburing): use one ring per thread, or lock around it. With
    IORING_SETUP_SINGLE_ISSUER the ring must be driven from the thread that created it.
    """

    def __init__(self, entries: int, *, flags: int = 0, cq_entries: int | None = None,
                 sq_thread_idle: int = 0) -> None:
        self._closed = True  # until fully set up, so __del__/close on a failed init is harmless
        self._fd = -1
        self._maps: list[mmap.mmap] = []
        self._views: list[memoryview] = []
        params = _build_params(entries, flags, cq_entries, sq_thread_idle)
        self._fd = io_uring_setup(entries, ctypes.addressof(params))
        self._params = params
        try:
            self._map_rings(params)
        except BaseException:
            self._unmap_and_close()
            raise
        self._closed = False

    # ----- setup -----------------------------------------------------------------------------------
    def _map_rings(self, p: IoUringParams) -> None:
        self._setup_flags = p.flags
        self._sq_entries, self._cq_entries = p.sq_entries, p.cq_entries
        has_sqarray = not (p.flags & C.IORING_SETUP_NO_SQARRAY)
        sqe_stride = 128 if p.flags & C.IORING_SETUP_SQE128 else C.SQE_SIZE
        self._cqe_stride = 32 if p.flags & C.IORING_SETUP_CQE32 else C.CQE_SIZE
        sq_off, cq_off = p.sq_off, p.cq_off
        if has_sqarray:
            sq_size = sq_off.array + p.sq_entries * 4
        else:  # no array: the ring ends with the last control word
            sq_size = max(sq_off.head, sq_off.tail, sq_off.ring_mask, sq_off.ring_entries,
                          sq_off.flags, sq_off.dropped) + 4
        cq_size = cq_off.cqes + p.cq_entries * self._cqe_stride
        if p.features & C.IORING_FEAT_SINGLE_MMAP:
            # One mapping (at the SQ offset) holds both rings, so map the larger of the two sizes.
            sq_size = cq_size = max(sq_size, cq_size)
            sq_map = cq_map = self._mmap(sq_size, C.IORING_OFF_SQ_RING, "SQ/CQ rings")
        else:
            sq_map = self._mmap(sq_size, C.IORING_OFF_SQ_RING, "SQ ring")
            cq_map = self._mmap(cq_size, C.IORING_OFF_CQ_RING, "CQ ring")
        sqes_size = p.sq_entries * sqe_stride
        sqe_map = self._mmap(sqes_size, C.IORING_OFF_SQES, "SQE array")
        self.sq_ring_size, self.cq_ring_size, self.sqes_size = sq_size, cq_size, sqes_size
        self.sq_ring_addr, self.cq_ring_addr = _address_of(sq_map), _address_of(cq_map)
        self.sqes_addr = _address_of(sqe_map)
        self.sq_array_addr = self.sq_ring_addr + sq_off.array if has_sqarray else None

        # Word views (u32) over the rings: index = byte offset // 4 (all offsets are 4-aligned).
        self._sq_words = self._view(sq_map).cast("I")
        self._cq_bytes = self._view(cq_map)
        self._cq_words = self._cq_bytes[:cq_size // 4 * 4].cast("I")
        self._views += [self._sq_words, self._cq_words]
        self._sq_head_i, self._sq_tail_i = sq_off.head // 4, sq_off.tail // 4
        self._sq_flags_i, self._sq_dropped_i = sq_off.flags // 4, sq_off.dropped // 4
        self._cq_head_i, self._cq_tail_i = cq_off.head // 4, cq_off.tail // 4
        self._cq_overflow_i = cq_off.overflow // 4
        self._sq_mask = self._sq_words[sq_off.ring_mask // 4]
        self._cq_mask = self._cq_words[cq_off.ring_mask // 4]
        self._cqes_off = cq_off.cqes
        if has_sqarray:
            # Slot i always names SQE i (as liburing does), so submission never writes the array.
            base = sq_off.array // 4
            for i in range(p.sq_entries):
                self._sq_words[base + i] = i
        self._sqe_bytes = self._view(sqe_map)
        self._sqe_views = [self._new_sqe_view(sqe_map, i * sqe_stride) for i in range(p.sq_entries)]
        self._sqe_stride = sqe_stride
        self._sqe_tail = self._sqe_flushed = 0  # our SQ tail; the part already published
        self._rewind = bool(p.flags & C.IORING_SETUP_SQ_REWIND)
        self._sqpoll = bool(p.flags & C.IORING_SETUP_SQPOLL)
        # DEFER_TASKRUN posts completions only while we are inside io_uring_enter(GETEVENTS).
        self._cq_always_enter = bool(p.flags & C.IORING_SETUP_DEFER_TASKRUN)
        self._inflight: dict[int, list[Any]] = {}  # user_data -> [count, pins or None]
        self._ring_lifetime_pins: list[object] = []  # pins of IOSQE_CQE_SKIP_SUCCESS requests
        self._registered_buffer_pins: list[object] = []
        self._wait_ts = Timespec()
        self._wait_arg = IoUringGeteventsArg(ts=ctypes.addressof(self._wait_ts))
        self._wait_arg_ptr = ctypes.c_void_p(ctypes.addressof(self._wait_arg))
        self._wait_arg_size = ctypes.c_size_t(ctypes.sizeof(self._wait_arg))

    def _mmap(self, size: int, offset: int, what: str) -> mmap.mmap:
        try:
            m = mmap.mmap(self._fd, size, flags=mmap.MAP_SHARED | mmap.MAP_POPULATE,
                          prot=mmap.PROT_READ | mmap.PROT_WRITE, offset=offset)
        except OSError as exc:
            raise IoUringSetupError(f"mmap of the io_uring {what} ({size} bytes at {offset:#x})",
                                    exc.errno or errno.EINVAL) from None
        self._maps.append(m)
        return m

    def _view(self, m: mmap.mmap) -> memoryview:
        v = memoryview(m)
        self._views.append(v)
        return v

    @staticmethod
    def _new_sqe_view(sqe_map: mmap.mmap, offset: int) -> Sqe:
        sqe = Sqe.from_buffer(sqe_map, offset)
        sqe._keep = None
        return sqe

    # ----- lifetime --------------------------------------------------------------------------------
    def __enter__(self) -> "IoUring":
        self._check_open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # last resort at GC/shutdown: never raise from a finaliser
            pass

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Cancel and reap what is in flight, unmap the rings and close the fd. Idempotent."""
        if self._closed:
            if self._fd >= 0 or self._maps:  # a failed __init__ left something behind
                self._unmap_and_close()
            return
        self._closed = True
        if self._has_pins():
            self._quiesce()
        _ORPHANED_PINS.extend(entry[1] for entry in self._inflight.values() if entry[1])
        _ORPHANED_PINS.extend(self._ring_lifetime_pins)
        self._inflight, self._ring_lifetime_pins = {}, []
        self._registered_buffer_pins = []  # the kernel unpins them when the ring is torn down
        self._unmap_and_close()

    def _unmap_and_close(self) -> None:
        self._sqe_views = []
        for v in reversed(self._views):
            v.release()
        self._views = []
        for m in self._maps:
            try:
                m.close()
            except BufferError:
                # The caller still holds an Sqe from get_sqe(): the mapping stays valid (so writes
                # through it cannot crash) and is unmapped when that last Sqe is garbage-collected.
                pass
        self._maps = []
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _quiesce(self, budget: float = 2.0) -> None:
        """Cancel every request (IORING_ASYNC_CANCEL_ANY|ALL) and reap until nothing is pinned."""
        self._closed = False  # the ring is still intact; close() finishes the job
        try:
            sqe = self.get_sqe()
            if sqe is None:
                self.submit()
                sqe = self.get_sqe()
            if sqe is not None:
                sqe.opcode = C.IORING_OP_ASYNC_CANCEL
                sqe.fd = -1
                sqe.cancel_flags = C.IORING_ASYNC_CANCEL_ANY | C.IORING_ASYNC_CANCEL_ALL
                sqe.user_data = _QUIESCE_USER_DATA
            self.submit()
            deadline = time.monotonic() + budget
            while self._has_pins() and time.monotonic() < deadline:
                self.wait_cqe(timeout=max(deadline - time.monotonic(), 0.0))
        except (OSError, TimeoutError):
            pass  # e.g. SINGLE_ISSUER ring closed from another thread: pins become orphans
        finally:
            self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise RingClosedError("this io_uring is closed")

    # ----- raw facts -------------------------------------------------------------------------------
    @property
    def fd(self) -> int:
        self._check_open()
        return self._fd

    @property
    def params(self) -> IoUringParams:
        """A copy of the io_uring_params the kernel returned (sq_off, cq_off, features, ...)."""
        return IoUringParams.from_buffer_copy(self._params)

    @property
    def features(self) -> int:
        return self._params.features

    @property
    def flags(self) -> int:
        return self._setup_flags

    @property
    def sq_entries(self) -> int:
        return self._sq_entries

    @property
    def cq_entries(self) -> int:
        return self._cq_entries

    def sq_flags(self) -> int:
        """The live IORING_SQ_* word (NEED_WAKEUP, CQ_OVERFLOW, TASKRUN)."""
        self._check_open()
        return self._sq_words[self._sq_flags_i]

    def cq_overflow(self) -> int:
        """CQEs the kernel had to drop because the CQ was full (stays 0 with IORING_FEAT_NODROP
        unless the kernel also ran out of memory)."""
        self._check_open()
        return self._cq_words[self._cq_overflow_i]

    # ----- submission ------------------------------------------------------------------------------
    def get_sqe(self) -> Sqe | None:
        """The next free SQE, zeroed; None when the SQ is full (submit() to make room)."""
        if self._closed:
            raise RingClosedError("this io_uring is closed")
        tail = self._sqe_tail
        # Acquire load of the kernel's SQ head: once it has moved past a slot the kernel no longer
        # reads that SQE. Under SQ_REWIND head stays 0 and our tail restarts at 0 after each submit.
        head = 0 if self._rewind else self._sq_words[self._sq_head_i]
        if (tail - head) & _U32 >= self._sq_entries:
            return None
        slot = tail & self._sq_mask
        self._sqe_tail = (tail + 1) & _U32
        offset = slot * self._sqe_stride
        self._sqe_bytes[offset:offset + C.SQE_SIZE] = _ZERO_SQE
        return self._sqe_views[slot]

    def sq_space_left(self) -> int:
        self._check_open()
        head = 0 if self._rewind else self._sq_words[self._sq_head_i]
        return self._sq_entries - ((self._sqe_tail - head) & _U32)

    def sq_ready(self) -> int:
        """SQEs filled (or published) that the kernel has not consumed yet."""
        self._check_open()
        head = 0 if self._rewind else self._sq_words[self._sq_head_i]
        return (self._sqe_tail - head) & _U32

    def _flush(self) -> int:
        """Publish filled SQEs to the kernel; returns how many are waiting to be consumed."""
        tail, flushed = self._sqe_tail, self._sqe_flushed
        if tail != flushed:
            self._pin_flushed(flushed, tail)
            if self._rewind:
                # The kernel takes SQEs 0..n-1; head and tail words stay 0 by contract.
                self._sqe_tail = self._sqe_flushed = 0
                return tail
            # Release store: the SQE bytes written above become visible before the new tail.
            self._sq_words[self._sq_tail_i] = tail
            self._sqe_flushed = tail
        elif self._rewind:
            return 0
        return (tail - self._sq_words[self._sq_head_i]) & _U32

    def _pin_flushed(self, start: int, end: int) -> None:
        """Count SQEs [start, end) as in flight and move their pins to the in-flight table."""
        views, mask, inflight = self._sqe_views, self._sq_mask, self._inflight
        i = start
        while i != end:
            sqe = views[i & mask]
            keep = sqe._keep
            if keep is not None:
                sqe._keep = None
            if sqe.flags & C.IOSQE_CQE_SKIP_SUCCESS:
                if keep is not None:
                    self._ring_lifetime_pins.append(keep)
            else:
                user_data = sqe.user_data
                entry = inflight.get(user_data)
                if entry is None:
                    inflight[user_data] = [1, keep]
                else:
                    entry[0] += 1
                    if keep is not None:
                        if entry[1] is None:
                            entry[1] = keep
                        else:
                            entry[1].extend(keep)
            i = (i + 1) & _U32

    def submit(self) -> int:
        """Hand every filled SQE to the kernel; returns how many it consumed."""
        return self._submit(0, 0)

    def submit_and_wait(self, wait_nr: int) -> int:
        """Submit, then block until at least `wait_nr` CQEs are ready."""
        check_int_arg(wait_nr, 0, _U32, "wait_nr")
        return self._submit(wait_nr, C.IORING_ENTER_GETEVENTS if wait_nr else 0)

    def _submit(self, wait_nr: int, enter_flags: int) -> int:
        if self._closed:
            raise RingClosedError("this io_uring is closed")
        to_submit = self._flush()
        if self._sqpoll:
            if to_submit:
                _full_fence()  # the tail store must be visible before we sample NEED_WAKEUP
                if self._sq_words[self._sq_flags_i] & C.IORING_SQ_NEED_WAKEUP:
                    enter_flags |= C.IORING_ENTER_SQ_WAKEUP
            if not enter_flags:
                return to_submit  # the SQ thread is awake and will pick them up
        elif not to_submit and not enter_flags:
            return 0
        ret = _sys_enter(ENTER_NR, self._fd, to_submit, wait_nr, enter_flags, None, ARGSZ_NONE)
        if ret < 0:
            ret = self._enter_failed(to_submit, wait_nr, enter_flags)
        return ret

    def _enter_failed(self, to_submit: int, wait_nr: int, enter_flags: int) -> int:
        """The slow path of a failed enter: retry on EINTR (nothing was consumed), else raise."""
        err = ctypes.get_errno()
        while err == errno.EINTR:
            ret = io_uring_enter_raw(self._fd, to_submit, wait_nr, enter_flags)
            if ret >= 0:
                return ret
            err = -ret
        raise IoUringEnterError(
            f"io_uring_enter(to_submit={to_submit}, min_complete={wait_nr})", err)

    # ----- completion ------------------------------------------------------------------------------
    def cq_ready(self) -> int:
        """CQEs in the CQ ring now (with DEFER_TASKRUN, only those already posted by an enter)."""
        self._check_open()
        words = self._cq_words
        return (words[self._cq_tail_i] - words[self._cq_head_i]) & _U32

    def _cq_needs_enter(self) -> bool:
        return self._cq_always_enter or bool(
            self._sq_words[self._sq_flags_i] & (C.IORING_SQ_CQ_OVERFLOW | C.IORING_SQ_TASKRUN))

    def get_events(self) -> None:
        """Let the kernel post pending completions (task work, overflow list) without waiting."""
        self._check_open()
        self._enter_checked(0, 0, C.IORING_ENTER_GETEVENTS)

    def _enter_checked(self, to_submit: int, min_complete: int, flags: int) -> int:
        while True:
            ret = io_uring_enter_raw(self._fd, to_submit, min_complete, flags)
            if ret != -errno.EINTR:
                break
        if ret < 0:
            raise IoUringEnterError(
                f"io_uring_enter(to_submit={to_submit}, min_complete={min_complete})", -ret)
        return ret

    def _peek_ready(self) -> Cqe | None:
        words = self._cq_words
        head = words[self._cq_head_i]
        if words[self._cq_tail_i] == head:  # acquire load of the tail, then the CQE bytes
            return None
        offset = self._cqes_off + (head & self._cq_mask) * self._cqe_stride
        return _tuple_new(Cqe, _CQE_LAYOUT.unpack_from(self._cq_bytes, offset))

    def peek_cqe(self) -> Cqe | None:
        """The oldest ready CQE without consuming it (cqe_seen() consumes); None if none is ready."""
        if self._closed:
            raise RingClosedError("this io_uring is closed")
        cqe = self._peek_ready()
        if cqe is None and self._cq_needs_enter():
            self._enter_checked(0, 0, C.IORING_ENTER_GETEVENTS)
            cqe = self._peek_ready()
        return cqe

    def cqe_seen(self) -> None:
        """Consume the CQE peek_cqe() returned, freeing its slot and the request's pinned memory."""
        self.cq_advance(1)

    def cq_advance(self, nr: int) -> None:
        """Consume `nr` ready CQEs."""
        if self._closed:
            raise RingClosedError("this io_uring is closed")
        words, head_i = self._cq_words, self._cq_head_i
        head = words[head_i]
        if nr > (words[self._cq_tail_i] - head) & _U32 or nr < 0:
            raise ValueError(f"cannot consume {nr} CQEs: only "
                             f"{(words[self._cq_tail_i] - head) & _U32} are ready")
        if self._inflight:
            for k in range(nr):
                offset = self._cqes_off + ((head + k) & self._cq_mask) * self._cqe_stride
                user_data, _, cflags = _CQE_LAYOUT.unpack_from(self._cq_bytes, offset)
                self._unpin(user_data, cflags)
        # Release store: our reads of the CQEs are done before the kernel may reuse their slots.
        words[head_i] = (head + nr) & _U32

    def _unpin(self, user_data: int, cflags: int) -> None:
        entry = self._inflight.get(user_data)
        if entry is not None and not cflags & C.IORING_CQE_F_MORE:
            entry[0] -= 1
            if entry[0] <= 0:
                del self._inflight[user_data]

    def wait_cqe(self, timeout: float | None = None) -> Cqe:
        """Wait for one CQE, consume it and return it. Raises TimeoutError after `timeout` seconds."""
        if self._closed:
            raise RingClosedError("this io_uring is closed")
        if timeout is not None:
            check_timeout_arg(timeout)
        # Fast path, inlined (the benchmark's per-block cost): a CQE is already in the ring.
        words = self._cq_words
        head = words[self._cq_head_i]
        if words[self._cq_tail_i] == head:  # acquire load of the tail, then the CQE bytes
            return self._wait_cqe_slow(timeout)
        fields = _CQE_LAYOUT.unpack_from(
            self._cq_bytes, self._cqes_off + (head & self._cq_mask) * self._cqe_stride)
        if self._inflight:
            self._unpin(fields[0], fields[2])
        words[self._cq_head_i] = (head + 1) & _U32  # release: the CQE was copied out above
        return _tuple_new(Cqe, fields)

    def wait_ready(self, timeout: float | None = None) -> Cqe:
        """Wait until a CQE is in the ring and return it without consuming it (as liburing's
        io_uring_wait_cqe; cqe_seen() consumes it). TimeoutError after `timeout` seconds."""
        if self._closed:
            raise RingClosedError("this io_uring is closed")
        cqe = self.peek_cqe()
        if cqe is not None:
            return cqe
        if timeout is None:
            return self._wait_one()
        check_timeout_arg(timeout)
        return self._wait_one_timed(timeout)

    def _wait_cqe_slow(self, timeout: float | None) -> Cqe:
        cqe = self.wait_ready(timeout)
        self.cq_advance(1)
        return cqe

    def _wait_one(self) -> Cqe:
        while True:
            self._enter_checked(0, 1, C.IORING_ENTER_GETEVENTS)
            cqe = self._peek_ready()
            if cqe is not None:
                return cqe

    def _wait_one_timed(self, timeout: float) -> Cqe:
        if timeout < 0:
            raise ValueError(f"timeout must be >= 0 seconds or None, not {timeout}")
        if not self._params.features & C.IORING_FEAT_EXT_ARG:
            raise IoUringEnterError("io_uring_enter(EXT_ARG timeout)", errno.EOPNOTSUPP,
                                    "the kernel lacks IORING_FEAT_EXT_ARG (Linux < 5.11)")
        deadline = time.monotonic() + timeout
        flags = C.IORING_ENTER_GETEVENTS | C.IORING_ENTER_EXT_ARG
        while True:
            self._wait_ts.set_seconds(max(deadline - time.monotonic(), 0.0))
            ret = io_uring_enter_raw(self._fd, 0, 1, flags, self._wait_arg_ptr,
                                     self._wait_arg_size)
            cqe = self._peek_ready()
            if cqe is not None:
                return cqe
            if ret == -errno.ETIME or (ret >= 0 or ret == -errno.EINTR) and \
                    time.monotonic() >= deadline:
                raise TimeoutError(f"no io_uring completion within {timeout} s")
            if ret < 0 and ret != -errno.EINTR:
                raise IoUringEnterError(f"io_uring_enter(min_complete=1, timeout={timeout})", -ret)

    def cqes(self) -> Iterator[Cqe]:
        """Consume and yield every CQE that is ready (does not wait for more)."""
        while True:
            cqe = self.peek_cqe()
            if cqe is None:
                return
            self.cq_advance(1)
            yield cqe

    def inflight_pins(self) -> int:
        """How many user_data keys still pin memory (for tests and leak hunting)."""
        return sum(1 for entry in self._inflight.values() if entry[1])

    def _has_pins(self) -> bool:
        return any(entry[1] for entry in self._inflight.values())

    def __repr__(self) -> str:
        if self._closed:
            return "<IoUring closed>"
        return (f"<IoUring fd={self._fd} sq_entries={self._sq_entries} "
                f"cq_entries={self._cq_entries} flags={self._setup_flags:#x} "
                f"features={self._params.features:#x}>")


def _build_params(entries: int, flags: int, cq_entries: int | None,
                  sq_thread_idle: int) -> IoUringParams:
    for name, value in (("entries", entries), ("flags", flags), ("sq_thread_idle", sq_thread_idle)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"IoUring {name} must be an int, not {type(value).__name__}")
        if not 0 <= value <= _U32:
            raise ArgumentError(f"IoUring {name} must fit in an unsigned 32-bit word, got {value}")
    for bit, name in _UNSUPPORTED_SETUP.items():
        if flags & bit:
            raise ArgumentError(f"IORING_SETUP_{name} is not supported by pybpfuring's ring")
    params = IoUringParams(flags=flags, sq_thread_idle=sq_thread_idle)
    if cq_entries is not None:
        if not isinstance(cq_entries, int) or isinstance(cq_entries, bool) or \
                not 0 <= cq_entries <= _U32:
            raise ArgumentError(f"IoUring cq_entries must be an unsigned 32-bit int, got {cq_entries!r}")
        params.flags |= C.IORING_SETUP_CQSIZE
        params.cq_entries = cq_entries
    return params


def _address_of(m: mmap.mmap) -> int:
    anchor = ctypes.c_char.from_buffer(m)
    try:
        return ctypes.addressof(anchor)
    finally:
        del anchor  # drop the export at once, or close() could not unmap
