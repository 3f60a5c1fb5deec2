"""The helpers a 2021 op_bpf program calls, for the engine (ids from `abi/bpf2021.py`).

Every helper is `fn(vm, r1, r2, r3, r4, r5) -> int` (r0; negative errno on failure). Pointers into
engine memory (the program's stack, map values) go through the checked memory table, so a bad one
faults the program (-EFAULT for its request); user pointers go through `UserMemory` and give -EFAULT.

| id  | helper                                      | semantics (reference/io_uring-bpf-abi.md §2.3) |
|-----|---------------------------------------------|------------------------------------------------|
| 1/2/3 | map_lookup_elem / update_elem / delete_elem | the kernel's, on engine maps                 |
| 5   | ktime_get_ns                                | CLOCK_MONOTONIC ns                             |
| 6   | trace_printk(fmt, size, a1, a2, a3)         | to the `pybpfuring.trace` logger + ring.trace  |
| 7   | get_prandom_u32                             |                                                |
| 148 | copy_from_user(dst, size, uptr)             | dst zeroed and -EFAULT on a bad uptr           |
| 164 | queue_sqe / submit(ctx, sqe, len)           | len must be 64; the SQE's cq_idx (byte 48) routes its CQE |
| 165 | emit_cqe(ctx, cq_idx, user_data, res, flags) | -EINVAL bad cq_idx, -ENOMEM extra CQ full (dropped) |
| 166 | reap_cqe(ctx, cq_idx, cqe, len)             | oldest CQE; -ENOENT empty, -EINVAL bad idx/len (cqe zeroed) |
| 167 | copy_to_user(uptr, src, size)               | -EFAULT on a bad uptr                          |
"""
from __future__ import annotations

import errno
import logging
import random
import re
import struct
import time
from collections import deque
from typing import TYPE_CHECKING, Callable

from pybpfuring.abi.bpf2021 import BPF_FUNC_copy_from_user, BPF_FUNC_get_prandom_u32, BPF_FUNC_ktime_get_ns, BPF_FUNC_map_delete_elem, BPF_FUNC_map_lookup_elem, BPF_FUNC_map_update_elem, BPF_FUNC_trace_printk
from pybpfuring.runtime.engine.faults import HelperFault
from pybpfuring.runtime.engine.interp import Vm

from .engine_maps import EngineArrayMap, EngineMap
from .usermem import UserMemory

if TYPE_CHECKING:
    from .emulated import EmulatedBackend

HELPER_SUBMIT, HELPER_EMIT_CQE, HELPER_REAP_CQE, HELPER_COPY_TO_USER = 164, 165, 166, 167
SQE_SIZE, CQE_SIZE = 64, 16
_CQE = struct.Struct("<QiI")
_ZERO_CQE = bytes(CQE_SIZE)
_M32 = 0xFFFF_FFFF
trace_logger = logging.getLogger("pybpfuring.trace")
_FORMAT = re.compile(rb"%(%|[-+ 0#]*\d*(?:ll|l|h|hh|z)?[diuxXcps])")


def _s32(value: int) -> int:
    value &= _M32
    return value - (1 << 32) if value & 0x8000_0000 else value


class Helpers2021:
    """The helper table of one emulated ring (it reaches the ring's CQs, maps and submit path)."""

    def __init__(self, backend: "EmulatedBackend") -> None:
        self._backend = backend
        self._user = UserMemory()
        self.maps_by_handle: dict[int, EngineMap] = {}
        self.trace: deque[str] = deque(maxlen=1000)

    def table(self) -> dict[int, Callable[[Vm, int, int, int, int, int], int]]:
        return {
            BPF_FUNC_map_lookup_elem: self.map_lookup_elem,
            BPF_FUNC_map_update_elem: self.map_update_elem,
            BPF_FUNC_map_delete_elem: self.map_delete_elem,
            BPF_FUNC_ktime_get_ns: self.ktime_get_ns,
            BPF_FUNC_trace_printk: self.trace_printk,
            BPF_FUNC_get_prandom_u32: self.get_prandom_u32,
            BPF_FUNC_copy_from_user: self.copy_from_user,
            HELPER_SUBMIT: self.submit,
            HELPER_EMIT_CQE: self.emit_cqe,
            HELPER_REAP_CQE: self.reap_cqe,
            HELPER_COPY_TO_USER: self.copy_to_user,
        }

    # --- maps ---------------------------------------------------------------------------------
    def _map(self, handle: int) -> EngineMap:
        found = self.maps_by_handle.get(handle)
        if found is None:
            raise HelperFault(f"{handle:#x} is not a map of this ring", errno.EINVAL)
        return found

    def map_lookup_elem(self, vm: Vm, handle: int, key_ptr: int, r3: int, r4: int, r5: int) -> int:
        found = self._map(handle)
        if type(found) is EngineArrayMap:
            return found.lookup_index(vm.memory.load(key_ptr, 4))
        return found.lookup_addr(vm.memory.read_bytes(key_ptr, found.key_size))

    def map_update_elem(self, vm: Vm, handle: int, key_ptr: int, value_ptr: int, flags: int,
                        r5: int) -> int:
        found = self._map(handle)
        key = vm.memory.read_bytes(key_ptr, found.key_size)
        return found.update(key, vm.memory.read_bytes(value_ptr, found.value_size), flags)

    def map_delete_elem(self, vm: Vm, handle: int, key_ptr: int, r3: int, r4: int, r5: int) -> int:
        found = self._map(handle)
        return found.delete(vm.memory.read_bytes(key_ptr, found.key_size))

    # --- misc ---------------------------------------------------------------------------------
    def ktime_get_ns(self, vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
        return time.monotonic_ns()

    def get_prandom_u32(self, vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
        return random.getrandbits(32)

    def trace_printk(self, vm: Vm, fmt: int, size: int, a1: int, a2: int, a3: int) -> int:
        if not 0 < size <= 1024:
            return -errno.EINVAL
        text = vm.memory.read_cstring(fmt, size)
        args = iter((a1, a2, a3))

        def one(match: re.Match[bytes]) -> bytes:
            spec = match.group(1)
            if spec == b"%":
                return b"%"
            value = next(args, 0)
            conv = spec[-1:]
            if conv in b"di":
                wide = b"l" in spec
                value = value - (1 << 64) if wide and value >> 63 else _s32(value) if not wide else value
                return str(value).encode()
            if conv in b"xX":
                return format(value if b"l" in spec else value & _M32, "x" if conv == b"x" else "X").encode()
            if conv == b"p":
                return f"{value:#x}".encode()
            if conv == b"c":
                return bytes([value & 0xFF])
            if conv == b"s":
                try:
                    return vm.memory.read_cstring(value, 256)
                except Exception:
                    return b"(fault)"
            return str(value if b"l" in spec else value & _M32).encode()
        line = _FORMAT.sub(one, text).decode(errors="replace").rstrip("\n")
        self.trace.append(line)
        trace_logger.info("%s", line)
        return len(line)

    # --- user memory --------------------------------------------------------------------------
    def copy_from_user(self, vm: Vm, dst: int, size: int, user_ptr: int, r4: int, r5: int) -> int:
        size &= _M32
        if size:
            vm.memory.view(dst, size, writable=True)  # faults the program on a bad destination
            if not self._user.read_into(dst, user_ptr, size):
                vm.memory.fill(dst, size, 0)
                return -errno.EFAULT
        return 0

    def copy_to_user(self, vm: Vm, user_ptr: int, src: int, size: int, r4: int, r5: int) -> int:
        size &= _M32
        if size:
            vm.memory.view(src, size)  # faults the program on a bad source
            if not self._user.write_from(user_ptr, src, size):
                return -errno.EFAULT
        return 0

    # --- io_uring -----------------------------------------------------------------------------
    def submit(self, vm: Vm, ctx: int, sqe_ptr: int, length: int, r4: int, r5: int) -> int:
        if length != SQE_SIZE:
            return -errno.EINVAL
        raw = vm.memory.read_bytes(sqe_ptr, SQE_SIZE)
        self._backend.program_sqes += 1
        return self._backend.submit_from_program(raw)

    def emit_cqe(self, vm: Vm, ctx: int, cq_idx: int, user_data: int, res: int, flags: int) -> int:
        cqs = self._backend.cqs
        cq_idx &= _M32
        if cq_idx >= len(cqs):
            return -errno.EINVAL
        if not self._backend.post(cq_idx, user_data, _s32(res), flags & _M32):
            return -errno.ENOMEM
        return 0

    def reap_cqe(self, vm: Vm, ctx: int, cq_idx: int, cqe_ptr: int, length: int, r5: int) -> int:
        cqs = self._backend.cqs
        cq_idx &= _M32
        if length != CQE_SIZE or cq_idx >= len(cqs):
            if length:
                vm.memory.fill(cqe_ptr, min(length & _M32, CQE_SIZE), 0)
            return -errno.EINVAL
        vm.memory.view(cqe_ptr, CQE_SIZE, writable=True)  # fault before taking the CQE, not after
        cqe = cqs[cq_idx].reap()
        if cqe is None:
            vm.memory.write_bytes(cqe_ptr, _ZERO_CQE)
            return -errno.ENOENT
        vm.memory.write_bytes(cqe_ptr, _CQE.pack(cqe[0], cqe[1], cqe[2] & _M32))
        return 0
