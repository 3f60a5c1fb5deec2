"""Errors a user of pybpfuring can see.

Every stage raises one of these, never a bare internal exception, for a user mistake. Each carries a
source location where one is known, so the message names the Python file, line and column and shows the
line with a caret.
"""
from __future__ import annotations

import linecache
from dataclasses import dataclass


@dataclass(frozen=True)
class SourceLocation:
    """A place in a Python source file (1-based line, 0-based column, as in `ast`)."""

    file: str
    line: int
    col: int = 0

    def source_line(self) -> str:
        """The text of the source line (without its newline), or '' if the file cannot be read."""
        return linecache.getline(self.file, self.line).rstrip("\n")

    def render(self) -> str:
        """`file:line:col` then the source line with a caret under the column."""
        text = self.source_line()
        head = f"{self.file}:{self.line}:{self.col + 1}"
        if not text:
            return head
        stripped = text.lstrip()
        indent = len(text) - len(stripped)
        caret = " " * max(self.col - indent, 0) + "^"
        return f"{head}\n    {stripped}\n    {caret}"


class PyBpfUringError(Exception):
    """Base of every error pybpfuring raises on purpose."""


class ArgumentError(PyBpfUringError, ValueError):
    """A public function was given a value outside the range it accepts; the message names the
    argument, the value and the range (never wrapped or clamped silently)."""


MAX_TIMEOUT = float(2**31 - 1)   # seconds (~68 years): every engine can hold such a deadline


def check_int_arg(value: int, low: int, high: int, what: str) -> int:
    """`value` if it is an int (not a bool) in low..high, else ArgumentError naming it."""
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ArgumentError(f"{what} must be an int in {low}..{high}, not {value!r}")
    return value


def check_timeout_arg(timeout: float | None) -> float | None:
    """None (wait for ever) or 0..MAX_TIMEOUT seconds; NaN and infinities are refused."""
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or not 0 <= timeout <= MAX_TIMEOUT):
        raise ArgumentError(f"timeout must be None or 0..{MAX_TIMEOUT:.0f} seconds, "
                            f"not {timeout!r}")
    return timeout


class BackendFallbackWarning(UserWarning):
    """`Ring(backend="auto")` could not use a backend this machine has (the kernel's) for the ring
    asked for and runs it on the next one; the message says why (as `ring.backend_reason` does)."""


class CompileError(PyBpfUringError):
    """The program is outside the language; `loc` says where, `hint` what to do instead."""

    def __init__(self, message: str, loc: SourceLocation | None = None, hint: str | None = None):
        self.message = message
        self.loc = loc
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        """The message as printed: `file:line:col: error: ...`, the source line with a caret, and the hint."""
        parts = []
        if self.loc is not None:
            head, *rest = self.loc.render().split("\n", 1)
            parts.append(f"{head}: error: {self.message}")
            parts.extend(rest)
        else:
            parts.append(f"error: {self.message}")
        if self.hint:
            parts.append(f"hint: {self.hint}")
        return "\n".join(parts)


class InternalCompilerError(CompileError):
    """A bug in pybpfuring's compiler, reported with the Python location being compiled."""

    def __init__(self, message: str, loc: SourceLocation | None = None):
        super().__init__(f"internal compiler error: {message}", loc,
                         "this is a pybpfuring bug; please report it with the program")


class VerifierError(PyBpfUringError):
    """The kernel verifier rejected a program.

    `log` is the kernel's whole log, `summary` its one-line reason, `loc` the Python line of the
    failing instruction (from BTF line_info, which the kernel prints), `insn` its index.
    """

    def __init__(self, program: str, log: str, summary: str, loc: SourceLocation | None = None,
                 insn: int | None = None, errno: int | None = None):
        self.program = program
        self.log = log
        self.summary = summary
        self.loc = loc
        self.insn = insn
        self.errno = errno
        super().__init__(self.render())

    def render(self) -> str:
        """The message as printed: the program, the instruction, the verifier's summary, the Python line."""
        where = f" at instruction {self.insn}" if self.insn is not None else ""
        lines = [f"verifier rejected program '{self.program}'{where}: {self.summary}"]
        if self.loc is not None:
            lines.append(self.loc.render())
        return "\n".join(lines)


class BpfSyscallError(PyBpfUringError, OSError):
    """A bpf() command failed for a reason other than the verifier (permissions, limits, bad objects)."""


class ProgramFault(PyBpfUringError):
    """A program did something the engine forbids at run time (bad memory access, too many instructions).

    The request that ran it completes with `-errno`; the ring and the process stay usable.
    """

    def __init__(self, program: str, message: str, pc: int, errno: int, loc: SourceLocation | None = None):
        self.program = program
        self.message = message
        self.pc = pc
        self.errno = errno
        self.loc = loc
        super().__init__(self.render())

    def render(self) -> str:
        """The message as printed: the program, the instruction, what went wrong, the Python line."""
        lines = [f"program '{self.program}' faulted at instruction {self.pc}: {self.message}"]
        if self.loc is not None:
            lines.append(self.loc.render())
        return "\n".join(lines)
