"""pybpfuring's benchmarks: the talk's 4 KiB copy table on every backend, chained NOPs, the compiler.

    python -m bench cp [--size 1G] [--runs 5] [--where host|guest|both]
    python -m bench nops [--count 100000] [--where ...]
    python -m bench compile
    python -m bench all
    python -m bench report docs/results/cp.json      # re-render the markdown and PNG from a JSON

Every row of a table is measured in the same invocation, its runs interleaved with the other rows',
so the ratios compare like with like. Results go to stdout (markdown) and to docs/results/ (JSON, PNG).
Where bcc runs (the guest), the in-kernel rows also get the kernel's own io_uring_enter and completion
counts per unit, from an untimed pass under `pybpfuring trace` (bench/kernel_trace.py, docs/trace.md).
See docs/performance.md for the method and the numbers.
"""
