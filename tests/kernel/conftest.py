"""Kernel-tier fixtures: BPF objects built by clang from tests/kernel/progs, and a bpf() probe.

Tests here load real programs into the host kernel; they skip (with the reason) only where the
machine cannot: no clang to build the C test programs, or bpf() not permitted.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from diffharness import bpf_unavailable

PROGS = Path(__file__).parent / "progs"


@pytest.fixture(scope="session")
def bpf_available() -> None:
    reason = bpf_unavailable()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def build(tmp_path_factory):
    """build("name") -> path of progs/name.c compiled with `clang -g -O2 -target bpf`."""
    clang = shutil.which("clang")
    if clang is None:
        pytest.skip("clang is not installed (apt-get install clang) to build the C test programs")
    out_dir = tmp_path_factory.mktemp("bpf-objs")
    built: dict[str, Path] = {}

    def _build(name: str) -> Path:
        if name not in built:
            src, obj = PROGS / f"{name}.c", out_dir / f"{name}.o"
            proc = subprocess.run([clang, "-g", "-O2", "-target", "bpf", "-c", str(src), "-o",
                                   str(obj)], capture_output=True, text=True)
            assert proc.returncode == 0, f"clang failed on {src}:\n{proc.stderr}"
            built[name] = obj
        return built[name]

    return _build


@pytest.fixture(scope="session")
def build_llvmlite(build, tmp_path_factory):
    """build_llvmlite("name") -> progs/name.c turned into LLVM IR by clang, then into an object by
    llvmlite's LLVM: the code generator our compiler uses (a newer LLVM than Debian's clang)."""
    import llvmlite.binding as llvm

    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    clang = shutil.which("clang")
    out_dir = tmp_path_factory.mktemp("bpf-objs-llvmlite")

    def _build(name: str) -> Path:
        ir = subprocess.run([clang, "-g", "-O2", "-target", "bpf", "-S", "-emit-llvm", "-o", "-",
                             str(PROGS / f"{name}.c")], capture_output=True, text=True, check=True)
        module = llvm.parse_assembly(ir.stdout)
        module.verify()
        machine = llvm.Target.from_triple("bpfel").create_target_machine(opt=2, reloc="static")
        obj = out_dir / f"{name}.o"
        obj.write_bytes(machine.emit_object(module))
        return obj

    return _build
