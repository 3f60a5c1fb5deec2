"""The reference interpreter and its memory model, beyond the conformance suite."""
from __future__ import annotations

import ctypes
import errno
import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pybpfuring.abi import isa
from pybpfuring.abi.asm import assemble
from pybpfuring.errors import ProgramFault, SourceLocation
from pybpfuring.runtime.engine.faults import HelperFault, StopProgram, VmFault
from pybpfuring.runtime.engine.interp import Program, Vm
from pybpfuring.runtime.engine.memory import Memory, MemoryFault

M64 = (1 << 64) - 1


def prog(text: str, **kwargs: object) -> Program:
    return Program(isa.decode(assemble(text)), name="t", **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def vm() -> Vm:
    return Vm(Memory())


def fault_of(vm: Vm, program: Program, **kwargs: int) -> VmFault:
    with pytest.raises(VmFault) as info:
        vm.run(program, **kwargs)
    return info.value


def still_usable(vm: Vm) -> None:
    assert vm.run(prog("mov %r0, 41\nadd %r0, 1\nexit")) == 42


# --- memory faults ------------------------------------------------------------------------------
def test_out_of_bounds_load_faults_with_its_pc_and_the_vm_stays_usable(vm: Vm) -> None:
    buf = vm.memory.allocate(16, "buf", init=bytes(range(16)))
    program = prog("mov %r0, 0\nldxdw %r0, [%r1+8]\nldxdw %r0, [%r1+12]\nexit")
    fault = fault_of(vm, program, r1=buf.start)
    assert (fault.kind, fault.pc, fault.errno) == ("memory", 2, errno.EFAULT)
    assert fault.access is not None and fault.access.addr == buf.start + 12
    assert fault.access.size == 8 and not fault.access.is_write
    assert "past the end of region 'buf'" in str(fault)
    assert isinstance(fault, ProgramFault) and "faulted at instruction 2" in str(fault)
    still_usable(vm)


def test_store_into_read_only_region_faults_and_leaves_memory_alone(vm: Vm) -> None:
    ro = vm.memory.allocate(8, "rodata", writable=False, init=b"\x11" * 8)
    program = prog("ldxb %r0, [%r1+0]\nstb [%r1+0], 0x22\nexit")
    fault = fault_of(vm, program, r1=ro.start)
    assert (fault.kind, fault.pc) == ("memory", 1)
    assert fault.access.is_write and "read-only" in fault.access.reason
    assert vm.memory.read_bytes(ro.start, 8) == b"\x11" * 8
    still_usable(vm)


def test_null_dereference_faults(vm: Vm) -> None:
    fault = fault_of(vm, prog("mov %r1, 0\nldxw %r0, [%r1+16]\nexit"))
    assert (fault.kind, fault.pc) == ("memory", 1)
    assert "null pointer" in str(fault)


def test_wild_pointer_store_faults(vm: Vm) -> None:
    fault = fault_of(vm, prog("lddw %r1, 0x7fff00001234\nstxdw [%r1+0], %r1\nexit"))
    assert (fault.kind, fault.pc) == ("memory", 2)  # the lddw occupies slots 0 and 1


def test_stack_is_exactly_512_bytes_below_r10(vm: Vm) -> None:
    assert vm.run(prog("stdw [%r10-512], 7\nldxdw %r0, [%r10-512]\nexit")) == 7
    assert fault_of(vm, prog("ldxdw %r0, [%r10-520]\nexit")).kind == "memory"
    assert fault_of(vm, prog("ldxb %r0, [%r10+0]\nexit")).kind == "memory"


def test_stack_starts_zeroed_on_every_run(vm: Vm) -> None:
    vm.run(prog("stdw [%r10-8], -1\nexit"))
    assert vm.run(prog("ldxdw %r0, [%r10-8]\nexit")) == 0


def test_external_memory_is_real_host_memory(vm: Vm) -> None:
    host = (ctypes.c_uint32 * 4)(1, 2, 3, 4)
    region = vm.memory.register_buffer(host, "host array")
    assert region.start == ctypes.addressof(host)
    assert vm.run(prog("ldxw %r0, [%r1+8]\nstw [%r1+12], 99\nexit"), r1=region.start) == 3
    assert host[3] == 99


# --- the memory table itself ----------------------------------------------------------------------
def test_memory_table_rejects_overlaps_and_checks_bounds() -> None:
    memory = Memory()
    a = memory.allocate(64, "a")
    with pytest.raises(ValueError, match="overlaps 'a'"):
        memory.register(a.start + 32, 64, "b")
    memory.write_bytes(a.start + 60, b"wxyz")
    assert memory.read_bytes(a.start + 60, 4) == b"wxyz"
    with pytest.raises(MemoryFault):
        memory.read_bytes(a.start + 60, 5)
    with pytest.raises(MemoryFault):
        memory.load(a.start - 1, 1)
    memory.remove(a)
    with pytest.raises(MemoryFault):
        memory.load(a.start, 1)  # even right after the cached region was removed


def test_read_only_view_and_cstring() -> None:
    memory = Memory()
    a = memory.allocate(8, "a", init=b"hi\0xxxxx")
    assert memory.read_cstring(a.start, 8) == b"hi"
    view = memory.view(a.start, 4)
    assert view.readonly and bytes(view) == b"hi\0x"
    with pytest.raises(MemoryFault):
        memory.read_cstring(a.start + 3, 8)  # no NUL before the region ends


# --- budget ------------------------------------------------------------------------------------
def test_infinite_loop_exhausts_the_budget(vm: Vm) -> None:
    fault = fault_of(vm, prog("mov %r0, 0\nloop:\nadd %r0, 1\nja loop\nexit"), budget=1001)
    assert fault.kind == "budget" and fault.errno == errno.ELOOP
    assert fault.pc in (1, 2)
    assert vm.last_insn_count == 1001
    still_usable(vm)


def test_default_budget_is_one_million(vm: Vm) -> None:
    assert vm.budget == 1_000_000
    vm.run(prog("mov %r1, 0\nloop:\nadd %r1, 1\njlt %r1, 1000, loop\nexit"))
    assert vm.last_insn_count == 1 + 2 * 1000 + 1


# --- BPF-to-BPF calls -------------------------------------------------------------------------
CALLS = """
    mov %r6, 6
    stdw [%r10-8], 111
    mov %r1, %r10
    add %r1, -16
    call local callee
    ldxdw %r2, [%r10-8]         # the callee's own r10-8 is a different slot
    jne %r2, 111, bad
    ldxdw %r3, [%r10-16]        # written by the callee through the pointer we passed
    jne %r3, 222, bad
    jne %r6, 6, bad
    exit
bad:
    mov %r0, -1
    exit
callee:
    stdw [%r10-8], 333
    stdw [%r1+0], 222
    mov %r6, 0
    mov %r0, %r10
    exit
"""


def test_each_frame_has_its_own_stack_and_r6_to_r9_survive(vm: Vm) -> None:
    r0 = vm.run(prog(CALLS))
    caller_fp = vm.stacks[0].end
    assert r0 == vm.stacks[1].end and r0 != caller_fp  # the callee's r10 was its own frame's


def test_call_depth_is_limited_to_eight_frames(vm: Vm) -> None:
    recursive = prog("mov %r0, 0\ncall local f\nexit\nf:\nadd %r0, 1\ncall local f\nexit")
    fault = fault_of(vm, recursive)
    assert fault.kind == "call_depth" and fault.pc == 4 and fault.errno == errno.E2BIG
    ok = prog("call local f\nexit\nf:\njge %r1, 6, +3\nadd %r1, 1\ncall local f\nadd %r0, 1\nexit")
    assert vm.run(ok, r1=0) == 6  # the entry frame plus 7 nested calls: exactly 8 frames
    still_usable(vm)


# --- helpers, kfuncs, ld_imm64 -----------------------------------------------------------------
def test_helpers_get_checked_memory_and_return_signed_values(vm: Vm) -> None:
    seen = []

    def copy_upper(v: Vm, dst: int, src: int, n: int, r4: int, r5: int) -> int:
        data = v.memory.read_bytes(src, n)
        seen.append(data)
        v.memory.write_bytes(dst, data.upper())
        return -n

    buf = vm.memory.allocate(16, "buf", init=b"hello")
    program = prog("mov %r6, %r1\nmov %r1, %r10\nadd %r1, -8\nmov %r2, %r6\nmov %r3, 5\ncall 9\n"
                   "ldxw %r1, [%r10-8]\nstxdw [%r6+8], %r0\nmov %r0, %r1\nexit",
                   helpers={9: copy_upper})
    assert vm.run(program, r1=buf.start) == int.from_bytes(b"HELL", "little")
    assert seen == [b"hello"]
    assert vm.memory.load(buf.start + 8, 8) == (-5) & M64


def test_helper_bad_pointer_faults_at_the_call(vm: Vm) -> None:
    def reader(v: Vm, ptr: int, n: int, *_: int) -> int:
        return len(v.memory.read_bytes(ptr, n))

    fault = fault_of(vm, prog("mov %r1, 8\nmov %r2, 4\ncall 1\nexit", helpers={1: reader}))
    assert (fault.kind, fault.pc) == ("memory", 2)


def test_unknown_helper_and_helper_fault(vm: Vm) -> None:
    fault = fault_of(vm, prog("mov %r0, 0\ncall 77\nexit"))
    assert (fault.kind, fault.pc, fault.errno) == ("no_helper", 1, errno.ENOSYS)

    def refuse(v: Vm, *_: int) -> int:
        raise HelperFault("flags must be zero", errno.EINVAL)

    fault = fault_of(vm, prog("call 3\nexit", helpers={3: refuse}))
    assert (fault.kind, fault.errno) == ("helper", errno.EINVAL) and "flags must be zero" in str(fault)


def test_helper_can_stop_the_program(vm: Vm) -> None:
    def stop(v: Vm, r1: int, *_: int) -> int:
        raise StopProgram(r1 + 1)

    assert vm.run(prog("mov %r1, 4\ncall 2\nmov %r0, 0\nexit", helpers={2: stop})) == 5


def test_kfuncs_by_btf_id_and_by_name(vm: Vm) -> None:
    program = prog("call runtime 1234\nmov %r6, %r0\ncall runtime 77\nadd %r0, %r6\nexit",
                   kfuncs={1234: lambda v, *a: 40, "bpf_two": lambda v, *a: 2},
                   kfunc_names={77: "bpf_two"})
    assert vm.run(program) == 42
    fault = fault_of(vm, prog("call runtime 5\nexit"))
    assert fault.kind == "no_helper" and "kfunc 5" in str(fault)


def test_pseudo_ld_imm64_goes_through_the_resolver(vm: Vm) -> None:
    value = vm.memory.allocate(8, "map value", init=(7).to_bytes(8, "little"))
    calls = []

    def resolve(pc: int, src: int, imm: int, next_imm: int) -> int:
        calls.append((pc, src, imm, next_imm))
        if src == isa.BPF_PSEUDO_MAP_IDX_VALUE and imm == 0:
            return value.start + next_imm
        raise LookupError(f"no map {imm}")

    program = prog("lddw %r1, map_idx_value(0, 4)\nstw [%r1+0], 9\nlddw %r1, map_idx_value(0, 0)\n"
                   "ldxdw %r0, [%r1+0]\nexit", resolve_ld_imm64=resolve)
    assert vm.run(program) == 7 | (9 << 32)
    assert calls == [(0, 6, 0, 4), (3, 6, 0, 0)]
    fault = fault_of(vm, prog("mov %r0, 0\nlddw %r1, map_fd(5)\nexit", resolve_ld_imm64=resolve))
    assert (fault.kind, fault.pc) == ("invalid", 1) and "no map 5" in str(fault)
    assert "no resolver" in str(fault_of(vm, prog("lddw %r1, map_fd(5)\nexit")))


def test_callbacks_through_pseudo_func_and_call_function(vm: Vm) -> None:
    """A bpf_loop-like helper: r1 = iterations, r2 = callback (ld_imm64 func), r3 = context."""
    def loop(v: Vm, n: int, callback: int, ctx: int, *_: int) -> int:
        for i in range(n):
            if v.call_function(callback, i, ctx):
                return i + 1
        return n

    program = prog("""
        stdw [%r10-8], 0
        mov %r1, 5
        lddw %r2, func(cb)
        mov %r3, %r10
        add %r3, -8
        call 181
        ldxdw %r1, [%r10-8]
        lsh %r0, 32
        or %r0, %r1
        exit
    cb:
        ldxdw %r0, [%r2+0]
        add %r0, %r1
        stxdw [%r2+0], %r0
        mov %r0, 0
        exit
    """, helpers={181: loop})
    assert vm.run(program) == (5 << 32) | (0 + 1 + 2 + 3 + 4)
    assert vm.last_insn_count == 10 + 5 * 5


# --- invalid programs ------------------------------------------------------------------------
@pytest.mark.parametrize("text, pc, words", [
    (".insn 0x0000000000000020\nexit", 0, "legacy packet access"),  # BPF_LD | BPF_ABS | BPF_W
    ("mov %r0, 0\n.insn 0x00000000000000ff\nexit", 1, "unknown ALU operation"),
    ("mov %r0, 1", 1, "ran past the last slot"),
    ("mov %r0, 1\njeq %r0, 1, +5\nexit", 1, "starts no instruction"),
    ("lddw %r0, 5\nja -2\nexit", 2, "starts no instruction"),  # into the high half of lddw
    ("mov %r0, 0\nmov %r10, 1\nexit", 1, "read-only"),
    ("mov %r0, 0\n.insn 0x00000008000000d7\nexit", 1, "byte-swap"),  # bswap of 8 bits
    ("mov %r0, 0\n.insn 0x0000000000001107\nexit", 1, "nonzero src"),  # add r1, imm with src=1
    ("mov %r0, 0\n.insn 0x0000000000000b07\nexit", 1, "r11 does not exist"),
])
def test_invalid_instructions_fault_when_reached(vm: Vm, text: str, pc: int, words: str) -> None:
    fault = fault_of(vm, prog(text))
    assert (fault.kind, fault.pc, fault.errno) == ("invalid", pc, errno.EINVAL)
    assert words in str(fault)
    still_usable(vm)


def test_fault_carries_the_source_location() -> None:
    vm = Vm(Memory())
    loc = SourceLocation(__file__, 1, 0)
    program = prog("mov %r1, 0\nldxb %r0, [%r1+0]\nexit", locate=lambda pc: loc if pc == 1 else None)
    fault = fault_of(vm, program)
    assert fault.loc == loc and __file__ in str(fault)


# --- ALU and jump semantics against a plain Python model (hypothesis) ---------------------------
def signed(x: int, bits: int) -> int:
    x &= (1 << bits) - 1
    return x - (1 << bits) if x >> (bits - 1) else x


def trunc_div(a: int, b: int) -> int:
    return math.trunc(Fraction(a, b))


def model(op: str, bits: int, a: int, b: int) -> int:
    mask = (1 << bits) - 1
    a, b = a & mask, b & mask
    sa, sb = signed(a, bits), signed(b, bits)
    result = {
        "add": lambda: a + b, "sub": lambda: a - b, "mul": lambda: a * b, "or": lambda: a | b,
        "and": lambda: a & b, "xor": lambda: a ^ b, "mov": lambda: b,
        "lsh": lambda: a << (b % bits), "rsh": lambda: a >> (b % bits),
        "arsh": lambda: sa >> (b % bits),
        "div": lambda: a // b if b else 0, "mod": lambda: a % b if b else a,
        "sdiv": lambda: trunc_div(sa, sb) if sb else 0,
        "smod": lambda: sa - sb * trunc_div(sa, sb) if sb else a,
    }[op]()
    return result & mask


ALU_NAMES = ["add", "sub", "mul", "or", "and", "xor", "mov", "lsh", "rsh", "arsh", "div", "mod",
             "sdiv", "smod"]
U64 = st.one_of(st.integers(0, M64), st.sampled_from([0, 1, M64, 1 << 63, (1 << 63) - 1, 1 << 31,
                                                       (1 << 32) - 1, 0xFFFF_FFFF_8000_0000, 63, 64]))
_REG_PROGRAMS: dict[tuple[str, int], Program] = {}
_VM = Vm(Memory())


def reg_program(op: str, bits: int) -> Program:
    key = (op, bits)
    if key not in _REG_PROGRAMS:
        suffix = "32" if bits == 32 else ""
        _REG_PROGRAMS[key] = prog(f"{op}{suffix} %r1, %r2\nmov %r0, %r1\nexit")
    return _REG_PROGRAMS[key]


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(ALU_NAMES), st.sampled_from([32, 64]), U64, U64)
def test_alu_register_forms_match_the_model(op: str, bits: int, a: int, b: int) -> None:
    assert _VM.run(reg_program(op, bits), r1=a, r2=b) == model(op, bits, a, b)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(ALU_NAMES), st.sampled_from([32, 64]), U64,
       st.integers(-(1 << 31), (1 << 31) - 1))
def test_alu_immediate_forms_match_the_model(op: str, bits: int, a: int, imm: int) -> None:
    suffix = "32" if bits == 32 else ""
    program = prog(f"{op}{suffix} %r1, {imm}\nmov %r0, %r1\nexit")
    # imm is sign-extended to 64 bits (for ALU64) and then used as an unsigned operand
    assert _VM.run(program, r1=a) == model(op, bits, a, imm & M64)


JUMPS = {"jeq": lambda a, b, s: a == b, "jne": lambda a, b, s: a != b, "jset": lambda a, b, s: a & b,
         "jgt": lambda a, b, s: a > b, "jge": lambda a, b, s: a >= b, "jlt": lambda a, b, s: a < b,
         "jle": lambda a, b, s: a <= b, "jsgt": lambda a, b, s: s(a) > s(b),
         "jsge": lambda a, b, s: s(a) >= s(b), "jslt": lambda a, b, s: s(a) < s(b),
         "jsle": lambda a, b, s: s(a) <= s(b)}


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(JUMPS)), st.sampled_from([32, 64]), U64, U64)
def test_conditional_jumps_match_the_model(op: str, bits: int, a: int, b: int) -> None:
    suffix = "32" if bits == 32 else ""
    key = (op + "?", bits)
    if key not in _REG_PROGRAMS:
        _REG_PROGRAMS[key] = prog(f"{op}{suffix} %r1, %r2, +2\nmov %r0, 0\nexit\nmov %r0, 1\nexit")
    mask = (1 << bits) - 1
    taken = bool(JUMPS[op](a & mask, b & mask, lambda x: signed(x, bits)))
    assert _VM.run(_REG_PROGRAMS[key], r1=a, r2=b) == int(taken)


@settings(max_examples=200, deadline=None)
@given(U64, st.sampled_from([8, 16, 32]), st.sampled_from([32, 64]))
def test_sign_extending_moves_and_loads(a: int, width: int, bits: int) -> None:
    if width == 32 and bits == 32:
        return  # movsx3232 does not exist
    key = ("movsx", width, bits)
    if key not in _REG_PROGRAMS:  # type: ignore[comparison-overlap]
        _REG_PROGRAMS[key] = prog(f"movsx{width}{bits} %r0, %r1\nexit")  # type: ignore[index]
    expected = signed(a, width) & ((1 << bits) - 1)
    assert _VM.run(_REG_PROGRAMS[key], r1=a) == expected  # type: ignore[index]
    size = {8: "b", 16: "h", 32: "w"}[width]
    load = prog(f"stxdw [%r10-8], %r1\nldxs{size} %r0, [%r10-8]\nexit")
    assert _VM.run(load, r1=a) == signed(a, width) & M64


@settings(max_examples=100, deadline=None)
@given(U64, st.sampled_from([16, 32, 64]))
def test_byte_swaps(a: int, width: int) -> None:
    nbytes = width // 8
    low = a & ((1 << width) - 1)
    swapped = int.from_bytes(low.to_bytes(nbytes, "little"), "big")
    for text, expected in ((f"be{width}", swapped), (f"bswap{width}", swapped), (f"le{width}", low)):
        assert _VM.run(prog(f"mov %r0, %r1\n{text} %r0\nexit"), r1=a) == expected, text
