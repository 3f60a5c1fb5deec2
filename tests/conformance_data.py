"""Reading the bpf_conformance suite (`<repo>/../shared/conformance/*.data`), for the tests that run it.

A `.data` file is made of `-- name` sections. The suite's plugins (ubpf's is the reference runner)
assemble `-- asm`, or use the `-- raw` slots when present; `-- mem` is hex bytes given to the program
as r1 = their address and r2 = their length; r0 at exit must equal the last line of `-- result`, or a
`-- error` section says the run must fail. Helper 5 is ubpf's test helper `unwind`.

The suite is read in place, never copied into the repository; tests skip with a reason when it is
absent (SUITE_FILES is then empty).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pybpfuring.abi.asm import assemble
from pybpfuring.runtime.engine.faults import StopProgram
from pybpfuring.runtime.engine.interp import Vm

SUITE = Path(__file__).resolve().parents[1].parent / "shared" / "conformance"
SUITE_FILES = sorted(SUITE.glob("*.data")) if SUITE.is_dir() else []


@dataclass
class Case:
    """One suite file: the program, its memory, and what it must end with."""
    name: str
    code: bytes
    mem: bytes
    result: int | None
    error: str | None


def sections(path: Path) -> dict[str, list[str]]:
    """The lines of each `-- name` section (a repeated name continues the same section)."""
    out: dict[str, list[str]] = {}
    current = None
    for line in path.read_text().splitlines():
        if line.startswith("--"):
            current = line[2:].strip()
            out.setdefault(current, [])
        elif current is not None:
            out[current].append(line)
    return out


def _number(text: str) -> int:
    text = text.strip()
    return int(text, 16) if text.lower().startswith("0x") else int(text)


def load_case(path: Path) -> Case:
    """The case of one suite file, read as the suite's plugins do (an unassemblable `-- asm` raises
    the assembler's AsmError: the caller decides whether that is the expected error)."""
    parts = sections(path)
    if "raw" in parts:
        code = b"".join(_number(tok).to_bytes(8, "little") for tok in " ".join(parts["raw"]).split())
    else:
        code = assemble("\n".join(parts["asm"]))
    mem = bytes(int(tok, 16) for tok in " ".join(parts.get("mem", [])).split())
    results = [line for line in parts.get("result", []) if line.strip()]
    errors = [line.strip() for line in parts.get("error", []) if line.strip()]
    return Case(path.stem, code, mem, _number(results[-1]) if results else None,
                errors[-1] if errors else None)


def unwind(vm: Vm, r1: int, r2: int, r3: int, r4: int, r5: int) -> int:
    """ubpf's test helper 5 (call_unwind_fail.data, callx.data): returns its argument; returning 0
    stops the program with r0 = 0."""
    if r1 == 0:
        raise StopProgram(0)
    return r1


SUITE_HELPERS = {5: unwind}
