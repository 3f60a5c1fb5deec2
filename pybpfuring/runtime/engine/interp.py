"""The reference interpreter: runs decoded BPF slots against a checked `Memory`.

Semantics are RFC 9669's (cpu v1..v4), spelled out once in `codegen.py`; this module holds the run
loop, frames, the budget and fault reporting. See docs/engine.md.

    program = Program(isa.decode(code), helpers={1: lookup}, name="prog")
    vm = Vm(Memory())
    r0 = vm.run(program, r1=ctx_addr)
"""
from __future__ import annotations

import ctypes
import hashlib
import types
import weakref
from typing import Callable, Mapping, Protocol

from pybpfuring.abi import isa
from pybpfuring.abi.isa import Insn
from pybpfuring.errors import SourceLocation
from pybpfuring.runtime.engine import codegen
from pybpfuring.runtime.engine.compile_cache import CompileCache
from pybpfuring.runtime.engine.faults import (HelperFault, InsnFault, ProgramExit, StopProgram,
                                              VmFault)
from pybpfuring.runtime.engine.memory import ATOMIC_LOCK, Memory, MemoryFault, Region

M64 = codegen.M64
DEFAULT_BUDGET = 1_000_000
# The largest per-run budget a Ring accepts: a run of the JIT or native engine cannot be interrupted
# (Ctrl-C, a deadline) until it returns, so a run must stay short: 2^24 instructions take well under
# 100 ms of JIT-compiled code. (The kernel verifier's own cap is 1M instructions per program.)
MAX_BUDGET = 1 << 24
_SLOT_CODE: CompileCache[tuple[types.CodeType, codegen.SlotCompiler]] = CompileCache()
_STACK_GAP = 512  # unmapped bytes between frame stacks, so a small overflow faults


class HelperFn(Protocol):
    def __call__(self, vm: "Vm", r1: int, r2: int, r3: int, r4: int, r5: int) -> int: ...


# resolve_ld_imm64(pc, src, imm, next_imm) -> the 64-bit value loaded (e.g. a map handle address)
LdImm64Resolver = Callable[[int, int, int, int], int]


class Program:
    """Decoded slots plus everything a run needs to give calls and pseudo loads their meaning.

    helpers: helper id -> fn(vm, r1..r5) -> int (r0; negative values are taken modulo 2**64).
    kfuncs: keyed by BTF id (the call's imm) or by name, names found through `kfunc_names` (id -> name).
    resolve_ld_imm64: gives ld_imm64 with src != 0 their value; without it (or when it raises
        LookupError) BPF_PSEUDO_FUNC loads the callee's slot index and the other kinds fault.
    locate: slot -> Python source location (from BTF line_info), put into faults.
    The tables are read when the program is first run on a Vm; helpers must let the engine's own
    exceptions (VmFault, StopProgram, MemoryFault) pass through.
    """

    def __init__(self, insns: list[Insn], helpers: Mapping[int, HelperFn] | None = None,
                 kfuncs: Mapping[int | str, HelperFn] | None = None,
                 resolve_ld_imm64: LdImm64Resolver | None = None, name: str = "",
                 kfunc_names: Mapping[int, str] | None = None,
                 locate: Callable[[int], SourceLocation | None] | None = None):
        self.insns = list(insns)
        self.helpers = dict(helpers or {})
        self.kfuncs = dict(kfuncs or {})
        self.kfunc_names = dict(kfunc_names or {})
        self.resolve_ld_imm64 = resolve_ld_imm64
        self.name = name or "<bpf>"
        self.locate = locate
        self._code: types.CodeType | None = None  # the slot functions' code, shared by every Vm
        self._compiler: codegen.SlotCompiler | None = None
        self._key: bytes | None = None

    @classmethod
    def from_bytes(cls, code: bytes, **kwargs: object) -> "Program":
        return cls(isa.decode(code), **kwargs)  # type: ignore[arg-type]

    @property
    def key(self) -> bytes:
        """The program's identity for compile caches: its slots and name (not its tables, which
        are bound per Vm), so every Ring registering the same ELF shares one compiled form."""
        if self._key is None:
            self._key = hashlib.sha256(isa.encode(self.insns) + self.name.encode()).digest()
        return self._key

    def compiled(self) -> tuple[types.CodeType, codegen.SlotCompiler]:
        """Generate and compile the slot functions (once per content per process: `_SLOT_CODE`;
        the tables are read later, per Vm)."""
        if self._code is None:
            cached = _SLOT_CODE.get(self.key)
            if cached is None:
                compiler = codegen.SlotCompiler(self.insns)
                cached = (compile(compiler.source(), f"<bpf program {self.name}>", "exec"), compiler)
            self._code, self._compiler = _SLOT_CODE.put(self.key, cached)
        assert self._compiler is not None
        return self._code, self._compiler


class _Prepared:
    """A program bound to one Vm: its slot functions (plus the fell-off-the-end sentinel)."""

    def __init__(self, program: Program, ops: list[Callable[[list[int]], int]]):
        self.program = program
        self.ops = ops


class Vm:
    """Runs programs against `memory`. Owns 8 frame stacks of 512 bytes (registered in `memory`).

    Not re-entrant across threads; a helper may re-enter through `call_function` (callbacks).
    """

    def __init__(self, memory: Memory, budget: int = DEFAULT_BUDGET):
        self.memory = memory
        self.budget = budget
        self.last_insn_count = 0  # instructions executed by the last run (callbacks included)
        self._frames: list[tuple[int, int, int, int, int, int] | None] = []
        self._budget_iter: object = None
        self._limit = budget
        self._current: _Prepared | None = None
        self._prepared: weakref.WeakKeyDictionary[Program, _Prepared] = weakref.WeakKeyDictionary()
        self._stack_buffer = ctypes.create_string_buffer((isa.STACK_SIZE + _STACK_GAP) * isa.MAX_CALL_FRAMES
                                                         + _STACK_GAP)
        base = ctypes.addressof(self._stack_buffer)
        self.stacks: list[Region] = [
            memory.register(base + _STACK_GAP + i * (isa.STACK_SIZE + _STACK_GAP), isa.STACK_SIZE,
                            f"stack frame {i}", owner=self._stack_buffer)
            for i in range(isa.MAX_CALL_FRAMES)]

    def close(self) -> None:
        """Remove this Vm's stacks from the memory table."""
        for region in self.stacks:
            self.memory.remove(region)
        self.stacks = []

    # --- running ------------------------------------------------------------------------------
    def run(self, program: Program, r1: int = 0, r2: int = 0, r3: int = 0, r4: int = 0, r5: int = 0,
            entry: int = 0, budget: int | None = None) -> int:
        """Run from slot `entry` with r1..r5 set; returns r0 (unsigned 64-bit). Raises VmFault."""
        if self._budget_iter is not None:
            raise RuntimeError("Vm.run called during a run; helpers use vm.call_function")
        prepared = self._prepare(program)
        limit = self.budget if budget is None else budget
        self._limit = limit
        self._budget_iter = it = iter(range(limit))
        self._current = prepared
        try:
            return self._execute(prepared, [0, r1 & M64, r2 & M64, r3 & M64, r4 & M64, r5 & M64,
                                            0, 0, 0, 0, 0], entry)
        except StopProgram as stop:
            return stop.value & M64
        finally:
            self.last_insn_count = limit - it.__length_hint__()
            self._frames.clear()
            self._budget_iter = None
            self._current = None

    def call_function(self, target: int, r1: int = 0, r2: int = 0, r3: int = 0, r4: int = 0,
                      r5: int = 0) -> int:
        """From a helper: run the current program's function at slot `target` (a callback) in a new
        frame, sharing the run's budget and call depth; returns its r0."""
        if self._current is None:
            raise RuntimeError("call_function is only possible from a helper during a run")
        if len(self._frames) >= isa.MAX_CALL_FRAMES:
            raise InsnFault("call_depth", f"callback exceeds {isa.MAX_CALL_FRAMES} frames")
        return self._execute(self._current, [0, r1 & M64, r2 & M64, r3 & M64, r4 & M64, r5 & M64,
                                             0, 0, 0, 0, 0], target)

    def _execute(self, prepared: _Prepared, R: list[int], pc: int) -> int:
        """The run loop of one host entry (a run, or a callback): a new frame, then slot after slot."""
        ops = prepared.ops
        if not 0 <= pc < len(ops) - 1:
            raise self._fault(prepared, "invalid", f"entry slot {pc} is outside the program", pc)
        self._frames.append(None)  # marks the frame whose exit returns to the host
        R[10] = self._enter_stack()
        try:
            for _ in self._budget_iter:  # type: ignore[attr-defined]
                pc = ops[pc](R)
        except ProgramExit:
            return R[0]
        except MemoryFault as exc:
            raise self._fault(prepared, "memory", str(exc), pc, access=exc) from None
        except InsnFault as exc:
            raise self._fault(prepared, exc.kind, str(exc), pc) from None
        except HelperFault as exc:
            raise self._fault(prepared, "helper", str(exc), pc, errno=exc.errno) from None
        except (VmFault, StopProgram):
            raise
        except Exception as exc:  # a bug in a helper of ours: keep its traceback, say where it ran
            exc.add_note(f"while program '{prepared.program.name}' executed slot {pc}")
            raise
        raise self._fault(prepared, "budget", f"instruction budget of {self._limit} exhausted", pc)

    def _fault(self, prepared: _Prepared, kind: str, message: str, pc: int, errno: int | None = None,
               access: MemoryFault | None = None) -> VmFault:
        return program_fault(prepared.program, kind, message, pc, errno, access)

    # --- frames (called by generated code) -----------------------------------------------------
    def _enter_stack(self) -> int:
        """Zero the stack of the frame just pushed and return its frame pointer (one past its end)."""
        region = self.stacks[len(self._frames) - 1]
        ctypes.memset(region.start, 0, region.size)
        return region.start + region.size

    def _call_local(self, R: list[int], ret: int, target: int) -> int:
        frames = self._frames
        if len(frames) >= isa.MAX_CALL_FRAMES:
            raise InsnFault("call_depth", f"call depth exceeds {isa.MAX_CALL_FRAMES} frames")
        frames.append((ret, R[6], R[7], R[8], R[9], R[10]))
        R[10] = self._enter_stack()
        return target

    def _do_exit(self, R: list[int]) -> int:
        frame = self._frames.pop()
        if frame is None:
            raise ProgramExit
        ret, R[6], R[7], R[8], R[9], R[10] = frame
        return ret

    def _callx(self, R: list[int], reg: int) -> int:
        """`call %rN`: the helper id is the register's value."""
        helper = self._current.program.helpers.get(R[reg]) if self._current else None
        if helper is None:
            raise InsnFault("no_helper", f"unknown helper {R[reg]} (called through r{reg})")
        return helper(self, R[1], R[2], R[3], R[4], R[5]) & M64

    # --- binding a program to this Vm ------------------------------------------------------------
    def _prepare(self, program: Program) -> _Prepared:
        prepared = self._prepared.get(program)
        if prepared is None:
            code, compiler = program.compiled()
            namespace = self._namespace(program, compiler)
            exec(code, namespace)  # defines _s0.._s<n-1> and the sentinel
            ops = [namespace[f"_s{pc}"] for pc in range(len(program.insns))]
            ops.append(namespace[codegen.FELL_OFF])
            prepared = self._prepared[program] = _Prepared(program, ops)
        return prepared

    def _namespace(self, program: Program, compiler: codegen.SlotCompiler) -> dict[str, object]:
        ns: dict[str, object] = dict(codegen.RUNTIME)
        ns.update(load=self.memory.load, store=self.memory.store, LOCK=ATOMIC_LOCK, vm=self,
                  call_local=self._call_local, do_exit=self._do_exit, callx=self._callx)
        for helper_id in compiler.helper_ids:
            fn = program.helpers.get(helper_id)
            ns[f"h_{helper_id & codegen.M32}"] = fn if fn is not None else missing_helper("helper", helper_id)
        for pc, insn in compiler.kfunc_slots.items():
            fn = program.kfuncs.get(insn.imm)
            name = program.kfunc_names.get(insn.imm)
            if fn is None and name is not None:
                fn = program.kfuncs.get(name)
            ns[f"k_{pc}"] = fn if fn is not None else missing_helper("kfunc", name or insn.imm)
        for pc, (first, second) in compiler.pseudo_slots.items():
            ns[f"L{pc}"] = self._resolve(program, pc, first, second)
        return ns

    @staticmethod
    def _resolve(program: Program, pc: int, first: Insn, second: Insn) -> Callable[[], int]:
        """The value function of a pseudo ld_imm64 (resolved once per Vm); it faults if unresolvable."""
        what = f"ld_imm64 {isa.LD_IMM64_SRC_NAMES[first.src]}({first.imm}, {second.imm})"
        problem = "has no resolver"
        if program.resolve_ld_imm64 is not None:
            try:
                value = program.resolve_ld_imm64(pc, first.src, first.imm, second.imm) & M64
                return lambda: value
            except LookupError as exc:
                problem = f"cannot be resolved: {exc}"
        if first.src == isa.BPF_PSEUDO_FUNC:
            target = pc + first.imm + 1  # default meaning: the callee's slot, for vm.call_function
            return lambda: target
        message = f"{what} {problem}"

        def unresolved() -> int:
            raise InsnFault("invalid", message)
        return unresolved


def program_fault(program: Program, kind: str, message: str, pc: int, errno: int | None = None,
                  access: MemoryFault | None = None) -> VmFault:
    """The VmFault every engine raises for a fault of `program` at slot `pc` (located through
    `program.locate`): one description shared by the interpreter, the JIT and the native loop."""
    loc = program.locate(pc) if program.locate is not None else None
    return VmFault(program.name, kind, message, pc, errno, loc, access)


def missing_helper(kind: str, key: object) -> HelperFn:
    """The stand-in for a helper or kfunc absent from a program's tables: faults when called."""
    def missing(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
        raise InsnFault("no_helper", f"unknown {kind} {key}")
    return missing


