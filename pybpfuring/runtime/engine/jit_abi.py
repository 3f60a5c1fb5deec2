"""The JIT's native ABI: the run context shared by JIT'd code, Python and native helpers, the region
check routine and the entry wrappers (LLVM IR text; see docs/engine.md, "JIT").

The context is an array of `CTX_FIELDS` u64 (`ctx[CTX_*]`). A native helper is
`uint64_t fn(uint64_t *ctx, uint64_t r1, ..., uint64_t r5)`; it must check every pointer it is given
against the region table (`ctx[CTX_REGIONS]`: `ctx[CTX_NREGIONS]` entries of (start, end, writable),
sorted by start, non-overlapping) and reports a fault by setting `ctx[CTX_STATUS]`: `ST_MEMORY` with
`ctx[CTX_ADDR]`, `ctx[CTX_SIZE]`, `ctx[CTX_MODE]`, or `ST_HELPER` with the errno in `ctx[CTX_AUX]`.
"""
from __future__ import annotations

from pybpfuring.abi import isa

# --- the context: i64 fields shared by native code, Python and native helpers -----------------
CTX_STATUS, CTX_PC, CTX_ADDR, CTX_SIZE, CTX_MODE, CTX_BUDGET, CTX_DEPTH, CTX_STACK_BASE = range(8)
CTX_REGIONS, CTX_NREGIONS, CTX_PYHELPER, CTX_CONSTS, CTX_HOT_LO, CTX_HOT_SPAN, CTX_AUX = range(8, 15)
# Fields of a native host (the native event loop), never read by JIT'd code: CTX_HINT, the region
# table entry the host's last pointer check found (tried first; any value is safe), and CTX_HOST,
# the host's own state during its run (0 otherwise: its helpers then refuse).
CTX_HINT, CTX_HOST = 15, 16
CTX_FIELDS = 17

# ctx[CTX_STATUS] values.
ST_OK, ST_MEMORY, ST_BUDGET, ST_CALL_DEPTH, ST_INVALID, ST_PYEXC, ST_HELPER = range(7)
# ctx[CTX_MODE] of a memory fault: what the access was.
MODE_READ, MODE_WRITE, MODE_RMW = 0, 1, 2
# ctx[CTX_AUX] of an invalid fault: where its message is.
AUX_STATIC, AUX_LD_IMM64 = 0, 1

FRAME_STRIDE = isa.STACK_SIZE + 512  # stacks are 512 bytes apart (the Vm's layout), so overruns fault

PRELUDE = f"""
declare void @llvm.memset.p0.i64(ptr, i8, i64, i1)
declare i16 @llvm.bswap.i16(i16)
declare i32 @llvm.bswap.i32(i32)
declare i64 @llvm.bswap.i64(i64)

; Is [addr, addr+size) inside one region (a writable one if mode != 0)? On success the region goes to
; ctx's hot fields for the caller's cache; on failure the fault is recorded in ctx. `%hint` is the
; calling access's slot in the consts table: the index of the entry it found last time, tried before
; the binary search (an access mostly goes to the same region every run). Any value there is safe:
; regions never overlap, so an entry that holds the range (addr before its end) is the search's answer.
define internal i1 @bpf_check(ptr %ctx, i64 %addr, i64 %size, i64 %mode, i64 %pc, ptr %hint) noinline #0 {{
entry:
  %tp = getelementptr i64, ptr %ctx, i64 {CTX_REGIONS}
  %tab = load ptr, ptr %tp
  %np = getelementptr i64, ptr %ctx, i64 {CTX_NREGIONS}
  %n = load i64, ptr %np
  %wants = icmp ne i64 %mode, 0
  %h = load i64, ptr %hint
  %hinted = icmp ult i64 %h, %n
  br i1 %hinted, label %try, label %loop
try:
  %t3 = mul i64 %h, 3
  %tsp = getelementptr i64, ptr %tab, i64 %t3
  %tstart = load i64, ptr %tsp
  %tep = getelementptr i64, ptr %tsp, i64 1
  %tend = load i64, ptr %tep
  %twp = getelementptr i64, ptr %tsp, i64 2
  %tw = load i64, ptr %twp
  %tspan = sub i64 %tend, %tstart
  %toff = sub i64 %addr, %tstart
  %tin = icmp ult i64 %toff, %tspan
  %troom = sub i64 %tspan, %toff
  %tfits = icmp uge i64 %troom, %size
  %tro = icmp eq i64 %tw, 0
  %tdenied = and i1 %tro, %wants
  %tallowed = xor i1 %tdenied, true
  %tok1 = and i1 %tin, %tfits
  %tok = and i1 %tok1, %tallowed
  br i1 %tok, label %hit, label %loop
loop:
  %lo = phi i64 [0, %entry], [0, %try], [%lo2, %body]
  %hi = phi i64 [%n, %entry], [%n, %try], [%hi2, %body]
  %more = icmp ult i64 %lo, %hi
  br i1 %more, label %body, label %done
body:
  %sum = add i64 %lo, %hi
  %mid = lshr i64 %sum, 1
  %m3 = mul i64 %mid, 3
  %mp = getelementptr i64, ptr %tab, i64 %m3
  %ms = load i64, ptr %mp
  %le = icmp ule i64 %ms, %addr
  %mid1 = add i64 %mid, 1
  %lo2 = select i1 %le, i64 %mid1, i64 %lo
  %hi2 = select i1 %le, i64 %hi, i64 %mid
  br label %loop
done:
  %found = icmp ne i64 %lo, 0
  br i1 %found, label %have, label %fail
have:
  %idx = sub i64 %lo, 1
  %i3 = mul i64 %idx, 3
  %sp = getelementptr i64, ptr %tab, i64 %i3
  %start = load i64, ptr %sp
  %ep = getelementptr i64, ptr %sp, i64 1
  %end = load i64, ptr %ep
  %wp = getelementptr i64, ptr %sp, i64 2
  %w = load i64, ptr %wp
  %span = sub i64 %end, %start
  %off = sub i64 %addr, %start
  %in = icmp ule i64 %off, %span
  %room = sub i64 %span, %off
  %fits = icmp uge i64 %room, %size
  %ok1 = and i1 %in, %fits
  %ro = icmp eq i64 %w, 0
  %denied = and i1 %ro, %wants
  %ok = xor i1 %denied, true
  %ok2 = and i1 %ok1, %ok
  br i1 %ok2, label %found_it, label %fail
found_it:
  store i64 %idx, ptr %hint
  br label %hit
hit:
  %hstart = phi i64 [%tstart, %try], [%start, %found_it]
  %hspan = phi i64 [%tspan, %try], [%span, %found_it]
  %hl = getelementptr i64, ptr %ctx, i64 {CTX_HOT_LO}
  store i64 %hstart, ptr %hl
  %hs = getelementptr i64, ptr %ctx, i64 {CTX_HOT_SPAN}
  store i64 %hspan, ptr %hs
  ret i1 1
fail:
  store i64 {ST_MEMORY}, ptr %ctx
  %f1 = getelementptr i64, ptr %ctx, i64 {CTX_PC}
  store i64 %pc, ptr %f1
  %f2 = getelementptr i64, ptr %ctx, i64 {CTX_ADDR}
  store i64 %addr, ptr %f2
  %f3 = getelementptr i64, ptr %ctx, i64 {CTX_SIZE}
  store i64 %size, ptr %f3
  %f4 = getelementptr i64, ptr %ctx, i64 {CTX_MODE}
  store i64 %mode, ptr %f4
  ret i1 0
}}

attributes #0 = {{ nounwind null_pointer_is_valid }}
"""


def entry_wrapper(entry: int) -> str:
    """`i64 @bpf_run<entry>(ctx, r1..r5, budget, depth, consts)`: what Python calls. Setting up the
    run here, from arguments, is cheaper than a dozen ctypes stores into ctx and the register file."""
    lines = [f"define i64 @bpf_run{entry}(ptr %ctx, i64 %a1, i64 %a2, i64 %a3, i64 %a4, i64 %a5, "
             "i64 %budget, i64 %depth, ptr %consts) #0 {", "entry:", "  %regs = alloca [11 x i64]"]
    values = ["0", "%a1", "%a2", "%a3", "%a4", "%a5", "0", "0", "0", "0"]
    for r, v in enumerate(values):
        lines += [f"  %p{r} = getelementptr i64, ptr %regs, i64 {r}", f"  store i64 {v}, ptr %p{r}"]
    for index, v in ((CTX_STATUS, "0"), (CTX_BUDGET, "%budget"), (CTX_DEPTH, "%depth")):
        lines += [f"  %c{index} = getelementptr i64, ptr %ctx, i64 {index}", f"  store i64 {v}, ptr %c{index}"]
    lines += [f"  %cc = getelementptr i64, ptr %ctx, i64 {CTX_CONSTS}", "  store ptr %consts, ptr %cc",
              f"  call void @bpf_fn{entry}(ptr %ctx, ptr %regs)", "  %r0 = load i64, ptr %p0",
              "  ret i64 %r0", "}"]
    return "\n".join(lines)
