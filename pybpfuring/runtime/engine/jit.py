"""The JIT: decoded BPF slots -> LLVM IR (`jit_ir`) -> native code (llvmlite MCJIT), run through ctypes.

Same inputs and the same observable behaviour as the interpreter (`interp.Vm`), which stays the
semantic reference: results, faults (kind, pc, message, access), budget and `last_insn_count`.

    from pybpfuring.runtime.engine.jit import JitVm
    vm = JitVm(Memory())
    r0 = vm.run(program, r1=ctx_addr)          # drop-in for Vm.run
    fast = vm.jit(program); r0 = fast.run(r1)  # bound program: the cheapest call from Python

Helpers: a helper table entry is either a Python callable `fn(vm, r1..r5) -> int` (reached through
one ctypes trampoline per Vm) or a `NativeHelper(address)`: a native function
`uint64_t fn(uint64_t *ctx, uint64_t r1, ..., uint64_t r5)` called directly from the JIT'd code. A
native helper reports a fault by setting `ctx[CTX_STATUS]` (ST_MEMORY with CTX_ADDR/SIZE/MODE, or
ST_HELPER with the errno in CTX_AUX) and must check every pointer against the region table at
`ctx[CTX_REGIONS]` (n = ctx[CTX_NREGIONS] entries of (start, end, writable), sorted by start).
"""
from __future__ import annotations

import ctypes
import threading
import time
import weakref
from dataclasses import dataclass, field

import llvmlite.binding as llvm

from pybpfuring.abi import isa
from pybpfuring.runtime.engine import jit_abi as J
from pybpfuring.runtime.engine import jit_ir
from pybpfuring.runtime.engine.faults import HelperFault, InsnFault, StopProgram, VmFault
from pybpfuring.runtime.engine.compile_cache import CompileCache
from pybpfuring.runtime.engine.interp import (DEFAULT_BUDGET, M64, HelperFn, Program, Vm, missing_helper,
                                              program_fault)
from pybpfuring.runtime.engine.jit_plan import Plan, make_plan
from pybpfuring.runtime.engine.memory import Memory, MemoryFault, Region

_U64 = ctypes.c_uint64
# bpf_run<entry>(ctx, r1..r5, budget, depth, consts) -> r0
_ENTRY_TYPE = ctypes.CFUNCTYPE(_U64, ctypes.c_void_p, _U64, _U64, _U64, _U64, _U64, _U64, _U64, ctypes.c_void_p)
_TRAMPOLINE_TYPE = ctypes.CFUNCTYPE(_U64, ctypes.c_void_p, ctypes.c_int64, _U64, _U64, _U64, _U64, _U64,
                                    _U64)
_NATIVE_HELPER_TYPE = ctypes.CFUNCTYPE(_U64, ctypes.c_void_p, _U64, _U64, _U64, _U64, _U64)
_LLVM_LOCK = threading.Lock()  # LLVM's global state (target init, pass builders) is not thread-safe


@dataclass(frozen=True)
class NativeHelper:
    """A helper implemented natively: `uint64_t fn(uint64_t *ctx, r1, r2, r3, r4, r5)` at `address`.

    `keepalive` holds whatever owns the code (a ctypes library, an llvmlite engine)."""

    address: int
    name: str = ""
    keepalive: object = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        # The address is trusted (native code is), but a null or negative one is surely a mistake.
        if not isinstance(self.address, int) or self.address <= 0:
            raise ValueError(f"native helper {self.name or '?'}: {self.address!r} is not a code address")
        object.__setattr__(self, "_fn", _NATIVE_HELPER_TYPE(self.address))

    def call(self, ctx: int, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
        return self._fn(ctx, r1, r2, r3, r4, r5)  # type: ignore[attr-defined]

    def __call__(self, vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
        """As a Python helper (the interpreter's, or a JIT `callx`): a scratch context holding
        `vm.memory`'s region table, and the helper's fault raised as the interpreter expects."""
        ctx = (_U64 * J.CTX_FIELDS)()
        table = region_table(vm.memory.regions())
        ctx[J.CTX_REGIONS], ctx[J.CTX_NREGIONS] = ctypes.addressof(table), len(table) // 3
        r0 = self.call(ctypes.addressof(ctx), r1, r2, r3, r4, r5)
        if ctx[J.CTX_STATUS] == J.ST_MEMORY:
            raise memory_fault(vm.memory, ctx[J.CTX_ADDR], ctx[J.CTX_SIZE], ctx[J.CTX_MODE])
        if ctx[J.CTX_STATUS] == J.ST_HELPER:
            raise HelperFault(NATIVE_REFUSAL, ctx[J.CTX_AUX])
        return r0


NATIVE_REFUSAL = "a native helper refused its arguments"


def region_table(regions: list[Region]) -> ctypes.Array[ctypes.c_uint64]:
    """The region table as native code reads it: (start, end, writable) per region, sorted by start."""
    table = (_U64 * (3 * len(regions)))()
    for i, region in enumerate(regions):
        table[3 * i], table[3 * i + 1], table[3 * i + 2] = region.start, region.end, int(region.writable)
    return table


# --- compiling ----------------------------------------------------------------------------------
@dataclass
class CompileStats:
    plan_s: float
    ir_s: float
    llvm_s: float
    ir_lines: int


class JitCode:
    """Native code for one program and entry: shared by every JitVm that runs the program."""

    def __init__(self, program: Program, entry: int, opt: int = 2):
        started = time.perf_counter()
        self.plan: Plan = make_plan(program.insns, [entry])
        planned = time.perf_counter()
        self.messages: dict[int, str] = {}
        self.check_sites: list[int] = []  # checked accesses: their region hints follow the consts
        natives = {hid: fn.address for hid, fn in program.helpers.items() if isinstance(fn, NativeHelper)}
        self.native_helpers = {hid: program.helpers[hid] for hid in natives}
        with _LLVM_LOCK:
            machine = _target_machine(opt)
            self.ir = jit_ir.module_text(self.plan, natives, machine.triple, str(machine.target_data), self.messages,
                                         self.check_sites)
            written = time.perf_counter()
            self._engine = _compile(self.ir, machine, opt)
            self.entries = {e: self._engine.get_function_address(f"bpf_run{e}") for e in self.plan.functions}
        self.stats = CompileStats(planned - started, written - planned, time.perf_counter() - written,
                                  self.ir.count("\n"))
        self.entry = entry

    def budget_fault_pc(self, leader: int, index: int) -> int:
        """The slot of the `index`-th instruction of the block starting at `leader`. A block is a
        fall-through run of slots, so walking from its leader is exact whichever function it is in."""
        pc = leader
        for _ in range(index):
            pc += 2 if self.plan.insns[pc].opcode == isa.OP_LD_IMM64 else 1
        return pc


def _target_machine(opt: int) -> llvm.TargetMachine:
    """Code generation at -O0 (fast instruction selection and register allocation) below level 2:
    it costs a third of -O2's time, and on SSA code from the IR passes runs nearly as fast."""
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    return llvm.Target.from_default_triple().create_target_machine(opt=0 if opt < 2 else opt, jit=True)


def _compile(ir_text: str, machine: llvm.TargetMachine, opt: int) -> llvm.ExecutionEngine:
    module = llvm.parse_assembly(ir_text)
    module.verify()
    if opt > 0:
        # A short pipeline: registers to SSA (SROA), then clean-ups. The full O2 pipeline costs several
        # times more compile time for little gain on code that is mostly checked loads and stores.
        pto = llvm.create_pipeline_tuning_options(speed_level=opt)
        builder = llvm.create_pass_builder(machine, pto)
        passes = llvm.create_new_function_pass_manager()
        passes.add_sroa_pass()
        passes.add_instruction_combine_pass()
        passes.add_simplify_cfg_pass()
        if opt >= 2:
            passes.add_new_gvn_pass()
            passes.add_dead_code_elimination_pass()
        for function in module.functions:
            if not function.is_declaration:
                passes.run(function, builder)
    engine = llvm.create_mcjit_compiler(module, machine)  # the engine owns the module and the machine
    engine.finalize_object()
    return engine


DEFAULT_OPT = 1  # 0: no IR passes; 1: SROA + clean-ups, -O0 code generation; 2, 3: + GVN, -O2/-O3 code generation
# Native code by content: (program key, entry, level, the native helpers' addresses), shared by every
# JitVm and Ring of the process (compile_cache.py). The addresses are part of the key because the
# code calls them directly; the Python helpers and ld_imm64 values are bound per JitVm (_Binding).
_CODE: CompileCache[JitCode] = CompileCache()


def compile_program(program: Program, entry: int = 0, opt: int = DEFAULT_OPT) -> JitCode:
    """Native code for `program` starting at slot `entry` (compiled once per content and level)."""
    natives = tuple(sorted((hid, fn.address) for hid, fn in program.helpers.items()
                           if isinstance(fn, NativeHelper)))
    key = (program.key, entry, opt, natives)
    code = _CODE.get(key)
    if code is None:
        code = _CODE.put(key, JitCode(program, entry, opt))
    return code


# --- running ------------------------------------------------------------------------------------
class _Binding:
    """A program bound to one JitVm: native entry points, resolved ld_imm64 values, call targets."""

    def __init__(self, vm: "JitVm", program: Program, code: JitCode):
        self.program = program
        self.code = code
        self.calls: dict[int, HelperFn] = {}  # slot -> the callable (callx slots are absent)
        self.ld_messages: dict[int, str] = {}
        plan = code.plan
        for pc, insn in enumerate(plan.insns):
            if pc in plan.invalid or not isa.is_call(insn):
                continue
            if insn.opcode == isa.OP_CALLX:
                continue
            if insn.src == isa.BPF_HELPER_CALL:
                self.calls[pc] = program.helpers.get(insn.imm) or missing_helper("helper", insn.imm)
            elif insn.src == isa.BPF_PSEUDO_KFUNC_CALL:
                fn = program.kfuncs.get(insn.imm)
                name = program.kfunc_names.get(insn.imm)
                if fn is None and name is not None:
                    fn = program.kfuncs.get(name)
                self.calls[pc] = fn or missing_helper("kfunc", name or insn.imm)
        # (value, resolved) per ld_imm64, then a region hint per checked access (jit_ir: zero is as
        # good a start as any, the check validates it)
        self.consts = (_U64 * max(2 * len(plan.pseudo_slots) + len(code.check_sites), 1))()
        for index, pc in enumerate(plan.pseudo_slots):
            value = self._resolve(pc)
            if value is not None:
                self.consts[2 * index], self.consts[2 * index + 1] = value, 1
        self.entries = {e: _ENTRY_TYPE(addr) for e, addr in code.entries.items()}
        self.consts_addr = ctypes.addressof(self.consts)

    def _resolve(self, pc: int) -> int | None:
        """As the interpreter's `_resolve`: the value, or None with the fault message recorded."""
        first, second = self.code.plan.insns[pc], self.code.plan.insns[pc + 1]
        what = f"ld_imm64 {isa.LD_IMM64_SRC_NAMES[first.src]}({first.imm}, {second.imm})"
        problem = "has no resolver"
        if self.program.resolve_ld_imm64 is not None:
            try:
                return self.program.resolve_ld_imm64(pc, first.src, first.imm, second.imm) & M64
            except LookupError as exc:
                problem = f"cannot be resolved: {exc}"
        if first.src == isa.BPF_PSEUDO_FUNC:
            return pc + first.imm + 1
        self.ld_messages[pc] = f"{what} {problem}"
        return None


class JitProgram:
    """A program compiled and bound to a JitVm: `run(r1..r5)` is the cheapest call from Python."""

    def __init__(self, vm: "JitVm", program: Program, entry: int = 0):
        self.vm = vm
        self.program = program
        self.entry = entry
        if not 0 <= entry < len(program.insns):
            raise ValueError(f"entry slot {entry} is outside program '{program.name}'")
        self._binding = vm._bind(program, entry)
        self._fn = self._binding.entries[entry]

    def run(self, r1: int = 0, r2: int = 0, r3: int = 0, r4: int = 0, r5: int = 0,
            budget: int | None = None) -> int:
        return self.vm._enter(self._binding, self._fn, r1, r2, r3, r4, r5, budget)


class JitVm(Vm):
    """A Vm whose `run` executes native code. Same frames (its 8 registered stacks), budget and faults."""

    def __init__(self, memory: Memory, budget: int = DEFAULT_BUDGET, opt: int = DEFAULT_OPT):
        super().__init__(memory, budget)
        self.opt = opt
        self._ctx = (_U64 * J.CTX_FIELDS)()
        self._ctx_addr = ctypes.addressof(self._ctx)
        self._table_generation = -1  # memory.generation when the table was last exported
        self._table = (_U64 * 3)()
        self._bindings: weakref.WeakKeyDictionary[Program, dict[int, _Binding]] = weakref.WeakKeyDictionary()
        self._bound: _Binding | None = None
        self._pending: BaseException | None = None
        self._trampoline = _TRAMPOLINE_TYPE(self._call_helper)  # one per Vm: it knows `self`
        stride = {b.start - a.start for a, b in zip(self.stacks, self.stacks[1:])}
        assert stride == {J.FRAME_STRIDE}, "the JIT computes frame addresses from the Vm's stack layout"
        self._ctx[J.CTX_STACK_BASE] = self.stacks[0].start
        self._ctx[J.CTX_PYHELPER] = ctypes.cast(self._trampoline, ctypes.c_void_p).value or 0
        self._running = False

    def jit(self, program: Program, entry: int = 0) -> JitProgram:
        return JitProgram(self, program, entry)

    # --- the run ---
    def run(self, program: Program, r1: int = 0, r2: int = 0, r3: int = 0, r4: int = 0, r5: int = 0,
            entry: int = 0, budget: int | None = None) -> int:
        if self._running:
            raise RuntimeError("Vm.run called during a run; helpers use vm.call_function")
        binding = self._bind(program, entry) if 0 <= entry < len(program.insns) else None
        if binding is None:
            raise VmFault(program.name, "invalid", f"entry slot {entry} is outside the program", entry,
                          loc=program.locate(entry) if program.locate else None)
        return self._enter(binding, binding.entries[entry], r1, r2, r3, r4, r5, budget)

    def _enter(self, binding: _Binding, fn: ctypes._CFuncPtr, r1: int, r2: int, r3: int, r4: int, r5: int,
               budget: int | None) -> int:
        if self._running:
            raise RuntimeError("Vm.run called during a run; helpers use vm.call_function")
        limit = self.budget if budget is None else budget
        self._sync_regions()
        self._running, self._bound, self._limit = True, binding, limit
        ctx = self._ctx
        try:
            r0 = fn(self._ctx_addr, r1 & M64, r2 & M64, r3 & M64, r4 & M64, r5 & M64, limit, 0,
                    binding.consts_addr)
            if ctx[J.CTX_STATUS]:
                return self._raise_fault(binding)
            return r0
        except StopProgram as stop:
            return stop.value & M64
        finally:
            self.last_insn_count = limit - ctx[J.CTX_BUDGET]
            self._running, self._bound, self._pending = False, None, None

    def call_function(self, target: int, r1: int = 0, r2: int = 0, r3: int = 0, r4: int = 0,
                      r5: int = 0) -> int:
        """From a helper: run the function at slot `target` natively in a new frame (a callback)."""
        binding = self._bound
        if binding is None or not self._running:
            raise RuntimeError("call_function is only possible from a helper during a run")
        ctx = self._ctx
        depth = ctx[J.CTX_DEPTH]
        if depth + 1 >= isa.MAX_CALL_FRAMES:
            raise InsnFault("call_depth", f"callback exceeds {isa.MAX_CALL_FRAMES} frames")
        if not 0 <= target < len(binding.program.insns):
            raise self._fault(binding, "invalid", f"entry slot {target} is outside the program", target)
        entry, callee = binding.entries.get(target), binding
        if entry is None:  # a callback slot the plan did not foresee: compile a function for it
            callee = self._bind(binding.program, target)
            entry = callee.entries[target]
        saved_consts = ctx[J.CTX_CONSTS]
        try:
            self._sync_regions()
            r0 = entry(self._ctx_addr, r1 & M64, r2 & M64, r3 & M64, r4 & M64, r5 & M64, ctx[J.CTX_BUDGET],
                       depth + 1, callee.consts_addr)
        finally:
            ctx[J.CTX_DEPTH], ctx[J.CTX_CONSTS] = depth, saved_consts
        if ctx[J.CTX_STATUS]:
            self._raise_fault(callee)  # as in the interpreter, the callback's fault propagates
        return r0

    # --- binding and the region table ---
    def _bind(self, program: Program, entry: int) -> _Binding:
        per_program = self._bindings.setdefault(program, {})
        binding = per_program.get(entry)
        if binding is None:
            binding = per_program[entry] = _Binding(self, program, compile_program(program, entry, self.opt))
        return binding

    def _sync_regions(self) -> None:
        """Export the region table to native code again if it changed since the last export."""
        # Memory's generation counter: one int compare on the common path, which runs once per run
        # and after every Python helper.
        if self.memory.generation == self._table_generation:
            return
        regions = self.memory.regions()
        table = region_table(regions)
        self._table, self._table_generation = table, self.memory.generation
        self._ctx[J.CTX_REGIONS] = ctypes.addressof(table)
        self._ctx[J.CTX_NREGIONS] = len(regions)

    # --- for a host that calls the JIT'd entry points itself (the native event loop) ---
    def bind(self, program: Program, entry: int = 0) -> _Binding:
        """`program` compiled (shared, cached) and bound to this Vm: `entries`, `consts_addr`."""
        return self._bind(program, entry)

    @property
    def context_address(self) -> int:
        """The address of the native context (jit_abi.CTX_*) the entry points take first."""
        return self._ctx_addr

    def context_field(self, index: int) -> int:
        return int(self._ctx[index])

    def set_context_field(self, index: int, value: int) -> None:
        self._ctx[index] = value

    def sync_regions(self) -> None:
        """Export the region table to the context now (before a host starts running programs)."""
        self._sync_regions()

    def hosted_helper(self, binding: _Binding, limit: int, ctx: int, pc: int, r1: int, r2: int, r3: int,
                      r4: int, r5: int, extra: int) -> int:
        """A Python helper called from a run the host started: as the trampoline during `run`."""
        self._bound, self._running, self._limit = binding, True, limit
        try:
            return self._call_helper(ctx, pc, r1, r2, r3, r4, r5, extra)
        finally:
            self._bound, self._running = None, False

    def hosted_failure(self, binding: _Binding, exc: BaseException, pc: int) -> None:
        """Record `exc`, raised by host code serving slot `pc`, as the run's pending fault."""
        if isinstance(exc, MemoryFault):
            self._pending = self._fault(binding, "memory", str(exc), pc, access=exc)
        elif isinstance(exc, HelperFault):
            self._pending = self._fault(binding, "helper", str(exc), pc, errno=exc.errno)
        else:  # a bug: keep its traceback, say where it ran
            exc.add_note(f"while program '{binding.program.name}' executed slot {pc}")
            self._pending = exc
        self._ctx[J.CTX_STATUS] = J.ST_PYEXC

    def raise_status(self, binding: _Binding, limit: int) -> None:
        """Raise what the status a hosted run left in the context means (VmFault, StopProgram...)."""
        self._limit = limit
        self._raise_fault(binding)

    # --- helpers, through the trampoline ---
    def _call_helper(self, ctx: int, pc: int, r1: int, r2: int, r3: int, r4: int, r5: int, extra: int) -> int:
        """Called by native code for every helper without a native implementation. Never raises: an
        exception is kept for `run` and the status tells the native code to unwind."""
        binding = self._bound
        assert binding is not None
        try:
            fn = binding.calls.get(pc)
            if fn is None:  # callx: the helper id is in the register
                fn = binding.program.helpers.get(extra)
                if fn is None:
                    raise InsnFault("no_helper", f"unknown helper {extra} (called through "
                                    f"r{binding.code.plan.insns[pc].dst})")
                if isinstance(fn, NativeHelper):  # same context, no scratch one
                    return fn.call(ctx, r1, r2, r3, r4, r5)
            result = fn(self, r1, r2, r3, r4, r5) & M64
            if self.memory.generation != self._table_generation:  # the helper added or removed regions
                self._sync_regions()
            return result
        except MemoryFault as exc:
            self._pending = self._fault(binding, "memory", str(exc), pc, access=exc)
        except InsnFault as exc:
            self._pending = self._fault(binding, exc.kind, str(exc), pc)
        except HelperFault as exc:
            self._pending = self._fault(binding, "helper", str(exc), pc, errno=exc.errno)
        except (VmFault, StopProgram) as exc:
            self._pending = exc
        except BaseException as exc:  # a bug in a helper: keep its traceback, say where it ran
            exc.add_note(f"while program '{binding.program.name}' executed slot {pc}")
            self._pending = exc
        self._sync_regions()
        self._ctx[J.CTX_STATUS] = J.ST_PYEXC
        return 0

    # --- faults ---
    def _fault(self, binding: _Binding, kind: str, message: str, pc: int, errno: int | None = None,
               access: MemoryFault | None = None) -> VmFault:
        return program_fault(binding.program, kind, message, pc, errno, access)

    def _raise_fault(self, binding: _Binding) -> int:
        """Turn the status native code left in ctx into the exception the interpreter would raise."""
        ctx = self._ctx
        status, pc, aux = ctx[J.CTX_STATUS], ctx[J.CTX_PC], ctx[J.CTX_AUX]
        ctx[J.CTX_STATUS] = 0
        if status == J.ST_PYEXC:
            pending, self._pending = self._pending, None
            assert pending is not None
            raise pending
        if status == J.ST_MEMORY:
            access = memory_fault(self.memory, ctx[J.CTX_ADDR], ctx[J.CTX_SIZE], ctx[J.CTX_MODE])
            raise self._fault(binding, "memory", str(access), pc, access=access)
        if status == J.ST_BUDGET:
            raise self._fault(binding, "budget", f"instruction budget of {self._limit} exhausted",
                              binding.code.budget_fault_pc(pc, aux))
        if status == J.ST_CALL_DEPTH:
            raise self._fault(binding, "call_depth", f"call depth exceeds {isa.MAX_CALL_FRAMES} frames", pc)
        if status == J.ST_HELPER:
            raise self._fault(binding, "helper", NATIVE_REFUSAL, pc, errno=aux)
        if status == J.ST_INVALID:
            message = binding.ld_messages.get(pc) if aux == J.AUX_LD_IMM64 else binding.code.messages.get(pc)
            raise self._fault(binding, "invalid", message or "invalid instruction", pc)
        raise AssertionError(f"native code left unknown status {status}")


def memory_fault(memory: Memory, addr: int, size: int, mode: int) -> MemoryFault:
    """The MemoryFault `Memory` raises for this access (a read-modify-write is checked read first)."""
    for is_write in ((False, True) if mode == J.MODE_RMW else (mode != J.MODE_READ,)):
        region = memory.find(addr)
        if region is None:
            return MemoryFault(addr, size, is_write, "null pointer" if addr < 4096 else "address is in no region")
        if addr + size > region.end:
            return MemoryFault(addr, size, is_write, f"runs past the end of region '{region.name}'")
        if is_write and not region.writable:
            return MemoryFault(addr, size, is_write, f"region '{region.name}' is read-only")
    return MemoryFault(addr, size, mode != J.MODE_READ, "the region table changed during the access")


