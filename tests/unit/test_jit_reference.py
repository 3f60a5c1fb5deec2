"""The 2021 reference programs (`examples/reference.py`), compiled and linked (no kernel), on the
interpreter and on the JIT: every run's r0, the map, the CQs, the submitted SQEs and user memory agree.

The helpers here are real implementations over engine memory (checked accessors): an array map in a
memory region, CQs as in-process queues, submitted SQEs recorded as bytes, user memory as a region.
A small scheduler completes submitted SQEs at once (on the SQE's cq_idx) and re-runs a program that
returned WAIT once its CQ holds wait_nr CQEs, so each program runs through its whole chain.
"""
from __future__ import annotations

import errno
import struct
from collections import deque
from pathlib import Path

import pytest

from pybpfuring.compiler import driver
from pybpfuring.abi import isa
from pybpfuring.lang.constants import OK, WAIT
from pybpfuring.loader.object import BpfObject
from pybpfuring.runtime.engine.interp import Program, Vm
from pybpfuring.runtime.engine.jit import JitVm
from pybpfuring.runtime.engine.memory import Memory, Region

REFERENCE = Path(__file__).resolve().parents[2] / "examples" / "reference.py"
M64 = (1 << 64) - 1
SQE_USER_DATA, SQE_CQ_IDX, SQE_LEN = 32, 48, 24
SECRET = 0x1234_5678


@pytest.fixture(scope="module")
def obj() -> BpfObject:
    module = driver.load_module(REFERENCE)
    return BpfObject.open(driver.compile_functions(driver.programs_in(module)))


class World:
    """Maps, CQs and user memory of one ring, in one Memory shared by both engines (same addresses)."""

    def __init__(self, memory: Memory, obj: BpfObject):
        self.memory = memory
        self.maps: dict[int, tuple[Region, int, int]] = {}  # handle -> (region, key size, entries)
        self.handles: dict[str, int] = {}
        for name, spec in obj.maps.items():
            d = spec.definition
            region = memory.allocate(max(8, d.value_size) * d.max_entries, f"map {name}")
            self.maps[region.start] = (region, d.key_size, d.max_entries)
            self.handles[name] = region.start
        self.user = memory.allocate(64 * 1024, "user memory")
        self.ctxs = [memory.allocate(16, f"ctx {i}") for i in range(2)]
        self.cqs: dict[int, deque[tuple[int, int, int]]] = {}
        self.submitted: list[bytes] = []
        self.completed = 0  # submitted SQEs already completed
        self.helpers = {1: self.map_lookup_elem, 148: self.copy_from_user, 164: self.submit,
                        165: self.emit_cqe, 166: self.reap_cqe, 167: self.copy_to_user}

    def reset(self) -> None:
        for region in [r for r, _, _ in self.maps.values()] + [self.user] + self.ctxs:
            self.memory.fill(region.start, region.size)
        self.cqs.clear()
        self.submitted.clear()
        self.completed = 0

    def state(self) -> tuple[object, ...]:
        return (tuple(bytes(r.view) for r, _, _ in self.maps.values()), bytes(self.user.view[:64]),
                tuple(bytes(c.view) for c in self.ctxs), {k: list(v) for k, v in self.cqs.items()},
                list(self.submitted))

    def program(self, obj: BpfObject, name: str) -> Program:
        linked = obj.programs[name].linked
        insns = isa.decode(bytes(linked.insns))
        for ref in linked.map_refs:  # what a loader does: the map's address into its ld_imm64
            value = self.handles[ref.map_name] + (ref.offset or 0)
            lo, hi = isa.ld_imm64(insns[ref.insn].dst, value)
            insns[ref.insn], insns[ref.insn + 1] = lo, hi
        return Program(insns, helpers=self.helpers, name=name)

    def arr(self, index: int) -> int:
        region = self.maps[self.handles["arr"]][0]
        return struct.unpack_from("<Q", region.view, 8 * index)[0]

    # --- helpers (vm, r1..r5) -> r0 ---
    def map_lookup_elem(self, vm: Vm, handle: int, key_ptr: int, *_: int) -> int:
        region, key_size, entries = self.maps[handle]
        key = vm.memory.load(key_ptr, key_size)
        return region.start + 8 * key if key < entries else 0

    def copy_from_user(self, vm: Vm, dst: int, size: int, uptr: int, *_: int) -> int:
        vm.memory.write_bytes(dst, vm.memory.read_bytes(uptr, size))
        return 0

    def copy_to_user(self, vm: Vm, uptr: int, src: int, size: int, *_: int) -> int:
        vm.memory.write_bytes(uptr, vm.memory.read_bytes(src, size))
        return 0

    def submit(self, vm: Vm, ctx: int, sqe: int, size: int, *_: int) -> int:
        self.submitted.append(vm.memory.read_bytes(sqe, size))
        return 0

    def emit_cqe(self, vm: Vm, ctx: int, cq_idx: int, user_data: int, res: int, flags: int) -> int:
        queue = self.cqs.setdefault(cq_idx, deque())
        if len(queue) >= 64:
            return -errno.ENOMEM
        queue.append((user_data, res & 0xFFFF_FFFF, flags & 0xFFFF_FFFF))
        return 0

    def reap_cqe(self, vm: Vm, ctx: int, cq_idx: int, cqe: int, size: int, *_: int) -> int:
        queue = self.cqs.get(cq_idx)
        if not queue:
            return -errno.ENOENT
        vm.memory.write_bytes(cqe, struct.pack("<QII", *queue.popleft())[:size])
        return 0

    def complete_submitted(self) -> None:
        """Every submitted SQE completes now, on its cq_idx, with res = its len."""
        for sqe in self.submitted[self.completed:]:
            user_data, = struct.unpack_from("<Q", sqe, SQE_USER_DATA)
            cq_idx, = struct.unpack_from("<H", sqe, SQE_CQ_IDX)
            length, = struct.unpack_from("<I", sqe, SQE_LEN)
            self.emit_cqe(None, 0, cq_idx, user_data, length, 0)  # type: ignore[arg-type]
        self.completed = len(self.submitted)


def schedule(vm: Vm, world: World, programs: list[tuple[Program, Region]], max_runs: int = 100) -> list[int]:
    """Run each (program, ctx) once, then again whenever its WAIT is satisfied; r0 of every run."""
    returns: list[int] = []
    for program, ctx in programs:
        returns.append(vm.run(program, r1=ctx.start))
        world.complete_submitted()
    waiting = [(p, c) for (p, c), r in zip(programs, returns) if r == WAIT]
    while waiting and len(returns) < max_runs:
        ready = [(p, c) for p, c in waiting if len(world.cqs.get(_wait(c)[0], ())) >= _wait(c)[1]]
        if not ready:
            break
        program, ctx = ready[0]
        r0 = vm.run(program, r1=ctx.start)
        returns.append(r0)
        world.complete_submitted()
        if r0 != WAIT:
            waiting.remove((program, ctx))
    return returns


def _wait(ctx: Region) -> tuple[int, int]:
    wait_nr, wait_idx = struct.unpack_from("<II", ctx.view, 8)
    return wait_idx, wait_nr


def set_ctx(ctx: Region, user_data: int) -> None:
    struct.pack_into("<Q", ctx.view, 0, user_data)


def run_both(obj: BpfObject, names: list[str], setup) -> tuple[World, list[tuple[list[int], tuple]]]:
    memory = Memory()
    world = World(memory, obj)
    results = []
    for vm in (Vm(memory), JitVm(memory)):
        world.reset()
        progs = setup(world)
        returns = schedule(vm, world, [(world.program(obj, name), ctx) for name, ctx in
                                       zip(names, progs)])
        results.append((returns, world.state()))
    assert results[1] == results[0]
    return world, results


def test_reference_test_program(obj: BpfObject) -> None:
    def setup(world: World) -> list[Region]:
        struct.pack_into("<Q", world.user.view, 0, SECRET)
        set_ctx(world.ctxs[0], world.user.start)
        return [world.ctxs[0]]
    world, [(returns, _), _] = run_both(obj, ["test"], setup)
    assert returns == [WAIT, OK]
    assert [world.arr(i) for i in range(6)] == [11, 4, 5, 21, world.user.start, SECRET]
    assert struct.unpack_from("<Q", world.user.view, 0)[0] == 31


def test_reference_counting_program(obj: BpfObject) -> None:
    def setup(world: World) -> list[Region]:
        set_ctx(world.ctxs[0], world.user.start)
        return [world.ctxs[0]]
    world, [(returns, _), _] = run_both(obj, ["counting"], setup)
    assert returns == [WAIT] * 11 + [OK] and world.arr(0) == 11


def test_reference_pingpong_programs(obj: BpfObject) -> None:
    def setup(world: World) -> list[Region]:
        for idx in (0, 1):
            struct.pack_into("<i", world.user.view, 8 * idx, idx)
            set_ctx(world.ctxs[idx], world.user.start + 8 * idx)
        world.emit_cqe(None, 0, 1, 0, 0, 0)  # type: ignore[arg-type]  # the serve that starts the game
        return list(world.ctxs)
    world, [(returns, _), _] = run_both(obj, ["pingpong", "pingpong"], setup)
    assert returns[-1] == OK and max(world.arr(5), world.arr(6)) >= 20


def test_reference_write_file_program(obj: BpfObject) -> None:
    def setup(world: World) -> list[Region]:
        set_ctx(world.ctxs[0], world.user.start)
        return [world.ctxs[0]]
    world, [(returns, state), _] = run_both(obj, ["write_file"], setup)
    assert returns[-1] == OK and world.arr(1) == 16 and world.arr(0) == 0
    assert len(state[4]) == 16  # 16 writes of 16 KiB were submitted
