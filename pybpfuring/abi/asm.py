"""Text assembler and disassembler for BPF, in the syntax of the bpf_conformance suite's `-- asm` sections.

Syntax (one instruction per line, `#` starts a comment, `name:` defines a label):
    mov32 %r0, 1            add %r1, %r2           sdiv32 %r0, -3        neg %r1
    movsx832 %r0, %r1       movsx3264 %r0, %r1     be16 %r0   le64 %r0   bswap32 %r0 (alias swap32)
    lddw %r0, 0x1122334455667788
    ldxw %r0, [%r1+4]       ldxsb %r0, [%r10-1]    stxdw [%r10-8], %r1   stw [%r1+0], 5
    jeq %r1, 2, +3          jsgt32 %r1, %r2, label ja +1   ja32 label (gotol)
    call 5 (helper)         call %r2 (helper id in a register)   call local label   call runtime 7 (kfunc)
    exit
    lock add [%r10-8], %r1  lock fetch xor32 [%r10-4], %r1  lock xchg [...], %r1  lock cmpxchg32 [...], %r1
As in the suite, the label `exit` names the first `exit` instruction unless a label of that name exists.

Extensions of ours, so that every byte string disassembles to text that assembles back to it:
    lddw %r1, map_fd(3)   map_value(3, 16)   btf_id(7)   func(+4) or func(label)   map_idx(0)
    lddw %r1, map_idx_value(0, 8)
    load_acquirew %r0, [%r1+0]   store_releasedw [%r1+0], %r2     (kernel >= 6.15 atomics)
    .insn 0x0000000000000095      one raw slot, the 64-bit little-endian value (the suite's `-- raw` form)
"""
from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from pybpfuring.abi import isa
from pybpfuring.abi.isa import Insn
from pybpfuring.errors import PyBpfUringError


class AsmError(PyBpfUringError, ValueError):
    """Assembly text that is not a valid program; names the 1-based line."""

    def __init__(self, line: int, message: str, text: str = ""):
        self.line = line
        self.message = message
        self.text = text
        shown = f"\n    {text.strip()}" if text.strip() else ""
        super().__init__(f"line {line}: {message}{shown}")


ALU_OPS = {
    "add": isa.BPF_ADD, "sub": isa.BPF_SUB, "mul": isa.BPF_MUL, "div": isa.BPF_DIV, "or": isa.BPF_OR,
    "and": isa.BPF_AND, "lsh": isa.BPF_LSH, "rsh": isa.BPF_RSH, "mod": isa.BPF_MOD, "xor": isa.BPF_XOR,
    "mov": isa.BPF_MOV, "arsh": isa.BPF_ARSH, "sdiv": isa.BPF_DIV, "smod": isa.BPF_MOD,
}
SIGNED_ALU = {"sdiv", "smod"}
JMP_OPS = {
    "jeq": isa.BPF_JEQ, "jgt": isa.BPF_JGT, "jge": isa.BPF_JGE, "jset": isa.BPF_JSET, "jne": isa.BPF_JNE,
    "jsgt": isa.BPF_JSGT, "jsge": isa.BPF_JSGE, "jlt": isa.BPF_JLT, "jle": isa.BPF_JLE,
    "jslt": isa.BPF_JSLT, "jsle": isa.BPF_JSLE,
}
SIZE_SUFFIX = {"b": isa.BPF_B, "h": isa.BPF_H, "w": isa.BPF_W, "dw": isa.BPF_DW}
ATOMIC_RMW = {"add": isa.BPF_ADD, "or": isa.BPF_OR, "and": isa.BPF_AND, "xor": isa.BPF_XOR}
PSEUDO_KINDS = {name: src for src, name in isa.LD_IMM64_SRC_NAMES.items() if src}

_REG = re.compile(r"^%r(\d+)$")
_MEM = re.compile(r"^\[\s*(%r\d+)\s*(?:([+-])\s*([0-9a-fA-Fx]+))?\s*\]$")
_LABEL = re.compile(r"^[A-Za-z_.][A-Za-z0-9_.]*$")
_PSEUDO = re.compile(r"^([a-z_]+)\(\s*([^,)]+?)\s*(?:,\s*([^)]+?)\s*)?\)$")
_MOVSX = re.compile(r"^movsx(8|16|32)(32|64)$")


@dataclass
class _Pending:
    """A jump/call whose target is a label, patched once all labels are known."""

    index: int
    label: str
    line: int
    text: str
    in_imm: bool


class _Line:
    """Operand parsing for one source line; every error names the line."""

    def __init__(self, number: int, text: str):
        self.number = number
        self.text = text

    def error(self, message: str) -> AsmError:
        return AsmError(self.number, message, self.text)

    def integer(self, token: str, lo: int, hi: int, what: str) -> int:
        body = token.strip()
        sign = 1
        if body[:1] in "+-":
            sign = -1 if body[0] == "-" else 1
            body = body[1:].strip()
        try:
            value = sign * (int(body, 16) if body.lower().startswith("0x") else int(body, 10))
        except ValueError:
            raise self.error(f"expected a number for {what}, got '{token}'") from None
        if not lo <= value <= hi:
            raise self.error(f"{what} {token} is out of range [{lo}, {hi}]")
        return value

    def imm32(self, token: str) -> int:
        return isa.to_s32(self.integer(token, -(1 << 31), (1 << 32) - 1, "immediate"))

    def off16(self, token: str) -> int:
        return isa.to_s16(self.integer(token, -(1 << 15), (1 << 16) - 1, "offset"))

    def reg(self, token: str) -> int:
        match = _REG.match(token.strip())
        if not match or int(match.group(1)) > 10:
            raise self.error(f"expected a register %r0..%r10, got '{token}'")
        return int(match.group(1))

    def is_reg(self, token: str) -> bool:
        return token.strip().startswith("%")

    def mem(self, token: str) -> tuple[int, int]:
        match = _MEM.match(token.strip())
        if not match:
            raise self.error(f"expected a memory operand like [%r1+8], got '{token}'")
        reg = self.reg(match.group(1))
        if match.group(2) is None:
            return reg, 0
        return reg, self.off16(match.group(2) + match.group(3))

    def count(self, operands: list[str], n: int, mnemonic: str) -> None:
        if len(operands) != n:
            raise self.error(f"'{mnemonic}' takes {n} operand(s), got {len(operands)}")


def _split_operands(rest: str) -> list[str]:
    """Operands are comma separated; memory operands never contain commas, pseudo forms may."""
    out, depth, cur = [], 0, ""
    for ch in rest:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def assemble(text: str) -> bytes:
    """Assemble `text` into program bytes (8-byte slots); raises `AsmError` naming the line."""
    return isa.encode(assemble_insns(text))


def assemble_insns(text: str) -> list[Insn]:
    """Assemble `text` into one `Insn` per slot."""
    insns: list[Insn] = []
    labels: dict[str, int] = {}
    pending: list[_Pending] = []
    first_exit: int | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        code = raw.split("#", 1)[0].strip()
        line = _Line(number, raw)
        while code:
            head, _, rest = code.partition(":")
            if _ and _LABEL.match(head.strip()) and not head.strip().startswith("."):
                name = head.strip()
                if name in labels:
                    raise line.error(f"label '{name}' is defined twice")
                labels[name] = len(insns)
                code = rest.strip()
                continue
            break
        if not code:
            continue
        mnemonic, _, rest = code.partition(" ")
        operands = _split_operands(rest)
        if mnemonic == "exit" and first_exit is None:
            first_exit = len(insns)
        insns.extend(_encode_line(line, mnemonic.lower(), operands, len(insns), pending))
    if first_exit is not None:
        labels.setdefault("exit", first_exit)
    for jump in pending:
        if jump.label not in labels:
            raise AsmError(jump.line, f"unknown label '{jump.label}'", jump.text)
        delta = labels[jump.label] - jump.index - 1
        old = insns[jump.index]
        if jump.in_imm:
            insns[jump.index] = Insn(old.opcode, old.dst, old.src, old.off, delta)
        else:
            if not -0x8000 <= delta <= 0x7FFF:
                raise AsmError(jump.line, f"label '{jump.label}' is too far for a 16-bit jump; use ja32",
                               jump.text)
            insns[jump.index] = Insn(old.opcode, old.dst, old.src, delta, old.imm)
    return insns


def _target(line: _Line, token: str, index: int, pending: list[_Pending], in_imm: bool) -> int:
    """A jump target: signed number of slots (`+3`, `-2`) or a label patched later."""
    token = token.strip()
    if _LABEL.match(token):
        pending.append(_Pending(index, token, line.number, line.text, in_imm))
        return 0
    return line.imm32(token) if in_imm else line.off16(token)


def _encode_line(line: _Line, m: str, ops: list[str], index: int,
                 pending: list[_Pending]) -> list[Insn]:
    if m == ".insn":
        line.count(ops, 1, m)
        value = line.integer(ops[0], 0, (1 << 64) - 1, "raw slot")
        return isa.decode(struct.pack("<Q", value))
    if m == "lddw":
        return _encode_lddw(line, ops, index, pending)
    if m == "exit":
        line.count(ops, 0, m)
        return [Insn(isa.OP_EXIT)]
    if m == "call":
        return [_encode_call(line, ops, index, pending)]
    if m in ("ja", "ja32"):
        line.count(ops, 1, m)
        if m == "ja":
            return [Insn(isa.OP_JA, off=_target(line, ops[0], index, pending, False))]
        return [Insn(isa.OP_JA32, imm=_target(line, ops[0], index, pending, True))]
    if m == "lock":
        return [_encode_atomic(line, ops)]
    encoded = (_encode_alu(line, m, ops) or _encode_mem(line, m, ops)
               or _encode_jmp(line, m, ops, index, pending))
    if encoded is None:
        raise line.error(f"unknown mnemonic '{m}'")
    return [encoded]


def _encode_lddw(line: _Line, ops: list[str], index: int, pending: list[_Pending]) -> list[Insn]:
    line.count(ops, 2, "lddw")
    dst = line.reg(ops[0])
    pseudo = _PSEUDO.match(ops[1].strip())
    if not pseudo:
        value = line.integer(ops[1], -(1 << 63), (1 << 64) - 1, "64-bit immediate")
        return list(isa.ld_imm64(dst, value))
    kind, first, second = pseudo.groups()
    if kind not in PSEUDO_KINDS:
        raise line.error(f"unknown ld_imm64 kind '{kind}'; one of {', '.join(PSEUDO_KINDS)}")
    if kind == "func":  # a callback address: a label or a slot offset, like `call local`
        low = _target(line, first, index, pending, True)
    else:
        low = line.imm32(first)
    high = line.imm32(second) if second is not None else 0
    return [Insn(isa.OP_LD_IMM64, dst, PSEUDO_KINDS[kind], 0, low), Insn(0, imm=high)]


def _encode_call(line: _Line, ops: list[str], index: int, pending: list[_Pending]) -> Insn:
    if len(ops) == 1 and " " in ops[0]:
        ops = ops[0].split(None, 1)
    if len(ops) == 1:
        ops = ["helper", ops[0]]
    line.count(ops, 2, "call")
    mode, target = ops[0].strip(), ops[1].strip()
    if mode == "helper":
        if line.is_reg(target):
            return Insn(isa.OP_CALLX, dst=line.reg(target))
        return Insn(isa.OP_CALL, imm=line.imm32(target))
    if mode == "local":
        return Insn(isa.OP_CALL, src=isa.BPF_PSEUDO_CALL,
                    imm=_target(line, target, index, pending, True))
    if mode == "runtime":
        return Insn(isa.OP_CALL, src=isa.BPF_PSEUDO_KFUNC_CALL, imm=line.imm32(target))
    raise line.error(f"call mode must be helper, local or runtime, got '{mode}'")


def _encode_atomic(line: _Line, ops: list[str]) -> Insn:
    if not ops:
        raise line.error("'lock' needs an operation, e.g. 'lock add [%r10-8], %r1'")
    words = ops[0].split()
    fetch = words[0] == "fetch"
    if fetch:
        words = words[1:]
    if len(words) != 2 or len(ops) != 2:
        raise line.error("expected 'lock [fetch] OP [%rD+off], %rS'")
    name, memop = words
    wide = not name.endswith("32")
    base = name[:-2] if name.endswith("32") else name
    if base in ATOMIC_RMW:
        imm = ATOMIC_RMW[base] | (isa.BPF_FETCH if fetch else 0)
    elif base in ("xchg", "cmpxchg") and not fetch:
        imm = isa.BPF_XCHG if base == "xchg" else isa.BPF_CMPXCHG
    else:
        raise line.error(f"unknown atomic operation '{' '.join(ops[0].split())}'")
    dst, off = line.mem(memop)
    size = isa.BPF_DW if wide else isa.BPF_W
    return Insn(isa.BPF_STX | isa.BPF_ATOMIC | size, dst, line.reg(ops[1]), off, imm)


def _encode_alu(line: _Line, m: str, ops: list[str]) -> Insn | None:
    for prefix, cls in (("swap", isa.BPF_ALU64), ("bswap", isa.BPF_ALU64), ("le", isa.BPF_ALU),
                        ("be", isa.BPF_ALU)):
        if m.startswith(prefix) and m[len(prefix):] in ("16", "32", "64"):
            line.count(ops, 1, m)
            source = isa.BPF_TO_BE if prefix == "be" else isa.BPF_TO_LE
            return Insn(cls | isa.BPF_END | source, line.reg(ops[0]), imm=int(m[len(prefix):]))
    movsx = _MOVSX.match(m)
    if movsx:
        line.count(ops, 2, m)
        cls = isa.BPF_ALU64 if movsx.group(2) == "64" else isa.BPF_ALU
        return Insn(cls | isa.BPF_MOV | isa.BPF_X, line.reg(ops[0]), line.reg(ops[1]),
                    int(movsx.group(1)))
    cls, base = (isa.BPF_ALU, m[:-2]) if m.endswith("32") else (isa.BPF_ALU64, m)
    if base == "neg":
        line.count(ops, 1, m)
        return Insn(cls | isa.BPF_NEG, line.reg(ops[0]))
    if base not in ALU_OPS:
        return None
    line.count(ops, 2, m)
    off = 1 if base in SIGNED_ALU else 0
    dst = line.reg(ops[0])
    if line.is_reg(ops[1]):
        return Insn(cls | ALU_OPS[base] | isa.BPF_X, dst, line.reg(ops[1]), off)
    return Insn(cls | ALU_OPS[base] | isa.BPF_K, dst, 0, off, line.imm32(ops[1]))


def _encode_mem(line: _Line, m: str, ops: list[str]) -> Insn | None:
    for prefix, mode in (("ldxs", isa.BPF_MEMSX), ("ldx", isa.BPF_MEM)):
        size = SIZE_SUFFIX.get(m[len(prefix):]) if m.startswith(prefix) else None
        if size is not None and not (mode == isa.BPF_MEMSX and size == isa.BPF_DW):
            line.count(ops, 2, m)
            src, off = line.mem(ops[1])
            return Insn(isa.BPF_LDX | mode | size, line.reg(ops[0]), src, off)
    for prefix in ("stx", "st"):
        size = SIZE_SUFFIX.get(m[len(prefix):]) if m.startswith(prefix) else None
        if size is not None:
            line.count(ops, 2, m)
            dst, off = line.mem(ops[0])
            if prefix == "stx":
                return Insn(isa.BPF_STX | isa.BPF_MEM | size, dst, line.reg(ops[1]), off)
            return Insn(isa.BPF_ST | isa.BPF_MEM | size, dst, 0, off, line.imm32(ops[1]))
    for prefix, imm in (("load_acquire", isa.BPF_LOAD_ACQ), ("store_release", isa.BPF_STORE_REL)):
        size = SIZE_SUFFIX.get(m[len(prefix):]) if m.startswith(prefix) else None
        if size is not None:
            line.count(ops, 2, m)
            if imm == isa.BPF_LOAD_ACQ:
                src, off = line.mem(ops[1])
                dst = line.reg(ops[0])
            else:
                dst, off = line.mem(ops[0])
                src = line.reg(ops[1])
            return Insn(isa.BPF_STX | isa.BPF_ATOMIC | size, dst, src, off, imm)
    return None


def _encode_jmp(line: _Line, m: str, ops: list[str], index: int,
                pending: list[_Pending]) -> Insn | None:
    cls, base = (isa.BPF_JMP32, m[:-2]) if m.endswith("32") else (isa.BPF_JMP, m)
    if base not in JMP_OPS:
        return None
    line.count(ops, 3, m)
    dst = line.reg(ops[0])
    off = _target(line, ops[2], index, pending, False)
    if line.is_reg(ops[1]):
        return Insn(cls | JMP_OPS[base] | isa.BPF_X, dst, line.reg(ops[1]), off)
    return Insn(cls | JMP_OPS[base] | isa.BPF_K, dst, 0, off, line.imm32(ops[1]))


# --- disassembler ------------------------------------------------------------------------------
_ALU_NAMES = {code: name for name, code in ALU_OPS.items() if name not in SIGNED_ALU}
_JMP_NAMES = {code: name for name, code in JMP_OPS.items()}
_SIZE_NAMES = {code: name for name, code in SIZE_SUFFIX.items()}
_ATOMIC_NAMES = {code: name for name, code in ATOMIC_RMW.items()}


def disassemble(data: bytes | list[Insn]) -> list[str]:
    """One line per instruction (an ld_imm64 is one line for two slots); `assemble` inverts it."""
    return [text for _, text in disassemble_slots(data)]


def disassemble_slots(data: bytes | list[Insn]) -> list[tuple[int, str]]:
    """(slot index, text) per instruction, for listings that show slot numbers."""
    insns = isa.decode(data) if isinstance(data, (bytes, bytearray, memoryview)) else list(data)
    out: list[tuple[int, str]] = []
    pc = 0
    while pc < len(insns):
        insn = insns[pc]
        if insn.opcode == isa.OP_LD_IMM64:
            text = _lddw_text(insn, insns[pc + 1]) if pc + 1 < len(insns) else None
            if text is not None:
                out.append((pc, text))
                pc += 2
                continue
        out.append((pc, _insn_text(insn) or _raw(insn)))
        pc += 1
    return out


def _raw(insn: Insn) -> str:
    return f".insn 0x{struct.unpack('<Q', insn.encode())[0]:016x}"


def _mem(reg: int, off: int) -> str:
    return f"[%r{reg}{off:+d}]"


def _lddw_text(first: Insn, second: Insn) -> str | None:
    if first.off or second.opcode or second.dst or second.src or second.off:
        return None
    if first.src == 0:
        return f"lddw %r{first.dst}, 0x{isa.ld_imm64_value(first, second):x}"
    kind = isa.LD_IMM64_SRC_NAMES.get(first.src)
    if kind is None:
        return None
    low = f"{first.imm:+d}" if first.src == isa.BPF_PSEUDO_FUNC else str(first.imm)
    extra = f", {second.imm}" if second.imm else ""
    return f"lddw %r{first.dst}, {kind}({low}{extra})"


def _insn_text(insn: Insn) -> str | None:
    """Canonical text of a one-slot instruction, or None when no mnemonic encodes it exactly."""
    if insn.dst > isa.REG_FP or insn.src > isa.REG_FP:
        return None  # only %r0..%r10 exist; a wider field is kept as a raw slot
    cls = insn.cls
    if cls in (isa.BPF_ALU, isa.BPF_ALU64):
        return _alu_text(insn)
    if cls in (isa.BPF_JMP, isa.BPF_JMP32):
        return _jmp_text(insn)
    if cls == isa.BPF_LDX:
        mode, size = insn.opcode & isa.MODE_MASK, insn.opcode & isa.SIZE_MASK
        if insn.imm or mode not in (isa.BPF_MEM, isa.BPF_MEMSX):
            return None
        if mode == isa.BPF_MEMSX and size == isa.BPF_DW:
            return None
        name = "ldxs" if mode == isa.BPF_MEMSX else "ldx"
        return f"{name}{_SIZE_NAMES[size]} %r{insn.dst}, {_mem(insn.src, insn.off)}"
    if cls == isa.BPF_ST:
        if insn.opcode & isa.MODE_MASK != isa.BPF_MEM or insn.src:
            return None
        return f"st{_SIZE_NAMES[insn.opcode & isa.SIZE_MASK]} {_mem(insn.dst, insn.off)}, {insn.imm}"
    if cls == isa.BPF_STX:
        return _stx_text(insn)
    return None


def _alu_text(insn: Insn) -> str | None:
    op, is_x = insn.opcode & isa.OP_MASK, insn.opcode & isa.BPF_X
    suffix = "" if insn.cls == isa.BPF_ALU64 else "32"
    if op == isa.BPF_END:
        if insn.src or insn.off or insn.imm not in (16, 32, 64):
            return None
        if insn.cls == isa.BPF_ALU64:
            return None if is_x else f"bswap{insn.imm} %r{insn.dst}"
        return f"{'be' if is_x else 'le'}{insn.imm} %r{insn.dst}"
    if op == isa.BPF_NEG:
        ok = not (is_x or insn.src or insn.off or insn.imm)
        return f"neg{suffix} %r{insn.dst}" if ok else None
    if op == isa.BPF_MOV and is_x and insn.off:
        widths = (8, 16, 32) if insn.cls == isa.BPF_ALU64 else (8, 16)
        if insn.off not in widths or insn.imm:
            return None
        return f"movsx{insn.off}{'64' if suffix == '' else '32'} %r{insn.dst}, %r{insn.src}"
    name = _ALU_NAMES.get(op)
    if name is None:
        return None
    if insn.off:
        if insn.off != 1 or op not in (isa.BPF_DIV, isa.BPF_MOD):
            return None
        name = "s" + name
    if is_x:
        return None if insn.imm else f"{name}{suffix} %r{insn.dst}, %r{insn.src}"
    return None if insn.src else f"{name}{suffix} %r{insn.dst}, {insn.imm}"


def _jmp_text(insn: Insn) -> str | None:
    op, is_x = insn.opcode & isa.OP_MASK, insn.opcode & isa.BPF_X
    suffix = "32" if insn.cls == isa.BPF_JMP32 else ""
    if insn.opcode == isa.OP_JA:
        return None if insn.dst or insn.src or insn.imm else f"ja {insn.off:+d}"
    if insn.opcode == isa.OP_JA32:
        return None if insn.dst or insn.src or insn.off else f"ja32 {insn.imm:+d}"
    if insn.opcode == isa.OP_EXIT:
        return None if insn.dst or insn.src or insn.off or insn.imm else "exit"
    if insn.opcode == isa.OP_CALLX:
        return None if insn.src or insn.off or insn.imm else f"call %r{insn.dst}"
    if insn.opcode == isa.OP_CALL:
        if insn.dst or insn.off:
            return None
        if insn.src == isa.BPF_HELPER_CALL:
            return f"call {insn.imm}"
        if insn.src == isa.BPF_PSEUDO_CALL:
            return f"call local {insn.imm:+d}"
        if insn.src == isa.BPF_PSEUDO_KFUNC_CALL:
            return f"call runtime {insn.imm}"
        return None
    name = _JMP_NAMES.get(op)
    if name is None:
        return None
    if is_x:
        return None if insn.imm else f"{name}{suffix} %r{insn.dst}, %r{insn.src}, {insn.off:+d}"
    return None if insn.src else f"{name}{suffix} %r{insn.dst}, {insn.imm}, {insn.off:+d}"


def _stx_text(insn: Insn) -> str | None:
    mode, size = insn.opcode & isa.MODE_MASK, insn.opcode & isa.SIZE_MASK
    if mode == isa.BPF_MEM:
        return None if insn.imm else f"stx{_SIZE_NAMES[size]} {_mem(insn.dst, insn.off)}, %r{insn.src}"
    if mode != isa.BPF_ATOMIC:
        return None
    if insn.imm == isa.BPF_LOAD_ACQ:
        return f"load_acquire{_SIZE_NAMES[size]} %r{insn.dst}, {_mem(insn.src, insn.off)}"
    if insn.imm == isa.BPF_STORE_REL:
        return f"store_release{_SIZE_NAMES[size]} {_mem(insn.dst, insn.off)}, %r{insn.src}"
    if size not in (isa.BPF_W, isa.BPF_DW):
        return None
    suffix = "" if size == isa.BPF_DW else "32"
    if insn.imm == isa.BPF_XCHG:
        op = "xchg"
    elif insn.imm == isa.BPF_CMPXCHG:
        op = "cmpxchg"
    elif insn.imm & ~isa.BPF_FETCH in _ATOMIC_NAMES:
        op = ("fetch " if insn.imm & isa.BPF_FETCH else "") + _ATOMIC_NAMES[insn.imm & ~isa.BPF_FETCH]
    else:
        return None
    return f"lock {op}{suffix} {_mem(insn.dst, insn.off)}, %r{insn.src}"


__all__ = ["AsmError", "assemble", "assemble_insns", "disassemble", "disassemble_slots"]
