"""The JIT (`pybpfuring.runtime.engine.jit`): what a user of `JitVm` sees, beyond the differential tests.

Where the interpreter defines the answer, the test runs both engines and also states the answer.
"""
from __future__ import annotations

import ctypes
import errno

import llvmlite.binding as llvm
import pytest

from pybpfuring.abi import isa
from pybpfuring.abi.asm import assemble
from pybpfuring.errors import SourceLocation
from pybpfuring.runtime.engine import jit_abi
from pybpfuring.runtime.engine.faults import HelperFault, StopProgram, VmFault
from pybpfuring.runtime.engine.interp import Program, Vm
from pybpfuring.runtime.engine.jit import JitProgram, JitVm, NativeHelper, compile_program
from pybpfuring.runtime.engine.memory import Memory


def prog(text: str, **kwargs: object) -> Program:
    return Program(isa.decode(assemble(text)), name="t", **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def memory() -> Memory:
    return Memory()


@pytest.fixture
def vm(memory: Memory) -> JitVm:
    return JitVm(memory)


def fault_of(vm: Vm, program: Program, **kwargs: int) -> VmFault:
    with pytest.raises(VmFault) as info:
        vm.run(program, **kwargs)
    return info.value


def both(memory: Memory, program: Program, **kwargs: int) -> tuple[object, object]:
    """(interpreter, JIT) outcome: r0, or (kind, pc, message) of the fault."""
    outcomes = []
    for vm in (Vm(memory), JitVm(memory)):
        try:
            outcomes.append(vm.run(program, **kwargs))
        except VmFault as exc:
            outcomes.append((exc.kind, exc.pc, exc.message))
        finally:
            vm.close()
    return outcomes[0], outcomes[1]


# --- faults -------------------------------------------------------------------------------------
def test_out_of_bounds_load_faults_with_pc_access_and_location(vm: JitVm) -> None:
    buf = vm.memory.allocate(16, "buf", init=bytes(range(16)))
    where = SourceLocation("prog.py", 7, 4)
    program = prog("mov %r0, 0\nldxdw %r0, [%r1+8]\nldxdw %r0, [%r1+12]\nexit", locate=lambda pc: where)
    fault = fault_of(vm, program, r1=buf.start)
    assert (fault.kind, fault.pc, fault.errno, fault.loc) == ("memory", 2, errno.EFAULT, where)
    assert (fault.access.addr, fault.access.size, fault.access.is_write) == (buf.start + 12, 8, False)
    assert "runs past the end of region 'buf'" in str(fault)
    assert vm.run(prog("mov %r0, 41\nadd %r0, 1\nexit")) == 42  # usable right after


def test_store_to_read_only_region_faults_and_memory_is_unchanged(vm: JitVm) -> None:
    ro = vm.memory.allocate(8, "rodata", writable=False, init=b"\x11" * 8)
    fault = fault_of(vm, prog("ldxb %r0, [%r1+0]\nstb [%r1+0], 0x22\nexit"), r1=ro.start)
    assert (fault.kind, fault.pc, fault.access.is_write) == ("memory", 1, True)
    assert "read-only" in fault.access.reason
    assert vm.memory.read_bytes(ro.start, 8) == b"\x11" * 8


def test_atomic_on_read_only_region_reports_the_write(memory: Memory) -> None:
    ro = memory.allocate(8, "rodata", writable=False)
    interp, jit = both(memory, prog("mov %r2, 1\nlock add [%r1+0], %r2\nexit"), r1=ro.start)
    assert interp == jit == ("memory", 1, f"invalid write of 8 byte(s) at 0x{ro.start:x}: region "
                             "'rodata' is read-only")


def test_null_and_wild_pointers_fault(vm: JitVm) -> None:
    assert "null pointer" in str(fault_of(vm, prog("mov %r1, 0\nldxw %r0, [%r1+16]\nexit")))
    fault = fault_of(vm, prog("lddw %r1, 0x7fff00001234\nstxdw [%r1+0], %r1\nexit"))
    assert (fault.kind, fault.pc) == ("memory", 2)


def test_stack_is_exactly_512_bytes_below_r10(vm: JitVm) -> None:
    assert vm.run(prog("stdw [%r10-512], 7\nldxdw %r0, [%r10-512]\nexit")) == 7
    assert fault_of(vm, prog("ldxdw %r0, [%r10-520]\nexit")).kind == "memory"
    assert fault_of(vm, prog("ldxb %r0, [%r10+0]\nexit")).kind == "memory"


def test_constant_r10_accesses_inside_the_frame_are_proven_and_others_checked() -> None:
    inside = compile_program(prog("stxdw [%r10-8], %r1\nldxdw %r0, [%r10-8]\nexit"))
    outside = compile_program(prog("stxdw [%r10-8], %r1\nldxdw %r0, [%r10+8]\nexit"))
    assert "call i1 @bpf_check" not in inside.ir
    assert outside.ir.count("call i1 @bpf_check") == 1


def test_a_region_removed_by_a_helper_is_no_longer_reachable(vm: JitVm) -> None:
    """The per-function region cache must not outlive a call that changed the table."""
    buf = vm.memory.allocate(8, "buf", init=b"\x05" + bytes(7))

    def drop(jvm: Vm, *args: int) -> int:
        jvm.memory.remove(buf)
        return 0
    program = prog("mov %r6, %r1\nldxb %r7, [%r6+0]\ncall 1\nldxb %r0, [%r6+0]\nexit", helpers={1: drop})
    fault = fault_of(vm, program, r1=buf.start)
    assert (fault.kind, fault.pc, fault.access.reason) == ("memory", 3, "address is in no region")


def test_a_region_added_by_a_helper_is_reachable_in_the_same_run(vm: JitVm) -> None:
    def add(jvm: Vm, *args: int) -> int:
        return jvm.memory.allocate(8, "new", init=b"\x2a" + bytes(7)).start
    assert vm.run(prog("call 1\nldxb %r0, [%r0+0]\nexit", helpers={1: add})) == 42


def test_region_hints_are_only_hints(vm: JitVm) -> None:
    """Each checked access keeps the index of the table entry it found last (consts, after the
    ld_imm64 values); whatever index is there, an access inside a region goes through and one that
    is not allowed still faults."""
    rw = vm.memory.allocate(8, "rw", init=b"\x07" + bytes(7))
    ro = vm.memory.allocate(8, "ro", writable=False)
    program = prog("ldxb %r0, [%r1+0]\nstb [%r2+0], 1\nexit")
    binding = vm.bind(program)
    sites = len(binding.code.check_sites)
    assert sites == 2 and len(binding.consts) == sites  # no ld_imm64: the hints start at 0
    for hint in [*range(len(vm.memory.regions()) + 2), 2**63, 2**64 - 1]:
        for i in range(sites):
            binding.consts[i] = hint
        assert vm.run(program, r1=rw.start, r2=rw.start + 1) == 7
        for i in range(sites):
            binding.consts[i] = hint
        fault = fault_of(vm, program, r1=rw.start, r2=ro.start)
        assert (fault.kind, fault.pc, fault.access.reason) == ("memory", 1, "region 'ro' is read-only")
        assert fault_of(vm, program, r1=rw.start + 8, r2=rw.start + 1).pc == 0  # one past the end


# --- budget and frames --------------------------------------------------------------------------
def test_an_infinite_loop_ends_on_the_budget_at_the_exact_instruction(memory: Memory) -> None:
    program = prog("mov %r0, 0\nloop:\nadd %r0, 1\nadd %r0, 2\nja loop\nexit")
    jit = JitVm(memory, budget=1000)
    fault = fault_of(jit, program)
    interp = Vm(memory, budget=1000)
    expected = fault_of(interp, program)
    assert (fault.kind, fault.errno) == ("budget", errno.ELOOP)
    assert fault.pc == expected.pc == 1 + (1000 - 1) % 3  # slot of the 1001st instruction
    assert jit.last_insn_count == interp.last_insn_count == 1000
    assert jit.run(prog("mov %r0, 3\nexit")) == 3  # usable right after


def test_per_run_budget_and_instruction_count(vm: JitVm) -> None:
    program = prog("mov %r0, 0\nloop:\nadd %r0, 1\njlt %r0, 10, loop\nexit")
    assert vm.run(program, budget=22) == 10
    assert vm.last_insn_count == 22
    assert fault_of(vm, program, budget=21).kind == "budget"


def test_recursion_ends_on_the_call_depth_limit(memory: Memory) -> None:
    program = prog("f:\ncall local f\nexit")
    interp, jit = both(memory, program)
    assert interp == jit == ("call_depth", 0, "call depth exceeds 8 frames")


def test_frames_are_zeroed_isolated_and_caller_stacks_stay_reachable(memory: Memory) -> None:
    program = prog("""
        ldxdw %r0, [%r10-8]      # 0 on a fresh frame, whatever the last run left
        stdw [%r10-8], 99
        mov %r6, 7
        mov %r1, %r10
        call local f
        add %r0, %r6             # r6 is the caller's again
        exit
    f:
        ldxdw %r0, [%r10-8]      # the callee's own, zeroed frame
        ldxdw %r2, [%r1-8]       # the caller's frame through a pointer: 99
        add %r0, %r2
        mov %r6, 1000
        exit""")
    interp, jit = both(memory, program)
    assert interp == jit == 99 + 7
    vm = JitVm(memory)
    assert vm.run(program) == vm.run(program) == 106


def test_callee_sees_the_callers_registers_and_hands_back_r1_to_r5(memory: Memory) -> None:
    program = prog("mov %r7, 5\nmov %r1, 1\ncall local f\nadd %r0, %r1\nexit\nf:\nmov %r0, %r7\nmov %r1, 30\nexit")
    assert both(memory, program) == (35, 35)


# --- helpers ------------------------------------------------------------------------------------
def test_python_helpers_get_r1_to_r5_and_negative_results_wrap(vm: JitVm) -> None:
    seen = []

    def helper(jvm: Vm, *args: int) -> int:
        seen.append(args)
        return -2
    program = prog("mov %r1, 1\nmov %r2, 2\nmov %r3, 3\nmov %r4, 4\nmov %r5, -1\ncall 7\nexit",
                   helpers={7: helper})
    assert vm.run(program) == 2**64 - 2
    assert seen == [(1, 2, 3, 4, 2**64 - 1)]


def test_helper_faults_stop_and_bugs_are_reported_at_the_call(vm: JitVm) -> None:
    def refuse(jvm: Vm, *args: int) -> int:
        raise HelperFault("bad cq index", errno.EINVAL)

    def stop(jvm: Vm, *args: int) -> int:
        raise StopProgram(77)

    def bug(jvm: Vm, *args: int) -> int:
        raise ZeroDivisionError("helper bug")
    text = "mov %r0, 1\ncall 1\nmov %r0, 2\nexit"
    fault = fault_of(vm, prog(text, helpers={1: refuse}))
    assert (fault.kind, fault.pc, fault.errno) == ("helper", 1, errno.EINVAL)
    assert vm.run(prog(text, helpers={1: stop})) == 77
    with pytest.raises(ZeroDivisionError) as info:
        vm.run(prog(text, helpers={1: bug}))
    assert "executed slot 1" in str(info.value.__notes__)
    missing = fault_of(vm, prog(text))
    assert (missing.kind, missing.pc, missing.errno) == ("no_helper", 1, errno.ENOSYS)


def test_helper_memory_faults_are_the_programs(vm: JitVm) -> None:
    program = prog("mov %r1, 16\ncall 1\nexit", helpers={1: lambda jvm, r1, *a: jvm.memory.load(r1, 8)})
    fault = fault_of(vm, program)
    assert (fault.kind, fault.pc) == ("memory", 1)


def test_callx_calls_the_helper_named_by_the_register(memory: Memory) -> None:
    program = prog("mov %r1, 5\nmov %r8, 3\ncall %r8\nexit", helpers={3: lambda jvm, r1, *a: r1 * 2})
    assert both(memory, program) == (10, 10)
    interp, jit = both(memory, prog("mov %r8, 4\ncall %r8\nexit"))
    assert interp == jit == ("no_helper", 1, "unknown helper 4 (called through r8)")


def test_callbacks_run_natively_through_call_function(memory: Memory) -> None:
    """A bpf_loop-like helper: calls the function whose slot `ld_imm64 func` gave, r2 times."""
    def loop(jvm: Vm, callback: int, count: int, *args: int) -> int:
        total = 0
        for i in range(count):
            total += jvm.call_function(callback, i)
        return total
    program = prog("lddw %r1, func(cb)\nmov %r2, 4\ncall 9\nexit\ncb:\nmov %r0, %r1\nmul %r0, %r0\nexit",
                   helpers={9: loop})
    assert both(memory, program) == (0 + 1 + 4 + 9, 14)
    faulty = prog("lddw %r1, func(cb)\nmov %r2, 1\ncall 9\nexit\ncb:\nldxdw %r0, [%r1+0]\nexit",
                  helpers={9: loop})
    interp, jit = both(memory, faulty)
    assert interp == jit and jit[:2] == ("memory", 5)  # the callback's own slot


def test_a_callback_slot_given_as_a_plain_number_is_compiled_on_first_use(memory: Memory) -> None:
    def call_r1(jvm: Vm, target: int, *args: int) -> int:
        return jvm.call_function(target, 20) + jvm.call_function(target, 1)
    program = prog("mov %r1, 3\ncall 9\nexit\nmov %r0, %r1\nadd %r0, 1\nexit", helpers={9: call_r1})
    assert both(memory, program) == (23, 23)
    looping = prog("mov %r1, 3\ncall 9\nexit\nja +0\nja -2\nexit", helpers={9: call_r1})
    interp, jit = both(memory, looping)
    assert interp == jit and jit[0] == "budget"


def _native_helper(ir_body: str, name: str) -> NativeHelper:
    """Compile a tiny native helper with llvmlite (the way native helpers are meant to be plugged in)."""
    module = llvm.parse_assembly(f"define i64 @{name}(ptr %ctx, i64 %r1, i64 %r2, i64 %r3, i64 %r4, "
                                 f"i64 %r5) {{\n{ir_body}\n}}")
    machine = llvm.Target.from_default_triple().create_target_machine(jit=True)
    engine = llvm.create_mcjit_compiler(module, machine)
    engine.finalize_object()
    return NativeHelper(engine.get_function_address(name), name, keepalive=engine)


def test_native_helpers_are_called_directly_and_can_fault() -> None:
    add = _native_helper("  %s = mul i64 %r1, 10\n  %t = add i64 %s, %r2\n  ret i64 %t", "add_helper")
    refuse = _native_helper(f"  store i64 {jit_abi.ST_HELPER}, ptr %ctx\n"
                            f"  %a = getelementptr i64, ptr %ctx, i64 {jit_abi.CTX_AUX}\n"
                            f"  store i64 {errno.EINVAL}, ptr %a\n  ret i64 0", "refuse_helper")
    vm = JitVm(Memory())
    program = prog("mov %r1, 4\nmov %r2, 2\ncall 1\nexit", helpers={1: add})
    assert vm.run(program) == 42
    assert "inttoptr" in compile_program(program).ir and "@bpf_fn0" in compile_program(program).ir
    fault = fault_of(vm, prog("mov %r0, 0\ncall 1\nexit", helpers={1: refuse}))
    assert (fault.kind, fault.pc, fault.errno) == ("helper", 1, errno.EINVAL)
    assert add.call(ctypes.addressof(vm._ctx), 1, 2, 0, 0, 0) == 12
    with pytest.raises(ValueError, match="not a code address"):
        NativeHelper(0, "null")


def test_a_native_helper_runs_the_same_on_the_interpreter(memory: Memory) -> None:
    """It checks its pointer against the region table it is given, on both engines."""
    load = _native_helper(f"""
      %tp = getelementptr i64, ptr %ctx, i64 {jit_abi.CTX_REGIONS}
      %tab = load ptr, ptr %tp
      %np = getelementptr i64, ptr %ctx, i64 {jit_abi.CTX_NREGIONS}
      %n = load i64, ptr %np
      %last = add i64 %r1, 1
      br label %loop
    loop:
      %i = phi i64 [0, %0], [%i1, %next]
      %more = icmp ult i64 %i, %n
      br i1 %more, label %body, label %bad
    body:
      %i3 = mul i64 %i, 3
      %sp = getelementptr i64, ptr %tab, i64 %i3
      %start = load i64, ptr %sp
      %ep = getelementptr i64, ptr %sp, i64 1
      %end = load i64, ptr %ep
      %lo = icmp uge i64 %r1, %start
      %hi = icmp ule i64 %last, %end
      %ok = and i1 %lo, %hi
      br i1 %ok, label %read, label %next
    next:
      %i1 = add i64 %i, 1
      br label %loop
    read:
      %p = inttoptr i64 %r1 to ptr
      %b = load i8, ptr %p
      %v = zext i8 %b to i64
      ret i64 %v
    bad:
      store i64 {jit_abi.ST_MEMORY}, ptr %ctx
      %a = getelementptr i64, ptr %ctx, i64 {jit_abi.CTX_ADDR}
      store i64 %r1, ptr %a
      %s = getelementptr i64, ptr %ctx, i64 {jit_abi.CTX_SIZE}
      store i64 1, ptr %s
      ret i64 0""", "load_first_region_byte")
    buf = memory.allocate(4, "buf", init=b"\x07\x08\x09\x0a")
    program = prog("add %r1, 2\ncall 1\nexit", helpers={1: load})
    interp, jit = Vm(memory), JitVm(memory)
    assert interp.run(program, r1=buf.start) == jit.run(program, r1=buf.start) == 9
    faults = [fault_of(vm, program, r1=buf.start + 3) for vm in (interp, jit)]
    assert [(f.kind, f.pc, f.message) for f in faults] == [("memory", 1, faults[0].message)] * 2
    assert faults[0].message.endswith(f"at 0x{buf.start + 5:x}: address is in no region")


# --- ld_imm64, entries, the bound program --------------------------------------------------------
def test_ld_imm64_pseudo_values_come_from_the_resolver_or_fault(memory: Memory) -> None:
    program = prog("lddw %r0, map_fd(3)\nexit", resolve_ld_imm64=lambda pc, src, imm, nxt: 0x1000 + imm)
    assert both(memory, program) == (0x1003, 0x1003)
    interp, jit = both(memory, prog("mov %r0, 1\nlddw %r0, map_value(3, 16)\nexit"))
    assert interp == jit == ("invalid", 1, "ld_imm64 map_value(3, 16) has no resolver")


def test_invalid_instructions_fault_only_when_reached(memory: Memory) -> None:
    program = Program(isa.decode(assemble("mov %r0, 3\nja +1\n") + bytes([0xFF] + [0] * 7)
                                 + assemble("exit")), name="t")
    assert both(memory, program) == (3, 3)
    interp, jit = both(memory, prog("mov %r0, 1\nja +5\nexit"))
    assert interp == jit == ("invalid", 1, "jump from slot 1 to slot 7, which starts no instruction")
    interp, jit = both(memory, prog("mov %r0, 1"))
    assert interp == jit == ("invalid", 1, "execution ran past the last slot (0) without exit")


def test_entry_slots_and_the_bound_program(vm: JitVm) -> None:
    program = prog("mov %r0, 1\nexit\nmov %r0, %r1\nadd %r0, 2\nexit")
    assert vm.run(program, r1=40, entry=2) == 42
    assert fault_of(vm, program, entry=9).kind == "invalid"
    bound = vm.jit(program, entry=2)
    assert isinstance(bound, JitProgram) and bound.run(5) == 7 and bound.run(2**64 - 2) == 0
    assert compile_program(program, 2) is compile_program(program, 2)  # compiled once, shared


def test_run_inside_a_helper_is_refused(vm: JitVm) -> None:
    inner = prog("mov %r0, 1\nexit")
    program = prog("call 1\nexit", helpers={1: lambda jvm, *a: jvm.run(inner)})
    with pytest.raises(RuntimeError, match="helpers use vm.call_function"):
        vm.run(program)
    assert vm.run(inner) == 1
