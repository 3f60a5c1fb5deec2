"""Run one Python row of the nops table in this (fresh) process and print `ns=<ns> count=<n>`.

    python -m bench.nops.worker ROW COUNT        # complete COUNT NOPs, one after another
    python -m bench.nops.worker ROW --check      # print "ok" or "unavailable: <reason>"

Only the chain is timed: a BPF-driven row's one-time costs (compiling, loading, attaching, creating
the ring) come before its clock starts, and a one-NOP chain runs first to warm every cache.
"""
from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pybpfuring.uring import IoUring, prep_nop

REPO = Path(__file__).resolve().parents[2]


def user_space_chain(count: int) -> tuple[int, int]:
    with IoUring(4) as ring:
        begin = time.perf_counter_ns()
        for _ in range(count):
            prep_nop(ring.get_sqe())
            ring.submit_and_wait(1)
            if ring.wait_cqe().res < 0:
                raise OSError("a NOP failed")
        return count, time.perf_counter_ns() - begin


def emulated_chain(engine: str) -> Callable[[int], tuple[int, int]]:
    def chain(count: int) -> tuple[int, int]:
        from bench.nops.programs import run_chain
        if engine == "native":
            from pybpfuring.runtime.backends.native import unavailable_reason
            reason = unavailable_reason()
            if reason is not None:
                raise LookupError(f"the native event loop cannot be built here: {reason}")
        return run_chain(count, "emulated", engine)
    return chain


def kernel_program_chain(count: int) -> tuple[int, int]:
    """The @iouring_program chain in the kernel: a registered in-kernel Ring backend if there is
    one, else the generated loop_step scheduler (ModelRing)."""
    from bench.cp.worker import _kernel_backend
    from bench.nops.programs import run_chain, run_chain_in_kernel_loop
    from pybpfuring.runtime.backends.bpf_ops import kernel_has_loop_ops
    try:
        return run_chain(count, _kernel_backend())
    except LookupError:
        pass
    if not kernel_has_loop_ops():
        raise LookupError("this kernel has no io_uring_bpf_ops (Linux >= 7.1 with CONFIG_IO_URING_BPF_OPS)")
    return run_chain_in_kernel_loop(count)


def kernel_loop_step(count: int, depth: int = 8) -> tuple[int, int]:
    """examples/bpf_nops.py: liburing's bpf_nops shape (up to `depth` NOPs in flight) in loop_step;
    only the io_uring_enter that runs the loop is timed (load, verification and attach come before)."""
    path = REPO / "examples" / "bpf_nops.py"
    spec = importlib.util.spec_from_file_location("pbu_example_bpf_nops", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    from pybpfuring.runtime.backends.bpf_ops import LoopRing, kernel_has_loop_ops
    if not kernel_has_loop_ops():
        raise LookupError("this kernel has no io_uring_bpf_ops (Linux >= 7.1 with CONFIG_IO_URING_BPF_OPS)")
    with LoopRing(module.nops_step, bss={"reqs_to_run": count}, rodata={"depth": depth}) as loop:
        begin = time.perf_counter_ns()
        loop.run()
        elapsed = time.perf_counter_ns() - begin
        left = module.reqs_to_run.value
    if left != 0:
        raise OSError(f"{left} of {count} NOPs did not complete")
    return count, elapsed


# id -> a chain of COUNT NOPs returning (completed, ns of the chain alone)
ROWS: dict[str, Callable[[int], tuple[int, int]]] = {
    "py_nops": user_space_chain,
    "emulated_native_nops": emulated_chain("native"),
    "emulated_jit_nops": emulated_chain("jit"),
    "emulated_interp_nops": emulated_chain("interp"),
    "kernel_program_nops": kernel_program_chain,
    "kernel_loop_step_nops": kernel_loop_step,
    # The same program strictly one NOP at a time: what the kernel loop itself costs per step at
    # the depth the @iouring_program chain runs at (the floor under kernel_program_nops).
    "kernel_loop_step_nops_qd1": lambda count: kernel_loop_step(count, depth=1),
}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m bench.nops.worker ROW COUNT | ROW --check", file=sys.stderr)
        return 2
    chain = ROWS[argv[0]]
    if argv[1] == "--check":
        try:
            chain(1)
            print("ok")
        except Exception as exc:  # the reason the row cannot run, shown in the table
            print(f"unavailable: {type(exc).__name__}: {exc}".replace("\n", " "))
        return 0
    count = int(argv[1])
    chain(1)                              # compile and warm every cache first
    done, elapsed = chain(count)
    if done != count:
        raise OSError(f"{done} of {count} NOPs completed")
    print(f"ns={elapsed} count={count}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
