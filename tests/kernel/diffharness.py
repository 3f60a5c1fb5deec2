"""The differential harness: compile a module for the `generic` target, load it into the host
kernel, run each program with BPF_PROG_TEST_RUN and run the same typed IR in the reference
evaluator from the same starting state; report every difference in retval, ctx or map contents.
"""
from __future__ import annotations

import ctypes
import errno
import itertools
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pybpfuring.compiler import typed_ir as ir
from pybpfuring.compiler.driver import CompileResult, compile_full, load_module, programs_in
from pybpfuring.compiler.evaluator import EvaluationError, evaluate
from pybpfuring.errors import BpfSyscallError, CompileError
from pybpfuring.loader import syscalls
from pybpfuring.loader.object import BpfObject

_counter = itertools.count()


def compile_source(source: str, directory: Path, stem: str = "gen") -> tuple[CompileResult, Path]:
    """Write `source` to a fresh file (module names are per path) and compile all its programs."""
    path = directory / f"{stem}_{os.getpid()}_{next(_counter)}.py"
    path.write_text(source)
    return compile_full(programs_in(load_module(path)), "generic"), path


def bpf_unavailable() -> str | None:
    """None if this process may create BPF objects, else why not (what the tests skip with)."""
    try:
        fd = syscalls.map_create(2, 4, 8, 1, name="probe")
    except BpfSyscallError as exc:
        if exc.errno in (errno.EPERM, errno.EACCES):
            return f"bpf() is not permitted here: {exc}"
        if exc.errno == errno.ENOSYS:
            return "the kernel has no bpf() system call"
        raise
    syscalls.close_fd(fd)
    return None


def loaded_object(source: str, directory: Path, stem: str) -> Iterator[tuple[BpfObject, ir.TypedModule]]:
    """For a module fixture (`yield from`): `source` compiled and loaded into this kernel, every
    program through the verifier; skipped with the reason where bpf() is refused."""
    reason = bpf_unavailable()
    if reason:
        pytest.skip(reason)
    res, _ = compile_source(source, directory, stem)
    obj = BpfObject.open(res.elf)
    try:
        obj.load()
        yield obj, res.typed
    finally:
        obj.close()


def compile_error(source: str, directory: Path) -> CompileError:
    """The CompileError compiling `source` must raise."""
    with pytest.raises(CompileError) as info:
        compile_source(source, directory, "bad")
    return info.value


def kernel_maps(obj: BpfObject, typed: ir.TypedModule) -> dict[str, dict[Any, Any]]:
    return {info.name: dict(obj.maps[info.name].items()) for info in typed.maps}


class UserBuffer:
    """Memory of this process a program may read with copy_from_user (kept alive while in use)."""

    def __init__(self, data: bytes):
        self.buf = ctypes.create_string_buffer(bytes(data), len(data))
        self.address = ctypes.addressof(self.buf)

    def regions(self) -> dict[int, bytes]:
        return {self.address: self.buf.raw}


@dataclass
class Mismatch:
    program: str
    ctx: bytes
    what: str
    kernel: Any
    evaluator: Any
    maps_before: dict = field(default_factory=dict)

    def __str__(self) -> str:
        return (f"{self.program} on ctx {self.ctx.hex()}: {self.what} differs\n"
                f"  kernel:    {self.kernel}\n  evaluator: {self.evaluator}\n"
                f"  maps before: {self.maps_before}")


def run_both(obj: BpfObject, typed: ir.TypedModule, program: str, ctx: bytes,
             user: UserBuffer | None = None) -> list[Mismatch]:
    """One run on each side from the kernel's current map state; the differences found."""
    return run_once(obj, typed, program, ctx, user)[1]


def run_once(obj: BpfObject, typed: ir.TypedModule, program: str, ctx: bytes,
             user: UserBuffer | None = None) -> tuple[int, list[Mismatch]]:
    """(the kernel's retval, the differences from the evaluator) of one run on each side."""
    before = kernel_maps(obj, typed)
    regions = user.regions() if user is not None else {}
    k_ret, k_ctx = obj.programs[program].test_run(ctx)
    k_maps = kernel_maps(obj, typed)
    try:
        r = evaluate(typed, program, ctx, maps=before, user_memory=regions)
    except EvaluationError as exc:
        return k_ret, [Mismatch(program, ctx, "evaluation", (k_ret, k_ctx.hex()), str(exc), before)]
    out = []
    if r.retval != k_ret:
        out.append(Mismatch(program, ctx, "retval", k_ret, r.retval, before))
    if r.ctx_out != bytes(k_ctx):
        out.append(Mismatch(program, ctx, "ctx_out", bytes(k_ctx).hex(), r.ctx_out.hex(), before))
    for name in k_maps:
        if k_maps[name] != r.maps[name]:
            out.append(Mismatch(program, ctx, f"map {name}", k_maps[name], r.maps[name], before))
    return k_ret, out


def random_ctx(rng: random.Random, user: UserBuffer | None) -> bytes:
    """user_data is our buffer, a small number, or an address no process can map (both sides
    then agree that copy_from_user faults); wait_nr/wait_idx are arbitrary."""
    r = rng.random()
    if user is not None and r < 0.4:
        ud = user.address
    elif r < 0.7:
        ud = rng.choice([0, 1, 2, 7, 255, 4096, rng.getrandbits(16)])
    else:
        ud = rng.getrandbits(64) | (1 << 63)  # non-canonical or kernel half: never user memory
    nr = rng.choice([0, 1, 5, 0xFFFFFFFF, rng.getrandbits(32)])
    idx = rng.choice([0, 1, 3, 0x80000000, rng.getrandbits(32)])
    return ud.to_bytes(8, "little") + nr.to_bytes(4, "little") + idx.to_bytes(4, "little")


def randomize_maps(obj: BpfObject, typed: ir.TypedModule, rng: random.Random) -> None:
    """Give array maps arbitrary contents (hash maps keep what the programs put there)."""
    for info in typed.maps:
        d = info.defn
        if d.map_type != 2:
            continue
        m = obj.maps[info.name]
        size = d.value_type.size
        for k in range(d.max_entries):
            raw = rng.getrandbits(8 * size).to_bytes(size, "little")
            if rng.random() < 0.3:
                raw = bytes(size)
            m[k] = raw if not isinstance(m[k], int) else int.from_bytes(raw, "little",
                                                                        signed=m.value.signed)


def set_maps(obj: BpfObject, contents: dict[str, dict[Any, Any]]) -> None:
    """Put the kernel's maps in a given state (hash maps are emptied first)."""
    for name, entries in contents.items():
        m = obj.maps[name]
        if m.definition.map_type == 1:
            for k in list(m):
                del m[k]
        for k, v in entries.items():
            m[k] = v


def program_source(source: str, program: str) -> tuple[str, list[str]]:
    """The module's text before its first program (structs, maps, functions) and the body lines
    of one program."""
    lines = source.splitlines()
    first = next(i for i, l in enumerate(lines) if l.startswith("@iouring_program"))
    start = next(i for i, l in enumerate(lines) if l.startswith(f"def {program}(")) + 1
    end = start
    while end < len(lines) and (lines[end].startswith(" ") or not lines[end].strip()):
        end += 1
    return "\n".join(lines[:first]) + "\n", lines[start:end]


def single_program(prelude: str, program: str, body: list[str]) -> str:
    return prelude + f"@iouring_program\ndef {program}(ctx: Ctx) -> int:\n" + "\n".join(body) + "\n"


def reduce_mismatch(source: str, program: str, ctx: bytes, maps_before: dict, directory: Path,
                    user: UserBuffer | None = None) -> str:
    """Greedily drop lines of `program` while the kernel and the evaluator still disagree on
    `ctx` from `maps_before`; the module with the smallest such program (a regression test)."""
    prelude, body = program_source(source, program)

    def still_differs(candidate: list[str]) -> bool:
        try:
            res, _ = compile_source(single_program(prelude, program, candidate), directory, "reduce")
            obj = BpfObject.open(res.elf)
            obj.load()
        except Exception:
            return False
        try:
            set_maps(obj, {k: v for k, v in maps_before.items() if k in obj.maps})
            return bool(run_both(obj, res.typed, program, ctx, user))
        finally:
            obj.close()

    i = len(body) - 1
    while i >= 0:
        candidate = body[:i] + body[i + 1:]
        if candidate and still_differs(candidate):
            body = candidate
        i -= 1
    return single_program(prelude, program, body)
