"""Instruction -> Python source, one small function per slot (the interpreter's pre-decoding).

Each slot `pc` becomes `def _s<pc>(R): ...; return <next pc>` with its operands, masks and targets
folded in as constants, so running an instruction is one call through a list. `R` is the register file:
a list of 11 unsigned 64-bit ints. Every semantic rule of the ISA lives in the templates below, one
line per operation, written to be checked against RFC 9669 by reading.

Names the generated code uses (bound per Vm and program in `namespace`): `load`, `store` (checked
memory), `LOCK` (atomics), `sdiv`/`smod`, `bswap`, `fault`, `bad_jump`, `call_local`, `do_exit`,
`vm`, `callx`, helper functions `h_<id>`, kfuncs `k_<pc>`, ld_imm64 constants `L<pc>`.
"""
from __future__ import annotations

from pybpfuring.abi import isa
from pybpfuring.abi.isa import Insn
from pybpfuring.runtime.engine.faults import InsnFault

M64 = 0xFFFF_FFFF_FFFF_FFFF
M32 = 0xFFFF_FFFF
S64 = 1 << 63
S32 = 1 << 31
FELL_OFF = "_fell_off"


# --- runtime support for the generated code ----------------------------------------------------
def sdiv(a: int, b: int, sign: int, mask: int) -> int:
    """Signed division of two `mask`-wide values, truncating toward zero; x / 0 = 0."""
    a, b = (a ^ sign) - sign, (b ^ sign) - sign
    if b == 0:
        return 0
    q = abs(a) // abs(b)
    return (-q if (a < 0) != (b < 0) else q) & mask


def smod(a: int, b: int, sign: int, mask: int) -> int:
    """Signed remainder (sign of the dividend, as in C); x % 0 = x."""
    sa, sb = (a ^ sign) - sign, (b ^ sign) - sign
    if sb == 0:
        return a
    r = abs(sa) % abs(sb)
    return (-r if sa < 0 else r) & mask


def bswap(value: int, nbytes: int) -> int:
    """Reverse the low `nbytes` bytes of value (upper bits dropped)."""
    return int.from_bytes((value & ((1 << (8 * nbytes)) - 1)).to_bytes(nbytes, "little"), "big")


def fault(kind: str, message: str) -> int:
    raise InsnFault(kind, message)


def bad_jump(pc: int, target: int) -> int:
    raise InsnFault("invalid", f"jump from slot {pc} to slot {target}, which starts no instruction")


RUNTIME = {"M64": M64, "M32": M32, "S64": S64, "S32": S32, "sdiv": sdiv, "smod": smod,
           "bswap": bswap, "fault": fault, "bad_jump": bad_jump}


# --- templates ---------------------------------------------------------------------------------
# {d} destination register, {b} second operand (register read or constant, already masked to width).
ALU64 = {
    isa.BPF_ADD: "R[{d}] = (R[{d}] + {b}) & M64",
    isa.BPF_SUB: "R[{d}] = (R[{d}] - {b}) & M64",
    isa.BPF_MUL: "R[{d}] = (R[{d}] * {b}) & M64",
    isa.BPF_OR: "R[{d}] = R[{d}] | {b}",
    isa.BPF_AND: "R[{d}] = R[{d}] & {b}",
    isa.BPF_XOR: "R[{d}] = R[{d}] ^ {b}",
    isa.BPF_LSH: "R[{d}] = (R[{d}] << ({b} & 63)) & M64",
    isa.BPF_RSH: "R[{d}] = R[{d}] >> ({b} & 63)",
    isa.BPF_ARSH: "R[{d}] = (((R[{d}] ^ S64) - S64) >> ({b} & 63)) & M64",
    isa.BPF_MOV: "R[{d}] = {b}",
    isa.BPF_DIV: "b = {b}\n    R[{d}] = R[{d}] // b if b else 0",
    isa.BPF_MOD: "b = {b}\n    if b:\n        R[{d}] = R[{d}] % b",
}
ALU32 = {
    isa.BPF_ADD: "R[{d}] = (R[{d}] + {b}) & M32",
    isa.BPF_SUB: "R[{d}] = (R[{d}] - {b}) & M32",
    isa.BPF_MUL: "R[{d}] = ((R[{d}] & M32) * {b}) & M32",
    isa.BPF_OR: "R[{d}] = (R[{d}] | {b}) & M32",
    isa.BPF_AND: "R[{d}] = R[{d}] & {b}",
    isa.BPF_XOR: "R[{d}] = (R[{d}] ^ {b}) & M32",
    isa.BPF_LSH: "R[{d}] = (R[{d}] << ({b} & 31)) & M32",
    isa.BPF_RSH: "R[{d}] = (R[{d}] & M32) >> ({b} & 31)",
    isa.BPF_ARSH: "R[{d}] = ((((R[{d}] & M32) ^ S32) - S32) >> ({b} & 31)) & M32",
    isa.BPF_MOV: "R[{d}] = {b}",
    isa.BPF_DIV: "b = {b}\n    R[{d}] = (R[{d}] & M32) // b if b else 0",
    isa.BPF_MOD: "b = {b}\n    R[{d}] = (R[{d}] & M32) % b if b else R[{d}] & M32",
}
SIGNED_ALU = {  # off == 1 on DIV/MOD (cpu v4)
    (isa.BPF_ALU64, isa.BPF_DIV): "R[{d}] = sdiv(R[{d}], {b}, S64, M64)",
    (isa.BPF_ALU64, isa.BPF_MOD): "R[{d}] = smod(R[{d}], {b}, S64, M64)",
    (isa.BPF_ALU, isa.BPF_DIV): "R[{d}] = sdiv(R[{d}] & M32, {b}, S32, M32)",
    (isa.BPF_ALU, isa.BPF_MOD): "R[{d}] = smod(R[{d}] & M32, {b}, S32, M32)",
}
# Conditions of JMP (64-bit) and JMP32; {a} is the dst operand, {b} the second, both of that width.
CONDITIONS = {
    isa.BPF_JEQ: "{a} == {b}", isa.BPF_JNE: "{a} != {b}", isa.BPF_JSET: "{a} & {b}",
    isa.BPF_JGT: "{a} > {b}", isa.BPF_JGE: "{a} >= {b}", isa.BPF_JLT: "{a} < {b}",
    isa.BPF_JLE: "{a} <= {b}",
    # Signed order = unsigned order after flipping the sign bit of both sides.
    isa.BPF_JSGT: "{a} ^ {s} > {b} ^ {s}", isa.BPF_JSGE: "{a} ^ {s} >= {b} ^ {s}",
    isa.BPF_JSLT: "{a} ^ {s} < {b} ^ {s}", isa.BPF_JSLE: "{a} ^ {s} <= {b} ^ {s}",
}
ATOMIC_VALUE = {isa.BPF_ADD: "old + v", isa.BPF_OR: "old | v", isa.BPF_AND: "old & v",
                isa.BPF_XOR: "old ^ v"}


class _Invalid(Exception):
    """The slot cannot execute; its function faults with this message when reached."""


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise _Invalid(message)


class SlotCompiler:
    """Builds the source of every slot function of one program."""

    def __init__(self, insns: list[Insn]):
        self.insns = insns
        self.n = len(insns)
        self.starts = _instruction_starts(insns)
        self.helper_ids: set[int] = set()  # helpers the code names as h_<id>
        self.kfunc_slots: dict[int, Insn] = {}  # kfunc calls, named k_<pc>
        self.pseudo_slots: dict[int, tuple[Insn, Insn]] = {}  # ld_imm64 with src != 0, named L<pc>

    def source(self) -> str:
        parts = []
        for pc in range(self.n):
            try:
                body = self._body(pc)
            except _Invalid as exc:
                body = f"return fault('invalid', {str(exc)!r})"
            parts.append(f"def _s{pc}(R):\n    {body}\n")
        parts.append(f"def {FELL_OFF}(R):\n    return fault('invalid', "
                     f"'execution ran past the last slot ({self.n - 1}) without exit')\n")
        return "\n".join(parts)

    # --- helpers ---
    def _target(self, pc: int, delta: int) -> str:
        target = pc + delta + 1
        if 0 <= target < self.n and self.starts[target]:
            return str(target)
        return f"bad_jump({pc}, {target})"

    @staticmethod
    def _reg(r: int, writes: bool = False) -> int:
        _check(r <= 10, f"register r{r} does not exist")
        _check(not (writes and r == isa.REG_FP), "r10 (the frame pointer) is read-only")
        return r

    # --- dispatch by class ---
    def _body(self, pc: int) -> str:
        insn = self.insns[pc]
        if not self.starts[pc]:
            return f"return fault('invalid', 'slot {pc} is the second half of an ld_imm64')"
        cls = insn.cls
        if cls in (isa.BPF_ALU, isa.BPF_ALU64):
            return f"{self._alu(insn)}\n    return {pc + 1}"
        if cls in (isa.BPF_JMP, isa.BPF_JMP32):
            return self._jmp(pc, insn)
        if cls == isa.BPF_LD:
            return self._ld(pc, insn)
        if cls == isa.BPF_LDX:
            return f"{self._ldx(insn)}\n    return {pc + 1}"
        if cls == isa.BPF_ST:
            return f"{self._st(insn)}\n    return {pc + 1}"
        return f"{self._stx(insn)}\n    return {pc + 1}"

    def _alu(self, insn: Insn) -> str:
        op, is_x, wide = insn.opcode & isa.OP_MASK, insn.opcode & isa.BPF_X, insn.cls == isa.BPF_ALU64
        d = self._reg(insn.dst, writes=True)
        mask = M64 if wide else M32
        if op == isa.BPF_END:
            return self._end(insn, d, wide, is_x)
        if op == isa.BPF_NEG:
            _check(not (is_x or insn.src or insn.off or insn.imm), "neg has nonzero reserved fields")
            return f"R[{d}] = (-R[{d}]) & {'M64' if wide else 'M32'}"
        if is_x:
            s = self._reg(insn.src)
            _check(insn.imm == 0, "register-source ALU instruction with nonzero imm")
            b = f"R[{s}]" if wide else f"(R[{s}] & M32)"
        else:
            _check(insn.src == 0, "immediate ALU instruction with nonzero src")
            b = str(insn.imm & mask)  # imm is sign-extended to 64 bits, then used as unsigned
        if op == isa.BPF_MOV and insn.off:
            _check(is_x and insn.off in ((8, 16, 32) if wide else (8, 16)), f"bad movsx width {insn.off}")
            bits = insn.off
            sign, low = 1 << (bits - 1), (1 << bits) - 1
            return f"R[{d}] = (((R[{insn.src}] & {low}) ^ {sign}) - {sign}) & {'M64' if wide else 'M32'}"
        if insn.off:
            _check(insn.off == 1 and op in (isa.BPF_DIV, isa.BPF_MOD), f"bad offset {insn.off} on ALU op")
            return SIGNED_ALU[(insn.cls, op)].format(d=d, b=b)
        templates = ALU64 if wide else ALU32
        _check(op in templates, f"unknown ALU operation 0x{op:02x}")
        if not is_x and op == isa.BPF_DIV and insn.imm == 0:
            return f"R[{d}] = 0"
        if not is_x and op == isa.BPF_MOD and insn.imm == 0:
            return "pass" if wide else f"R[{d}] = R[{d}] & M32"
        return templates[op].format(d=d, b=b)

    def _end(self, insn: Insn, d: int, wide: bool, is_x: int) -> str:
        _check(not (insn.src or insn.off) and insn.imm in (16, 32, 64), "bad byte-swap width")
        nbytes = insn.imm // 8
        if wide:  # ALU64 END is the unconditional bswap (cpu v4)
            _check(not is_x, "ALU64 byte swap must use the K encoding")
            return f"R[{d}] = bswap(R[{d}], {nbytes})"
        if is_x:  # to big endian: swap on this little-endian host
            return f"R[{d}] = bswap(R[{d}], {nbytes})"
        return "pass" if nbytes == 8 else f"R[{d}] = R[{d}] & {(1 << insn.imm) - 1}"

    def _jmp(self, pc: int, insn: Insn) -> str:
        op, is_x, wide = insn.opcode & isa.OP_MASK, insn.opcode & isa.BPF_X, insn.cls == isa.BPF_JMP
        nxt = pc + 1
        if op == isa.BPF_JA:
            _check(not (is_x or insn.dst or insn.src), "ja has nonzero reserved fields")
            if wide:
                _check(insn.imm == 0, "ja has nonzero imm; gotol is ja32")
                return f"return {self._target(pc, insn.off)}"
            _check(insn.off == 0, "ja32 (gotol) has nonzero off")
            return f"return {self._target(pc, insn.imm)}"
        if op in (isa.BPF_CALL, isa.BPF_EXIT):
            _check(wide, "call/exit in the JMP32 class")
            return self._call(pc, insn) if op == isa.BPF_CALL else self._exit(insn)
        _check(op in CONDITIONS, f"unknown jump operation 0x{op:02x}")
        d = self._reg(insn.dst)
        if is_x:
            _check(insn.imm == 0, "register-source jump with nonzero imm")
            s = self._reg(insn.src)
            b = f"R[{s}]" if wide else f"(R[{s}] & M32)"
        else:
            _check(insn.src == 0, "immediate jump with nonzero src")
            b = str(insn.imm & (M64 if wide else M32))
        a = f"R[{d}]" if wide else f"(R[{d}] & M32)"
        cond = CONDITIONS[op].format(a=a, b=b, s="S64" if wide else "S32")
        return f"return {self._target(pc, insn.off)} if {cond} else {nxt}"

    def _call(self, pc: int, insn: Insn) -> str:
        if insn.opcode == isa.OP_CALLX:  # ubpf/bpf_conformance extension: helper id in a register
            _check(not (insn.src or insn.off or insn.imm), "callx has nonzero reserved fields")
            return f"R[0] = callx(R, {self._reg(insn.dst)})\n    return {pc + 1}"
        args = "vm, R[1], R[2], R[3], R[4], R[5]"
        if insn.src == isa.BPF_HELPER_CALL:
            _check(insn.dst == 0 and insn.off == 0, "helper call has nonzero reserved fields")
            self.helper_ids.add(insn.imm)
            return f"R[0] = h_{insn.imm & M32}({args}) & M64\n    return {pc + 1}"
        if insn.src == isa.BPF_PSEUDO_CALL:
            _check(insn.dst == 0 and insn.off == 0, "local call has nonzero reserved fields")
            return f"return call_local(R, {pc + 1}, {self._target(pc, insn.imm)})"
        if insn.src == isa.BPF_PSEUDO_KFUNC_CALL:
            self.kfunc_slots[pc] = insn
            return f"R[0] = k_{pc}({args}) & M64\n    return {pc + 1}"
        raise _Invalid(f"call with unknown src {insn.src}")

    @staticmethod
    def _exit(insn: Insn) -> str:
        _check(not (insn.dst or insn.src or insn.off or insn.imm), "exit has nonzero reserved fields")
        return "return do_exit(R)"

    def _ld(self, pc: int, insn: Insn) -> str:
        _check(insn.opcode == isa.OP_LD_IMM64, f"unsupported load opcode 0x{insn.opcode:02x} "
               "(legacy packet access is not part of this engine)")
        _check(pc + 1 < self.n, "ld_imm64 is missing its second slot")
        second = self.insns[pc + 1]
        _check(not (second.opcode or second.dst or second.src or second.off or insn.off),
               "ld_imm64 has nonzero reserved fields")
        d = self._reg(insn.dst, writes=True)
        if insn.src == 0:
            return f"R[{d}] = {isa.ld_imm64_value(insn, second)}\n    return {pc + 2}"
        _check(insn.src in isa.LD_IMM64_SRC_NAMES, f"ld_imm64 with unknown src {insn.src}")
        self.pseudo_slots[pc] = (insn, second)
        return f"R[{d}] = L{pc}()\n    return {pc + 2}"

    @staticmethod
    def _size(insn: Insn) -> int:
        return isa.SIZE_BYTES[insn.opcode & isa.SIZE_MASK]

    def _ldx(self, insn: Insn) -> str:
        mode, n = insn.opcode & isa.MODE_MASK, self._size(insn)
        _check(mode in (isa.BPF_MEM, isa.BPF_MEMSX) and insn.imm == 0, "bad ldx instruction")
        d, s = self._reg(insn.dst, writes=True), self._reg(insn.src)
        load = f"load((R[{s}] + {insn.off}) & M64, {n})"
        if mode == isa.BPF_MEM:
            return f"R[{d}] = {load}"
        _check(n != 8, "ldxsdw does not exist")
        sign = 1 << (8 * n - 1)
        return f"R[{d}] = (({load} ^ {sign}) - {sign}) & M64"

    def _st(self, insn: Insn) -> str:
        _check(insn.opcode & isa.MODE_MASK == isa.BPF_MEM and insn.src == 0, "bad st instruction")
        d, n = self._reg(insn.dst), self._size(insn)
        return f"store((R[{d}] + {insn.off}) & M64, {n}, {insn.imm & M64})"

    def _stx(self, insn: Insn) -> str:
        mode, n = insn.opcode & isa.MODE_MASK, self._size(insn)
        d, s = self._reg(insn.dst), self._reg(insn.src)
        addr = f"(R[{d}] + {insn.off}) & M64"
        if mode == isa.BPF_MEM:
            _check(insn.imm == 0, "stx with nonzero imm")
            return f"store({addr}, {n}, R[{s}])"
        _check(mode == isa.BPF_ATOMIC, f"bad stx mode 0x{mode:02x}")
        if insn.imm == isa.BPF_LOAD_ACQ:  # dst = *(src + off), with acquire order (GIL-ordered here)
            self._reg(insn.dst, writes=True)
            return f"R[{d}] = load((R[{s}] + {insn.off}) & M64, {n})"
        if insn.imm == isa.BPF_STORE_REL:
            return f"store({addr}, {n}, R[{s}])"
        _check(n in (4, 8), "atomic read-modify-write must be 32 or 64 bits wide")
        return self._atomic(insn, addr, n, s)

    def _atomic(self, insn: Insn, addr: str, n: int, s: int) -> str:
        mask = "M64" if n == 8 else "M32"
        lines = [f"a = {addr}", "with LOCK:", f"    old = load(a, {n})"]
        if insn.imm == isa.BPF_CMPXCHG:
            lines += [f"    if old == R[0] & {mask}:", f"        store(a, {n}, R[{s}])", "R[0] = old"]
        elif insn.imm == isa.BPF_XCHG:
            self._reg(s, writes=True)
            lines += [f"    store(a, {n}, R[{s}])", f"R[{s}] = old"]
        else:
            op = insn.imm & ~isa.BPF_FETCH
            _check(op in ATOMIC_VALUE, f"unknown atomic operation 0x{insn.imm:x}")
            lines += [f"    v = R[{s}] & {mask}", f"    store(a, {n}, {ATOMIC_VALUE[op]})"]
            if insn.imm & isa.BPF_FETCH:
                self._reg(s, writes=True)
                lines.append(f"R[{s}] = old")
        return "\n    ".join(lines)


def _instruction_starts(insns: list[Insn]) -> list[bool]:
    starts = [False] * len(insns)
    pc = 0
    while pc < len(insns):
        starts[pc] = True
        pc += 2 if insns[pc].opcode == isa.OP_LD_IMM64 else 1
    return starts
