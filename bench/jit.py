"""The JIT against the interpreter, measured in one run (prints, asserts nothing; numbers depend on the
machine and its load).

1. compile time per program, warm (LLVM initialised, a first program compiled), for the engine bench
   loops, the compiled 2021 reference programs and the conformance suite's programs; wall and thread
   CPU time (CPU time is what the compile costs; wall time adds whatever else the machine runs);
2. instructions per second on the engine bench loops, JIT and interpreter, and the ratio;
3. the cost of one call into JIT'd code from Python (a two-instruction program), vs the interpreter.

    python3 bench/jit.py [--opt 2] [--repeat 5]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from pybpfuring.compiler import driver, isa  # noqa: E402
from pybpfuring.abi.asm import assemble  # noqa: E402
from pybpfuring.loader.object import BpfObject  # noqa: E402
from pybpfuring.runtime.engine.bench import LOOPS  # noqa: E402
from pybpfuring.runtime.engine.interp import Program, Vm  # noqa: E402
from pybpfuring.runtime.engine.jit import JitCode, JitVm  # noqa: E402
from pybpfuring.runtime.engine.memory import Memory  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT.parent / "shared" / "conformance"


# Loops LLVM cannot shorten: every access goes through the region check (r1 = a 64-byte region), and a
# xorshift chain where each step needs the previous one.
JIT_LOOPS = {
    "checked region": "mov %r6, %r1\nmov %r3, 0\nloop:\nmov %r2, %r3\nand %r2, 56\nadd %r2, %r6\n"
                      "ldxdw %r4, [%r2+0]\nadd %r4, %r3\nstxdw [%r2+0], %r4\nadd %r3, 1\n"
                      "jlt %r3, 200000, loop\nmov %r0, %r4\nexit",
    "xorshift chain": "mov %r0, 1\nmov %r3, 0\nloop:\nmov %r2, %r0\nlsh %r2, 13\nxor %r0, %r2\n"
                      "mov %r2, %r0\nrsh %r2, 7\nxor %r0, %r2\nadd %r3, 1\njlt %r3, 200000, loop\nexit",
}


def loop_programs(with_jit_loops: bool = False) -> dict[str, Program]:
    loops = {**LOOPS, **JIT_LOOPS} if with_jit_loops else LOOPS
    return {name: Program(isa.decode(assemble(text)), helpers={1: lambda vm, *args: args[0]}, name=name)
            for name, text in loops.items()}


def reference_programs() -> dict[str, Program]:
    module = driver.load_module(ROOT / "examples" / "reference.py")
    obj = BpfObject.open(driver.compile_functions(driver.programs_in(module)))
    return {name: Program(isa.decode(p.insns), name=name) for name, p in obj.programs.items()}


def suite_programs() -> dict[str, Program]:
    out = {}
    for path in sorted(SUITE.glob("*.data")) if SUITE.is_dir() else []:
        text = path.read_text()
        if "-- asm" not in text:
            continue
        asm = text.split("-- asm", 1)[1].split("\n--", 1)[0]
        out[path.stem] = Program(isa.decode(assemble(asm)), name=path.stem)
    return out


def compile_times(programs: dict[str, Program], opt: int) -> tuple[list[float], list[float], list[int]]:
    wall, cpu, sizes = [], [], []
    for program in programs.values():
        w, c = time.perf_counter(), time.thread_time()
        JitCode(program, 0, opt)
        cpu.append(time.thread_time() - c)
        wall.append(time.perf_counter() - w)
        sizes.append(len(program.insns))
    return wall, cpu, sizes


def report_compile(opt: int) -> None:
    JitCode(Program(isa.decode(assemble("mov %r0, 0\nexit"))), 0, opt)  # warm: LLVM initialised
    print(f"1. compile time per program, warm (opt={opt}): median [max], ms")
    groups = {"engine bench loops": loop_programs(), "2021 reference programs": reference_programs(),
              "conformance suite programs": suite_programs()}
    for label, programs in groups.items():
        if not programs:
            print(f"   {label:>28}: (not found)")
            continue
        wall, cpu, sizes = compile_times(programs, opt)
        print(f"   {label:>28}: {len(programs):>3} programs of {min(sizes)}-{max(sizes)} slots: "
              f"CPU {statistics.median(cpu) * 1e3:6.2f} [{max(cpu) * 1e3:6.2f}]   "
              f"wall {statistics.median(wall) * 1e3:6.2f} [{max(wall) * 1e3:6.2f}]")


def best_rate(vm: Vm, program: Program, repeat: int, r1: int) -> tuple[int, float]:
    vm.run(program, r1)  # compile / prepare outside the timing
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        vm.run(program, r1)
        best = min(best, time.perf_counter() - start)
    return vm.last_insn_count, best


def report_speed(opt: int, repeat: int) -> None:
    print("2. instructions per second on the engine bench loops and two more (best of runs)")
    memory = Memory()
    region = memory.allocate(64, "bench region").start
    interp, jit = Vm(memory, budget=10_000_000), JitVm(memory, budget=10_000_000, opt=opt)
    for name, program in loop_programs(with_jit_loops=True).items():
        count, t_interp = best_rate(interp, program, max(1, repeat // 2), region)
        _, t_jit = best_rate(jit, program, repeat, region)
        print(f"   {name:>16}: {count:>9,} insns: interpreter {count / t_interp / 1e6:8.2f} M/s, "
              f"JIT {count / t_jit / 1e6:8.1f} M/s = {_ratio(t_interp / t_jit)}")


def _ratio(x: float) -> str:
    return f"{x:6.2f}x" if x < 10 else f"{x:6.0f}x"


def per_call(run: object, calls: int) -> float:
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(calls):
            run()  # type: ignore[operator]
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def report_call_overhead(opt: int) -> None:
    print("3. one call from Python into a 2-instruction program (mov r0, r1; exit), best of 5")
    program = Program(isa.decode(assemble("mov %r0, %r1\nexit")), name="tiny")
    memory = Memory()
    interp, jit = Vm(memory), JitVm(memory, opt=opt)
    bound = jit.jit(program)
    t_interp = per_call(lambda: interp.run(program, 1), 20_000)
    t_vm = per_call(lambda: jit.run(program, 1), 20_000)
    t_bound = per_call(lambda: bound.run(1), 20_000)
    print(f"   interpreter Vm.run: {t_interp * 1e6:6.2f} us   JitVm.run: {t_vm * 1e6:6.2f} us   "
          f"JitProgram.run: {t_bound * 1e6:6.2f} us   (interpreter / JIT = {t_interp / t_vm:.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--opt", type=int, default=1, choices=range(4), help="LLVM optimisation level")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    report_compile(args.opt)
    report_speed(args.opt, args.repeat)
    report_call_overhead(args.opt)


if __name__ == "__main__":
    main()
