"""The verifier log reading (summary line, failing instruction) against the kernel's own words:
small hand-assembled SYSCALL programs, each refused for a different reason."""
from __future__ import annotations

import struct

import pytest

from pybpfuring.loader import syscalls as sc
from pybpfuring.loader.sections import PROG_TYPE_SYSCALL
from pybpfuring.loader.verifier import SourceLine, verifier_error

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("bpf_available")]


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, dst | src << 4, off, imm)


EXIT = _insn(0x95)
R0_ZERO = _insn(0xB7)                  # r0 = 0
CASES = {
    "unknown helper": (_insn(0x85, imm=9999) + R0_ZERO + EXIT, "invalid func unknown#9999", 0),
    "uninitialised register": (_insn(0xBF, 0, 2) + EXIT, "R2 !read_ok", 0),
    "r0 unset at exit": (_insn(0xB7, 1) + EXIT, "R0 !read_ok", 1),
    "unreachable code": (R0_ZERO + EXIT + R0_ZERO + EXIT, "unreachable insn 2", 2),
    "no exit": (R0_ZERO, "last insn is not an exit or jmp", None),
}


@pytest.mark.parametrize("name", list(CASES))
def test_summary_and_failing_instruction(name):
    insns, summary, insn = CASES[name]
    req = sc.ProgLoadRequest(prog_type=PROG_TYPE_SYSCALL, insns=insns, name="refused",
                             prog_flags=sc.BPF_F_SLEEPABLE)
    res = sc.prog_load(req, log_level=1)
    assert res.fd < 0 and res.log
    lines = {i: SourceLine("/src/prog.py", 10 + i, 5, f"line {i}") for i in range(len(insns) // 8)}
    err = verifier_error("refused", res.log, res.errno, lines)
    assert err.summary == summary and err.insn == insn and err.errno == res.errno
    if insn is not None:   # no line_info in the kernel's log: ours gives the place
        assert (err.loc.file, err.loc.line, err.loc.col) == ("/src/prog.py", 10 + insn, 4)
    else:
        assert err.loc is None
