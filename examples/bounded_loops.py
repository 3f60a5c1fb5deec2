"""Loops bounded by what the program knows (docs/compiler.md): the verifier must see a bound on
every loop, and the compiler takes it from `min(n, K)`, from an early exit `if n > K: return`, from
a counter checked against a constant, or from an array's type (`for x in v.items`, `len(v.items)`).
`pages_and_arrays` also copies and zeroes a 4 KiB map value (a loop of words, not a memset call).

    python3 examples/bounded_loops.py     # compiles for target `generic`, loads it into this
                                          # machine's kernel and runs it with BPF_PROG_TEST_RUN
"""
from pybpfuring import Array, ArrayMap, Ctx, OK, iouring_program, struct, u8, u32, u64

totals = ArrayMap(u64, 4)


@struct
class Page:
    used: u32
    sizes: Array[u32, 16]
    data: Array[u8, 4028]        # 4096 bytes in all


pages = ArrayMap(Page, 2)


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


@iouring_program
def pages_and_arrays(ctx: Ctx) -> int:
    """Fill page 0's sizes, sum them two ways, then copy page 0 to page 1 and zero page 0."""
    pg = pages[0]
    for i in range(len(pg.sizes)):     # bounded by the array's length, 16
        pg.sizes[i] = u32(i) * ctx.wait_nr
    total: u64 = 0
    for s in pg.sizes:                 # the same loop, by element
        total += s
    totals[3] = total
    pages[1] = pages[0]                # 4 KiB copied in place
    pages[0] = Page()                  # 4 KiB zeroed in place
    return OK


def main() -> None:
    from pybpfuring.compiler.driver import compile_functions
    from pybpfuring.errors import BpfSyscallError
    from pybpfuring.loader.object import BpfObject

    elf = compile_functions([sum_first, pages_and_arrays], "generic")
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
        retval, _ = obj.programs["pages_and_arrays"].test_run(bytes(8) + (3).to_bytes(4, "little") + bytes(4))
        copied = obj.maps["pages"][1][64:68]     # sizes[15] of the copy
        print(f"pages_and_arrays: returned {retval}, sum of sizes {obj.maps['totals'][3]} "
              f"(3 * (0 + 1 + ... + 15) = {3 * 120}), copy's sizes[15] = {int.from_bytes(copied, 'little')}, "
              f"page 0 zeroed: {obj.maps['pages'][0] == bytes(4096)}")


if __name__ == "__main__":
    main()
