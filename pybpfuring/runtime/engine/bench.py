"""Instructions per second of the reference interpreter on three loops (prints, asserts nothing).

    python3 -m pybpfuring.runtime.engine.bench
"""
from __future__ import annotations

import time

from pybpfuring.abi import isa
from pybpfuring.abi.asm import assemble
from pybpfuring.runtime.engine.interp import Program, Vm
from pybpfuring.runtime.engine.memory import Memory

LOOPS = {
    "alu": "mov %r0, 0\nmov %r1, 0\nloop:\nadd %r0, %r1\nxor32 %r2, 7\nlsh %r3, 2\nadd %r1, 1\n"
           "jlt %r1, 200000, loop\nexit",
    "memory": "mov %r1, 0\nloop:\nstxdw [%r10-8], %r1\nldxdw %r2, [%r10-8]\nldxw %r3, [%r10-8]\n"
              "add %r1, 1\njlt %r1, 200000, loop\nexit",
    "bpf-to-bpf call": "mov %r1, 0\nloop:\ncall local f\nadd %r1, 1\njlt %r1, 100000, loop\nexit\n"
                       "f:\nmov %r0, 1\nexit",
    "helper call": "mov %r6, 0\nloop:\nmov %r1, %r6\ncall 1\nadd %r6, 1\njlt %r6, 100000, loop\nexit",
}


def measure(name: str, text: str) -> tuple[int, float]:
    program = Program(isa.decode(assemble(text)), helpers={1: lambda vm, *args: args[0]}, name=name)
    vm = Vm(Memory(), budget=10_000_000)
    vm._prepare(program)  # generate and bind the slot functions outside the timing
    start = time.perf_counter()
    vm.run(program)
    return vm.last_insn_count, time.perf_counter() - start


def main() -> None:
    for name, text in LOOPS.items():
        count, seconds = measure(name, text)
        print(f"{name:>16}: {count:>9,} instructions in {seconds:.3f} s = {count / seconds / 1e6:.2f} M/s")


if __name__ == "__main__":
    main()
