"""Loops bounded by what the program knows (docs/compiler.md): the verifier must see a bound on
every loop, and the compiler takes it from `min(n, K)`, from an early exit `if n > K: return`, or
from a counter checked against a constant.

    python3 examples/bounded_loops.py     # compiles for target `generic`, loads it into this
                                          # machine's kernel and runs it with BPF_PROG_TEST_RUN
"""
from pybpfuring import ArrayMap, Ctx, OK, iouring_program, u32, u64

totals = ArrayMap(u64, 4)


@iouring_program
def sum_first(ctx: Ctx) -> int:
    """Sum 1..n for the n in ctx.wait_nr, refusing n above 12."""
    n = ctx.wait_nr
    if n > 12:
        return 1
    for i in range(n):                 # bounded by the check above: range(min(n, 12))
        totals[0] += i + 1
    for i in range(min(n, 4)):         # bounded by min() with a constant
        totals[1] += 1
    k: u32 = 0
    while True:                        # bounded by the counter check
        k += 5
        if k >= 20:
            break
    totals[2] = k
    return OK


def main() -> None:
    from pybpfuring.compiler.driver import compile_functions
    from pybpfuring.errors import BpfSyscallError
    from pybpfuring.runtime.bpf.object import BpfObject

    elf = compile_functions([sum_first], "generic")
    try:
        obj = BpfObject.open(elf)
        obj.load()
    except (BpfSyscallError, PermissionError) as exc:
        print(f"compiled ({len(elf)} bytes of ELF); not loaded here: {exc}")
        return
    with obj:
        for n in (4, 13):
            ctx = bytes(8) + n.to_bytes(4, "little") + bytes(4)
            retval, _ = obj.programs["sum_first"].test_run(ctx)
            print(f"n={n}: returned {retval}, totals={[obj.maps['totals'][i] for i in range(3)]}")


if __name__ == "__main__":
    main()
