"""Turning a kernel verifier log into a `VerifierError` that names the source line.

With BTF line_info loaded, the kernel prints `; <source text> @ <file>:<line>` before the
instructions of each source line, so the last such line before the failing instruction is where
the program went wrong. If the log has none (old kernels, no line_info), our own line_info maps
the failing instruction index instead.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

from pybpfuring.errors import SourceLocation, VerifierError

_INSN_LINE = re.compile(r"^(\d+): \([0-9a-f]{2}\)")
_SOURCE_LINE = re.compile(r"^; (.*) @ (.+):(\d+)$")
# Lines that are bookkeeping, not the reason: statistics, register states, separators.
_NOISE = (
    re.compile(r"^processed \d+ insns"),
    re.compile(r"^verification time"),
    re.compile(r"^stack depth"),
    re.compile(r"^-- END PROG LOAD LOG --"),
    re.compile(r"^\d+: R\d"),              # state dump "12: R0=... R1=..."
    re.compile(r"^\d+:( frame\d+:)? R\d"),
    re.compile(r"^from \d+ to \d+:"),
    re.compile(r"^mark_precise:"),
    re.compile(r"^Func#\d+ "),
    re.compile(r"^Validating "),
    re.compile(r"^; "),
    _INSN_LINE,
)


@dataclass(frozen=True)
class SourceLine:
    """What line_info says about one instruction."""

    file: str
    line: int
    col: int          # 1-based as the compiler wrote it; 0 when unknown
    text: str

    def location(self) -> SourceLocation:
        return SourceLocation(self.file, self.line, max(self.col - 1, 0))


def _meaningful(line: str) -> bool:
    return bool(line) and not any(p.match(line) for p in _NOISE)


def summarize(log: str) -> str:
    """The verifier's reason for refusing: the first meaningful line after the last instruction
    it printed (later lines are often generic follow-ups such as "R0 min value is outside of the
    allowed memory range"); else the last meaningful line of the log."""
    lines = [line.strip() for line in log.splitlines()]
    last_insn = max((i for i, line in enumerate(lines) if _INSN_LINE.match(line)), default=None)
    if last_insn is not None:
        for line in lines[last_insn + 1:]:
            if _meaningful(line):
                return line
    for line in reversed(lines):
        if _meaningful(line):
            return line
    return "the kernel gave no reason (empty verifier log)"


_INSN_IN_REASON = re.compile(r"\binsn (\d+)")


def failing_insn(log: str) -> int | None:
    """Index of the last instruction the verifier printed (the one it stopped at); for checks made
    before it walks the program ("unreachable insn 2", "back-edge from insn 3 to 1"), the first
    instruction the reason names."""
    last = None
    for line in log.splitlines():
        m = _INSN_LINE.match(line)
        if m:
            last = int(m.group(1))
    if last is None:
        m = _INSN_IN_REASON.search(summarize(log))
        if m:
            last = int(m.group(1))
    return last


def source_from_log(log: str) -> tuple[str, int, str] | None:
    """(file, line, text) of the last `; text @ file:line` line before the failing instruction."""
    found = None
    for line in log.splitlines():
        m = _SOURCE_LINE.match(line)
        if m:
            found = (m.group(2), int(m.group(3)), m.group(1))
    return found


def line_for_insn(line_info: dict[int, SourceLine], insn: int) -> SourceLine | None:
    """The line_info entry in force at `insn` (the closest one at or before it)."""
    best = None
    for idx in line_info:
        if idx <= insn and (best is None or idx > best):
            best = idx
    return line_info[best] if best is not None else None


def verifier_error(program: str, log: str, errno: int,
                   line_info: dict[int, SourceLine]) -> VerifierError:
    insn = failing_insn(log)
    ours = line_for_insn(line_info, insn) if insn is not None else None
    from_log = source_from_log(log)
    loc = None
    if from_log is not None:
        file, line, _text = from_log
        col = 0
        if ours is not None and ours.line == line and os.path.basename(ours.file) == \
                os.path.basename(file):
            # The kernel prints only the base name; ours has the path the compiler recorded.
            file, col = ours.file, max(ours.col - 1, 0)
        loc = SourceLocation(file, line, col)
    elif ours is not None:
        loc = ours.location()
    return VerifierError(program, log, summarize(log), loc, insn, errno)
