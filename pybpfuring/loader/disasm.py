"""`pybpfuring disasm`: each program's instructions, interleaved with the Python source line (from BTF
line_info) that produced them, as `llvm-objdump -S` does for C."""
from __future__ import annotations

from .object import BpfObject
from pybpfuring.abi.asm import disassemble_slots


def disassemble_object(source: str | bytes) -> str:
    """The listing of an object file (a path) or image (bytes); a malformed object raises
    `ElfObjectError` naming the file and what is wrong."""
    with BpfObject.open(source) as obj:
        return disassemble(obj)


def disassemble(obj: BpfObject) -> str:
    out: list[str] = []
    for name, prog in obj.programs.items():
        out.append(f"{prog.section}/{name}: {prog.insn_count} instructions")
        last: tuple[str, int] | None = None
        # Name what relocations point at: maps, global data, kfuncs.
        notes = {r.insn: f"map {r.map_name}" + (f"+{r.offset}" if r.offset else "")
                 for r in prog.linked.map_refs}
        notes.update({r.insn: f"kfunc {r.name}" if r.is_call else f"ksym {r.name}"
                      for r in prog.linked.extern_refs})
        for slot, text in disassemble_slots(prog.insns):
            if slot in notes:
                text = f"{text:28s} ; {notes[slot]}"
            src = prog.line_info.get(slot)
            if src is not None and (src.file, src.line) != last:
                last = (src.file, src.line)
                out.append(f"    ; {src.text}    @ {src.file.rsplit('/', 1)[-1]}:{src.line}")
            out.append(f"    {slot:5d}: {text}")
        out.append("")
    return "\n".join(out) + "\n"
