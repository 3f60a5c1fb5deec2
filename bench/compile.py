"""Compiler benchmark: warm compile time per program, and BPF instruction counts next to clang's.

For the four 2021 reference programs (examples/reference.py) and the larger programs of
bench/compile_programs.py, prints the median warm compile time (the content-hash cache disabled, so
every run types, lowers, optimises and emits) and the number of BPF instructions of the program
against clang -O2 -target bpf -mcpu=v3 on the C twin in bench/c/, as a ratio (ours / clang's; the
goal is <= 1.1). Numbers are measured in this run; they depend on the machine.

    python3 bench/compile.py [--runs 15] [--asm NAME]
"""
from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from elftools.elf.elffile import ELFFile  # noqa: E402

from pybpfuring.compiler.driver import compile_functions, emit_text, load_module  # noqa: E402
from pybpfuring.lang.decorators import BpfFunction  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
C_DIR = ROOT / "bench" / "c"
CLANG_FLAGS = ["-O2", "-target", "bpf", "-mcpu=v3", "-c"]
INSN_SIZE = 8


@dataclass
class Case:
    name: str
    program: BpfFunction
    c_file: Path


def cases() -> list[Case]:
    ref = load_module(ROOT / "examples" / "reference.py")
    big = load_module(ROOT / "bench" / "compile_programs.py")
    out = [Case(n, getattr(ref, n), C_DIR / "reference.c") for n in ("test", "counting", "pingpong", "write_file")]
    out += [Case("loops", big.loops, C_DIR / "loops.c"), Case("flows", big.flows_prog, C_DIR / "flows.c"),
            Case("cp_qd1", big.cp_qd1, C_DIR / "cp_qd1.c")]
    return out


def insn_count(elf: bytes, program: str) -> int:
    """Instructions of `program` plus every function in `.text` (BPF-to-BPF callees), as loaded."""
    e = ELFFile(io.BytesIO(elf))
    total = 0
    for sym in e.get_section_by_name(".symtab").iter_symbols():
        if sym["st_info"]["type"] != "STT_FUNC":
            continue
        sec = e.get_section(sym["st_shndx"])
        if sym.name == program or sec.name == ".text":
            total += sym["st_size"] // INSN_SIZE
    return total


def compile_ms(program: BpfFunction, runs: int) -> tuple[float, bytes]:
    elf = compile_functions([program], "op_bpf", cache=False)  # warm: LLVM initialised, modules loaded
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        compile_functions([program], "op_bpf", cache=False)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times), elf


def clang_objects(files: set[Path], workdir: Path) -> dict[Path, bytes] | str:
    clang = shutil.which("clang")
    if clang is None:
        return "clang is not installed (apt-get install clang): no comparison"
    out: dict[Path, bytes] = {}
    for f in sorted(files):
        obj = workdir / (f.stem + ".o")
        proc = subprocess.run([clang, *CLANG_FLAGS, str(f), "-o", str(obj)], capture_output=True, text=True)
        if proc.returncode != 0:
            return f"clang failed on {f}:\n{proc.stderr}"
        out[f] = obj.read_bytes()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=15, help="timed compiles per program (median printed)")
    ap.add_argument("--asm", metavar="NAME", help="print our BPF assembly of one program and exit")
    args = ap.parse_args(argv)
    todo = cases()
    if args.asm:
        case = next((c for c in todo if c.name == args.asm), None)
        if case is None:
            ap.error(f"no program {args.asm!r}; known: {', '.join(c.name for c in todo)}")
        sys.stdout.write(emit_text([case.program], "op_bpf", "asm"))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        clang = clang_objects({c.c_file for c in todo}, Path(tmp))
    if isinstance(clang, str):
        print(clang)
    clang_ver = subprocess.run(["clang", "--version"], capture_output=True, text=True).stdout.split("\n")[0] \
        if not isinstance(clang, str) else "-"
    print(f"compile: median of {args.runs} warm runs, cache off; clang: {clang_ver} {' '.join(CLANG_FLAGS[:-1])}")
    print(f"{'program':12s} {'compile ms':>10s} {'insns':>6s} {'clang':>6s} {'ratio':>6s}")
    ratios = []
    for c in todo:
        ms, elf = compile_ms(c.program, args.runs)
        ours = insn_count(elf, c.program.name)
        if isinstance(clang, str):
            print(f"{c.name:12s} {ms:10.1f} {ours:6d}")
            continue
        theirs = insn_count(clang[c.c_file], c.program.name)
        ratios.append(ours / theirs)
        print(f"{c.name:12s} {ms:10.1f} {ours:6d} {theirs:6d} {ours / theirs:6.2f}")
    if ratios:
        print(f"{'geomean':12s} {'':10s} {'':6s} {'':6s} {statistics.geometric_mean(ratios):6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
