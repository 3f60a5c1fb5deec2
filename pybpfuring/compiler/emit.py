"""LLVM IR -> optimised BPF ELF object, with llvmlite alone (LLVM's BPF backend is built into its wheel)."""
from __future__ import annotations

import functools
import threading

import llvmlite.binding as llvm

from ..errors import InternalCompilerError
from .targets import Target

_lock = threading.Lock()


@functools.cache
def _init() -> None:
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    # The BPF backend's stack-size check reports a fatal error, which exits the process (a Ring
    # compiling in a user's program would take it down). Move it out of the way; stack_check.py
    # finds the same overflow in the object and reports it at the Python line.
    llvm.set_option("pybpfuring", "--bpf-stack-size=1048576")
    # No closed forms for a loop's exit values: `for j in range(n): total += j` through a pointer
    # that does not change (a hoisted map element) would become n*(n-1)/2 computed in 128 bits, a
    # call to __multi3 that the BPF backend cannot emit (a fatal error, which exits the process).
    # The verifier walks the loop either way.
    llvm.set_option("pybpfuring", "--replexitval=never")


# LLVM's full-unroll threshold at -O2 is 150 (LoopUnrollPass: UnrollThresholdDefault). Our loops
# are cheaper than clang's for the same C (array elements named by a constant key are looked up once,
# before the loop, where the C twins call a lookup helper per trip), so 150 unrolled loops clang keeps:
# write_file's 4-trip SQE fill became four copies (241 instructions against clang's 208). 50 still
# unrolls the small loops whose copies the verifier walks fastest (write_file's 4-trip counter loop;
# 0 made write_file 960 processed instructions against 292) and keeps the big ones a loop. bpf_ops
# keeps LLVM's default: the kernel loop's scheduler is checked in the guest at that setting.
UNROLL_THRESHOLD = {"bpf_ops": 150}
DEFAULT_UNROLL_THRESHOLD = 50
_unroll_set: list[int] = []


def _set_unroll_threshold(target: Target) -> None:
    """Per target; the option is global to the process, so it is set before each pipeline run (under
    `_lock`, which every LLVM pass run holds)."""
    want = UNROLL_THRESHOLD.get(target.name, DEFAULT_UNROLL_THRESHOLD)
    if _unroll_set != [want]:
        llvm.set_option("pybpfuring", f"--unroll-threshold={want}")
        _unroll_set[:] = [want]


@functools.cache
def target_machine(cpu: str) -> llvm.TargetMachine:
    _init()
    return llvm.Target.from_triple("bpfel").create_target_machine(
        cpu=cpu, opt=2, reloc="static", codemodel="small")


def optimise(ir_text: str, target: Target, linked: dict[str, bytes] | None = None) -> llvm.ModuleRef:
    """Parse, link in `linked` (function name -> bitcode of a module defining it, see link_bodies)
    and run the -O2 pipeline."""
    tm = target_machine(target.cpu)
    with _lock:
        mod = _parse(ir_text, linked)
        _set_unroll_threshold(target)
        pto = llvm.create_pipeline_tuning_options(speed_level=2)
        pb = llvm.create_pass_builder(tm, pto)
        pm = pb.getModulePassManager()
        pm.run(mod, pb)
    return mod


_ONE_COPY = "linkonce_odr"


def link_bodies(mod: llvm.ModuleRef, bodies: dict[str, bytes]) -> None:
    """Link into `mod` each function of `bodies` from its bitcode module, replacing the stand-in
    `mod` defines under that name (caller holds _lock).

    Each body module was compiled alone, so it carries its own copy of what it shares with `mod`
    and with the other bodies: the scheduler's maps and global functions, a map two programs use,
    the license. Those copies are made "one copy" (linkonce_odr: the same definition, any one may
    be kept) while linking, and everything is external again afterwards, as a single compile makes it.
    """
    for name in bodies:
        mod.get_function(name).linkage = "weak_any"      # the stand-in gives way to the body
    for name, code in bodies.items():
        body = llvm.parse_bitcode(code)
        for gv in body.global_variables:
            if not gv.is_declaration and gv.linkage == llvm.Linkage.external:
                gv.linkage = _ONE_COPY
        for fn in body.functions:
            if fn.name != name and not fn.is_declaration and fn.linkage == llvm.Linkage.external:
                fn.linkage = _ONE_COPY
        mod.link_in(body)
    for value in [*mod.global_variables, *mod.functions]:
        if value.linkage in (llvm.Linkage.linkonce_odr, llvm.Linkage.weak_any):
            value.linkage = "external"


def _parse(ir_text: str, linked: dict[str, bytes] | None = None) -> llvm.ModuleRef:
    """The generated module, with `linked` linked in, verified (caller holds _lock)."""
    try:
        mod = llvm.parse_assembly(ir_text)
        if linked:
            link_bodies(mod, linked)
        mod.verify()
    except RuntimeError as e:
        raise InternalCompilerError(f"LLVM rejected the generated IR: {e}") from e
    return mod


def bitcode(ir_text: str) -> bytes:
    """LLVM bitcode of a generated module, unoptimised (it is optimised once linked)."""
    with _lock:
        return bytes(_parse(ir_text).as_bitcode())


def emit_object(mod: llvm.ModuleRef, target: Target) -> bytes:
    with _lock:
        return bytes(target_machine(target.cpu).emit_object(mod))


def emit_assembly(mod: llvm.ModuleRef, target: Target) -> str:
    with _lock:
        return target_machine(target.cpu).emit_assembly(mod)
