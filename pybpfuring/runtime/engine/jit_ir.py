"""BPF slots -> LLVM IR text for the host (the JIT's code generator; see docs/engine.md, "JIT").

Every BPF function becomes `void @bpf_fn<entry>(ptr %ctx, ptr %regs)`:
- `%regs` is an [11 x i64] in/out register file: the callee starts with the caller's r0..r9 (as in the
  interpreter, where the register list is shared) and hands back r0..r5 at `exit`; r6..r9 and r10
  stay the caller's because they live in the caller's own locals. Inside a function every register is
  an alloca, promoted to SSA values by SROA.
- `%ctx` is the run's context, an array of i64 fields (`CTX_*` below) shared with Python and with
  native helpers: fault status and pc, the remaining budget, the frame depth, the base of the 8 frame
  stacks, the region table, the Python helper trampoline and the resolved ld_imm64 values.

A fault stores its status, pc and details into ctx and returns; every caller checks the status after
a call and returns too, so the fault unwinds to Python, which raises the VmFault. No memory access
is emitted without a check against the region table (a sorted array of (start, end, writable)
searched by `@bpf_check`), except r10-relative accesses with a constant offset inside the frame,
proven safe here. A one-region cache per function (one for loads, one for stores) makes the common
check two compares.
"""
from __future__ import annotations

from pybpfuring.abi import isa
from pybpfuring.abi.isa import Insn
from pybpfuring.runtime.engine.jit_abi import (AUX_LD_IMM64, AUX_STATIC, CTX_AUX, CTX_BUDGET,
                                               CTX_CONSTS, CTX_DEPTH, CTX_HOT_LO, CTX_HOT_SPAN, CTX_PC,
                                               CTX_PYHELPER, CTX_STACK_BASE, CTX_STATUS, FRAME_STRIDE,
                                               MODE_READ, MODE_RMW, MODE_WRITE, PRELUDE, ST_BUDGET,
                                               ST_CALL_DEPTH, ST_INVALID, entry_wrapper)
from pybpfuring.runtime.engine.jit_plan import (STACK_SIZE, Function, Plan, bad_jump_message,
                                                is_r10_access_in_frame, valid_target)

_ALU_OPS = {isa.BPF_ADD: "add", isa.BPF_SUB: "sub", isa.BPF_MUL: "mul", isa.BPF_OR: "or",
            isa.BPF_AND: "and", isa.BPF_XOR: "xor", isa.BPF_LSH: "shl", isa.BPF_RSH: "lshr",
            isa.BPF_ARSH: "ashr"}
_CONDITIONS = {isa.BPF_JEQ: "eq", isa.BPF_JNE: "ne", isa.BPF_JGT: "ugt", isa.BPF_JGE: "uge",
               isa.BPF_JLT: "ult", isa.BPF_JLE: "ule", isa.BPF_JSGT: "sgt", isa.BPF_JSGE: "sge",
               isa.BPF_JSLT: "slt", isa.BPF_JSLE: "sle"}
_RMW_OPS = {isa.BPF_ADD: "add", isa.BPF_OR: "or", isa.BPF_AND: "and", isa.BPF_XOR: "xor"}

def _bits(n: int) -> int:
    return 8 * n


class _FunctionWriter:
    """Writes one native function; `messages` collects the invalid-fault texts by slot."""

    def __init__(self, plan: Plan, function: Function, native_helpers: dict[int, int],
                 messages: dict[int, str], check_sites: list[int]):
        self.plan = plan
        self.function = function
        self.native_helpers = native_helpers  # helper id -> address of a native implementation
        self.messages = messages
        self.check_sites = check_sites  # slot of each checked access, in the order of their hints
        self.out: list[str] = []
        self.counter = 0
        self.budget_in: list[tuple[int, str]] = []  # (leader slot, remaining budget value) -> bout

    # --- small emitters ---
    def tmp(self) -> str:
        self.counter += 1
        return f"%t{self.counter}"

    def label(self) -> str:
        self.counter += 1
        return f"l{self.counter}"

    def emit(self, line: str) -> None:
        self.out.append("  " + line)

    def block(self, name: str) -> None:
        self.out.append(f"{name}:")

    def value(self, expr: str) -> str:
        name = self.tmp()
        self.emit(f"{name} = {expr}")
        return name

    def get(self, r: int) -> str:
        return "%fp" if r == isa.REG_FP else self.value(f"load i64, ptr %r{r}")

    def put(self, r: int, v: str) -> None:
        self.emit(f"store i64 {v}, ptr %r{r}")

    def ctx_field(self, index: int) -> str:
        return self.value(f"getelementptr i64, ptr %ctx, i64 {index}")

    def ctx_store(self, index: int, v: str) -> None:
        self.emit(f"store i64 {v}, ptr {self.ctx_field(index)}")

    def ctx_load(self, index: int) -> str:
        return self.value(f"load i64, ptr {self.ctx_field(index)}")

    def fault(self, status: int, pc: int, aux: int | str = 0) -> None:
        self.ctx_store(CTX_STATUS, str(status))
        self.ctx_store(CTX_PC, str(pc))
        self.ctx_store(CTX_AUX, str(aux))
        self.emit("br label %unwind")

    def invalid(self, pc: int, message: str) -> None:
        self.messages[pc] = message
        self.fault(ST_INVALID, pc, AUX_STATIC)

    # --- the function ---
    def write(self) -> str:
        entry = self.function.entry
        head = [f"define void @bpf_fn{entry}(ptr noalias %ctx, ptr noalias %regs) #0 {{", "entry:"]
        self.out = head
        for r in range(10):
            self.emit(f"%r{r} = alloca i64")
        for name in ("budget", "hlo", "hspan", "wlo", "wspan"):
            self.emit(f"%{name} = alloca i64")
        self.emit("%callregs = alloca [11 x i64]")
        for r in range(10):
            p = self.value(f"getelementptr i64, ptr %regs, i64 {r}")
            self.put(r, self.value(f"load i64, ptr {p}"))
        depth = self.ctx_load(CTX_DEPTH)
        base = self.ctx_load(CTX_STACK_BASE)
        offset = self.value(f"mul i64 {depth}, {FRAME_STRIDE}")
        bottom = self.value(f"add i64 {base}, {offset}")
        self.emit(f"%fp = add i64 {bottom}, {STACK_SIZE}")
        self.emit(f"call void @llvm.memset.p0.i64(ptr {self.value(f'inttoptr i64 {bottom} to ptr')}, "
                  f"i8 0, i64 {STACK_SIZE}, i1 false)")  # each frame starts zeroed, as in the Vm
        self.emit(f"store i64 {self.ctx_load(CTX_BUDGET)}, ptr %budget")
        self.reset_hot()
        self.emit(f"br label %b{entry}")
        for leader, slots in self.function.blocks.items():
            self.write_block(leader, slots)
        self.block("unwind")
        self.ctx_store(CTX_BUDGET, self.value("load i64, ptr %budget"))
        self.emit("ret void")
        if self.budget_in:
            self.write_budget_out()
        self.out.append("}")
        return "\n".join(self.out)

    def reset_hot(self) -> None:
        """Forget the cached regions: a call may have changed the region table."""
        for name in ("hlo", "hspan", "wlo", "wspan"):
            self.emit(f"store i64 0, ptr %{name}")

    def write_budget_out(self) -> None:
        self.block("bout")
        pcs = ", ".join(f"[{leader}, %b{leader}]" for leader, _ in self.budget_in)
        left = ", ".join(f"[{v}, %b{leader}]" for leader, v in self.budget_in)
        pc = self.value(f"phi i64 {pcs}")
        aux = self.value(f"phi i64 {left}")
        self.ctx_store(CTX_STATUS, str(ST_BUDGET))
        self.ctx_store(CTX_PC, pc)
        self.ctx_store(CTX_AUX, aux)  # instructions the block could still run: the faulting one's index
        self.emit("store i64 0, ptr %budget")
        self.emit("br label %unwind")

    def write_block(self, leader: int, slots: list[int]) -> None:
        self.block(f"b{leader}")
        left = self.value("load i64, ptr %budget")
        short = self.value(f"icmp ult i64 {left}, {len(slots)}")
        go = self.label()
        self.budget_in.append((leader, left))
        self.emit(f"br i1 {short}, label %bout, label %{go}")
        self.block(go)
        self.emit(f"store i64 {self.value(f'sub i64 {left}, {len(slots)}')}, ptr %budget")
        for pc in slots:
            self.write_insn(pc)
        last = slots[-1]
        if not self.terminates(last):
            nxt = last + (2 if self.plan.insns[last].opcode == isa.OP_LD_IMM64 else 1)
            self.emit(f"br label %b{nxt}")

    def terminates(self, pc: int) -> bool:
        if pc in self.plan.invalid:
            return True
        insn = self.plan.insns[pc]
        if insn.opcode == isa.OP_EXIT:
            return True
        if isa.is_pseudo_call(insn) and not valid_target(self.plan, isa.jump_target(pc, insn)):
            return True
        return insn.cls in (isa.BPF_JMP, isa.BPF_JMP32) and isa.is_jump(insn)

    # --- instructions ---
    def write_insn(self, pc: int) -> None:
        if pc in self.plan.invalid:
            self.invalid(pc, self.plan.invalid[pc])
            return
        insn = self.plan.insns[pc]
        cls = insn.cls
        if cls in (isa.BPF_ALU, isa.BPF_ALU64):
            self.alu(insn)
        elif cls in (isa.BPF_JMP, isa.BPF_JMP32):
            self.jmp(pc, insn)
        elif cls == isa.BPF_LD:
            self.ld_imm64(pc, insn)
        elif cls == isa.BPF_LDX:
            self.ldx(pc, insn)
        elif cls == isa.BPF_ST:
            self.store(pc, insn, self.const(insn.imm, _bits(self.size(insn))))
        else:
            self.stx(pc, insn)

    @staticmethod
    def size(insn: Insn) -> int:
        return isa.SIZE_BYTES[insn.opcode & isa.SIZE_MASK]

    @staticmethod
    def const(value: int, bits: int) -> str:
        """`value` as a signed constant of `bits` bits (how LLVM prints and parses integers)."""
        value &= (1 << bits) - 1
        return str(value - (1 << bits) if value >> (bits - 1) else value)

    def operand(self, insn: Insn, bits: int) -> str:
        if insn.opcode & isa.BPF_X:
            v = self.get(insn.src)
            return v if bits == 64 else self.value(f"trunc i64 {v} to i32")
        return self.const(insn.imm, bits)  # imm is sign-extended to 64 bits, then truncated

    def narrow(self, v: str, bits: int) -> str:
        return v if bits == 64 else self.value(f"trunc i64 {v} to i{bits}")

    def widen(self, v: str, bits: int, signed: bool = False) -> str:
        return v if bits == 64 else self.value(f"{'sext' if signed else 'zext'} i{bits} {v} to i64")

    def alu(self, insn: Insn) -> None:
        op = insn.opcode & isa.OP_MASK
        bits = 64 if insn.cls == isa.BPF_ALU64 else 32
        d = insn.dst
        t = f"i{bits}"
        if op == isa.BPF_END:
            self.put(d, self.byte_swap(insn, bits))
            return
        if op == isa.BPF_MOV:
            if insn.off:  # movsx: sign-extend the low `off` bits of src, then truncate to the width
                low = self.value(f"trunc i64 {self.get(insn.src)} to i{insn.off}")
                self.put(d, self.widen(self.value(f"sext i{insn.off} {low} to {t}"), bits))
            else:
                self.put(d, self.widen(self.operand(insn, bits), bits))
            return
        a = self.narrow(self.get(d), bits)
        if op == isa.BPF_NEG:
            self.put(d, self.widen(self.value(f"sub {t} 0, {a}"), bits))
            return
        b = self.operand(insn, bits)
        if op in (isa.BPF_DIV, isa.BPF_MOD):
            result = self.signed_divmod(op, a, b, t) if insn.off else self.divmod(op, a, b, t)
        elif op in (isa.BPF_LSH, isa.BPF_RSH, isa.BPF_ARSH):
            amount = self.value(f"and {t} {b}, {bits - 1}")  # shifts are masked, never poison
            result = self.value(f"{_ALU_OPS[op]} {t} {a}, {amount}")
        else:
            result = self.value(f"{_ALU_OPS[op]} {t} {a}, {b}")
        self.put(d, self.widen(result, bits))

    def divmod(self, op: int, a: str, b: str, t: str) -> str:
        """x / 0 = 0 and x % 0 = x, without ever dividing by zero."""
        zero = self.value(f"icmp eq {t} {b}, 0")
        safe = self.value(f"select i1 {zero}, {t} 1, {t} {b}")
        if op == isa.BPF_DIV:
            return self.value(f"select i1 {zero}, {t} 0, {t} {self.value(f'udiv {t} {a}, {safe}')}")
        return self.value(f"select i1 {zero}, {t} {a}, {t} {self.value(f'urem {t} {a}, {safe}')}")

    def signed_divmod(self, op: int, a: str, b: str, t: str) -> str:
        """cpu v4 sdiv/smod: x / 0 = 0, x % 0 = x, and INT_MIN / -1 wraps (the host would trap)."""
        zero = self.value(f"icmp eq {t} {b}, 0")
        minus_one = self.value(f"icmp eq {t} {b}, -1")
        safe = self.value(f"select i1 {self.value(f'or i1 {zero}, {minus_one}')}, {t} 1, {t} {b}")
        if op == isa.BPF_DIV:
            by_minus_one = self.value(f"sub {t} 0, {a}")
            q = self.value(f"sdiv {t} {a}, {safe}")
            return self.value(f"select i1 {zero}, {t} 0, {t} "
                              f"{self.value(f'select i1 {minus_one}, {t} {by_minus_one}, {t} {q}')}")
        r = self.value(f"srem {t} {a}, {safe}")
        return self.value(f"select i1 {zero}, {t} {a}, {t} "
                          f"{self.value(f'select i1 {minus_one}, {t} 0, {t} {r}')}")

    def byte_swap(self, insn: Insn, bits: int) -> str:
        width = insn.imm
        v = self.get(insn.dst)
        swap = bits == 64 or insn.opcode & isa.BPF_X  # ALU64 END is bswap; ALU END | X is "to big endian"
        if not swap:  # to little endian on this little-endian host: truncate only
            return v if width == 64 else self.value(f"and i64 {v}, {(1 << width) - 1}")
        low = self.narrow(v, width)
        return self.widen(self.value(f"call i{width} @llvm.bswap.i{width}(i{width} {low})"), width)

    def jmp(self, pc: int, insn: Insn) -> None:
        op = insn.opcode & isa.OP_MASK
        if insn.opcode == isa.OP_EXIT:
            self.exit()
            return
        if op == isa.BPF_CALL:
            self.call(pc, insn)
            return
        target = isa.jump_target(pc, insn)
        if op == isa.BPF_JA:
            self.goto(pc, target)
            return
        bits = 64 if insn.cls == isa.BPF_JMP else 32
        a = self.narrow(self.get(insn.dst), bits)
        b = self.operand(insn, bits)
        if op == isa.BPF_JSET:
            cond = self.value(f"icmp ne i{bits} {self.value(f'and i{bits} {a}, {b}')}, 0")
        else:
            cond = self.value(f"icmp {_CONDITIONS[op]} i{bits} {a}, {b}")
        taken = self.label()
        self.emit(f"br i1 {cond}, label %{taken}, label %b{pc + 1}")
        self.block(taken)
        self.goto(pc, target)

    def goto(self, pc: int, target: int) -> None:
        if valid_target(self.plan, target):
            self.emit(f"br label %b{target}")
        else:
            self.invalid(pc, bad_jump_message(pc, target))

    def exit(self) -> None:
        for r in range(6):
            p = self.value(f"getelementptr i64, ptr %regs, i64 {r}")
            self.emit(f"store i64 {self.get(r)}, ptr {p}")
        self.ctx_store(CTX_BUDGET, self.value("load i64, ptr %budget"))
        self.emit("ret void")

    def after_call(self) -> None:
        """Take back the budget, unwind on a fault, and forget cached regions."""
        self.emit(f"store i64 {self.ctx_load(CTX_BUDGET)}, ptr %budget")
        failed = self.value(f"icmp ne i64 {self.ctx_load(CTX_STATUS)}, 0")
        ok = self.label()
        self.emit(f"br i1 {failed}, label %unwind, label %{ok}")
        self.block(ok)
        self.reset_hot()

    def call(self, pc: int, insn: Insn) -> None:
        if insn.src == isa.BPF_PSEUDO_CALL and insn.opcode == isa.OP_CALL:
            self.local_call(pc, isa.jump_target(pc, insn))
            return
        args = ", ".join(f"i64 {self.get(r)}" for r in range(1, 6))
        self.ctx_store(CTX_BUDGET, self.value("load i64, ptr %budget"))
        self.ctx_store(CTX_PC, str(pc))  # native helpers fault by setting the status; the pc is ours
        native = self.native_helpers.get(insn.imm) if (
            insn.opcode == isa.OP_CALL and insn.src == isa.BPF_HELPER_CALL) else None
        if native is not None:
            fn = self.value(f"inttoptr i64 {native} to ptr")
            r0 = self.value(f"call i64 {fn}(ptr %ctx, {args})")
        else:  # the Python trampoline finds the callable by the call's slot (callx: by the register)
            extra = self.get(insn.dst) if insn.opcode == isa.OP_CALLX else "0"
            fn = self.value(f"load ptr, ptr {self.ctx_field(CTX_PYHELPER)}")
            r0 = self.value(f"call i64 {fn}(ptr %ctx, i64 {pc}, {args}, i64 {extra})")
        self.after_call()
        self.put(0, r0)

    def local_call(self, pc: int, target: int) -> None:
        if not valid_target(self.plan, target):
            self.invalid(pc, bad_jump_message(pc, target))
            return
        depth = self.ctx_load(CTX_DEPTH)
        deep = self.value(f"icmp uge i64 {depth}, {isa.MAX_CALL_FRAMES - 1}")
        ok, too_deep = self.label(), self.label()
        self.emit(f"br i1 {deep}, label %{too_deep}, label %{ok}")
        self.block(too_deep)
        self.fault(ST_CALL_DEPTH, pc)
        self.block(ok)
        for r in range(10):
            p = self.value(f"getelementptr i64, ptr %callregs, i64 {r}")
            self.emit(f"store i64 {self.get(r)}, ptr {p}")
        self.ctx_store(CTX_DEPTH, self.value(f"add i64 {depth}, 1"))
        self.ctx_store(CTX_BUDGET, self.value("load i64, ptr %budget"))
        self.emit(f"call void @bpf_fn{target}(ptr %ctx, ptr %callregs)")
        self.ctx_store(CTX_DEPTH, depth)
        self.after_call()
        for r in range(6):  # the callee's r0..r5 are the caller's now; r6..r9 never left our locals
            p = self.value(f"getelementptr i64, ptr %callregs, i64 {r}")
            self.put(r, self.value(f"load i64, ptr {p}"))

    def ld_imm64(self, pc: int, insn: Insn) -> None:
        second = self.plan.insns[pc + 1]
        if insn.src == 0:
            self.put(insn.dst, self.const(isa.ld_imm64_value(insn, second), 64))
            return
        index = self.plan.pseudo_slots.index(pc)  # resolved per Vm into ctx's consts table
        table = self.value(f"load ptr, ptr {self.ctx_field(CTX_CONSTS)}")
        ok_p = self.value(f"getelementptr i64, ptr {table}, i64 {2 * index + 1}")
        resolved = self.value(f"icmp ne i64 {self.value(f'load i64, ptr {ok_p}')}, 0")
        good, bad = self.label(), self.label()
        self.emit(f"br i1 {resolved}, label %{good}, label %{bad}")
        self.block(bad)
        self.fault(ST_INVALID, pc, AUX_LD_IMM64)
        self.block(good)
        v_p = self.value(f"getelementptr i64, ptr {table}, i64 {2 * index}")
        self.put(insn.dst, self.value(f"load i64, ptr {v_p}"))

    # --- memory ---
    def address(self, pc: int, insn: Insn, base: int, size: int, mode: int) -> str:
        """The checked host address of [R[base] + off, +size): faults (and unwinds) if it is not."""
        addr = self.value(f"add i64 {self.get(base)}, {insn.off}")
        if mode != MODE_RMW and is_r10_access_in_frame(insn, base, size):
            return self.value(f"inttoptr i64 {addr} to ptr")
        lo_name, span_name = ("wlo", "wspan") if mode else ("hlo", "hspan")
        lo = self.value(f"load i64, ptr %{lo_name}")
        span = self.value(f"load i64, ptr %{span_name}")
        off = self.value(f"sub i64 {addr}, {lo}")
        inside = self.value(f"icmp ule i64 {off}, {span}")
        room = self.value(f"sub i64 {span}, {off}")
        fits = self.value(f"icmp uge i64 {room}, {size}")
        hit = self.value(f"and i1 {inside}, {fits}")
        ok, slow, fill = self.label(), self.label(), self.label()
        self.emit(f"br i1 {hit}, label %{ok}, label %{slow}")
        self.block(slow)
        # this access's region hint: a slot of the consts table after the ld_imm64 values
        hint_index = 2 * len(self.plan.pseudo_slots) + len(self.check_sites)
        self.check_sites.append(pc)
        table = self.value(f"load ptr, ptr {self.ctx_field(CTX_CONSTS)}")
        hint = self.value(f"getelementptr i64, ptr {table}, i64 {hint_index}")
        found = self.value(f"call i1 @bpf_check(ptr %ctx, i64 {addr}, i64 {size}, i64 {mode}, i64 {pc}, "
                           f"ptr {hint})")
        self.emit(f"br i1 {found}, label %{fill}, label %unwind")
        self.block(fill)
        self.emit(f"store i64 {self.ctx_load(CTX_HOT_LO)}, ptr %{lo_name}")
        self.emit(f"store i64 {self.ctx_load(CTX_HOT_SPAN)}, ptr %{span_name}")
        self.emit(f"br label %{ok}")
        self.block(ok)
        return self.value(f"inttoptr i64 {addr} to ptr")

    def ldx(self, pc: int, insn: Insn) -> None:
        size = self.size(insn)
        p = self.address(pc, insn, insn.src, size, MODE_READ)
        v = self.value(f"load i{_bits(size)}, ptr {p}, align 1")
        self.put(insn.dst, self.widen(v, _bits(size), signed=insn.opcode & isa.MODE_MASK == isa.BPF_MEMSX))

    def store(self, pc: int, insn: Insn, v: str) -> None:
        size = self.size(insn)
        p = self.address(pc, insn, insn.dst, size, MODE_WRITE)
        self.emit(f"store i{_bits(size)} {v}, ptr {p}, align 1")

    def stx(self, pc: int, insn: Insn) -> None:
        size, bits = self.size(insn), _bits(self.size(insn))
        if insn.opcode & isa.MODE_MASK == isa.BPF_MEM:
            self.store(pc, insn, self.narrow(self.get(insn.src), bits))
            return
        if insn.imm == isa.BPF_LOAD_ACQ:  # dst = *(src + off); plain load then an acquire fence
            p = self.address(pc, insn, insn.src, size, MODE_READ)
            v = self.value(f"load i{bits}, ptr {p}, align 1")
            self.emit("fence acquire")
            self.put(insn.dst, self.widen(v, bits))
            return
        if insn.imm == isa.BPF_STORE_REL:
            v = self.narrow(self.get(insn.src), bits)
            p = self.address(pc, insn, insn.dst, size, MODE_WRITE)
            self.emit("fence release")
            self.emit(f"store i{bits} {v}, ptr {p}, align 1")
            return
        self.atomic(pc, insn, size)

    def atomic(self, pc: int, insn: Insn, size: int) -> None:
        """Hardware atomics when aligned; an unaligned address (allowed by the interpreter) takes a plain
        read-modify-write, since the host may not do atomics across an alignment boundary."""
        bits, t = _bits(size), f"i{_bits(size)}"
        p = self.address(pc, insn, insn.dst, size, MODE_RMW)
        src = self.narrow(self.get(insn.src), bits)
        expected = self.narrow(self.get(0), bits)
        addr = self.value(f"ptrtoint ptr {p} to i64")
        aligned = self.value(f"icmp eq i64 {self.value(f'and i64 {addr}, {size - 1}')}, 0")
        fast, slow, join = self.label(), self.label(), self.label()
        self.emit(f"br i1 {aligned}, label %{fast}, label %{slow}")
        self.block(fast)
        if insn.imm == isa.BPF_CMPXCHG:
            pair = self.value(f"cmpxchg ptr {p}, {t} {expected}, {t} {src} seq_cst seq_cst, align {size}")
            old_fast = self.value(f"extractvalue {{ {t}, i1 }} {pair}, 0")
        else:
            op = "xchg" if insn.imm == isa.BPF_XCHG else _RMW_OPS[insn.imm & ~isa.BPF_FETCH]
            old_fast = self.value(f"atomicrmw {op} ptr {p}, {t} {src} seq_cst, align {size}")
        self.emit(f"br label %{join}")
        self.block(slow)
        old_slow = self.value(f"load {t}, ptr {p}, align 1")
        if insn.imm == isa.BPF_CMPXCHG:
            same = self.value(f"icmp eq {t} {old_slow}, {expected}")
            new = self.value(f"select i1 {same}, {t} {src}, {t} {old_slow}")
        elif insn.imm == isa.BPF_XCHG:
            new = src
        else:
            new = self.value(f"{_RMW_OPS[insn.imm & ~isa.BPF_FETCH]} {t} {old_slow}, {src}")
        self.emit(f"store {t} {new}, ptr {p}, align 1")
        self.emit(f"br label %{join}")
        self.block(join)
        old = self.widen(self.value(f"phi {t} [{old_fast}, %{fast}], [{old_slow}, %{slow}]"), bits)
        if insn.imm == isa.BPF_CMPXCHG:
            self.put(0, old)
        elif insn.imm & isa.BPF_FETCH:
            self.put(insn.src, old)


def module_text(plan: Plan, native_helpers: dict[int, int], triple: str, layout: str,
                messages: dict[int, str], check_sites: list[int]) -> str:
    """The whole module: the check routine, one function per BPF function of `plan`, and an entry
    wrapper for each (any of them may be a callback's entry). `check_sites` receives the slot of each
    access that calls the check routine: each has a region hint in the consts table, after the
    2 * len(plan.pseudo_slots) ld_imm64 fields."""
    parts = [f'target triple = "{triple}"', f'target datalayout = "{layout}"', PRELUDE]
    for function in plan.functions.values():
        parts.append(_FunctionWriter(plan, function, native_helpers, messages, check_sites).write())
        parts.append(entry_wrapper(function.entry))
    return "\n".join(parts) + "\n"
