"""Exceptions of the engine.

`VmFault` is what a caller of `Vm.run` sees: a `ProgramFault` (user-facing) that also says which kind of
fault it was and, for bad memory accesses, the access. The others are raised *inside* a run (by
generated instruction code, the memory table or helpers) and turned into a `VmFault` carrying the pc
of the instruction that was executing.
"""
from __future__ import annotations

import errno as _errno

from pybpfuring.errors import ProgramFault, SourceLocation
from pybpfuring.runtime.engine.memory import MemoryFault

# Fault kinds (VmFault.kind) and the errno the request that ran the program completes with.
KIND_ERRNO = {
    "memory": _errno.EFAULT,  # access outside the region table, or a store to a read-only region
    "budget": _errno.ELOOP,  # more instructions than the run's budget
    "call_depth": _errno.E2BIG,  # more than 8 nested frames (the kernel's MAX_CALL_FRAMES)
    "invalid": _errno.EINVAL,  # bad opcode/register/jump target, unresolved ld_imm64
    "no_helper": _errno.ENOSYS,  # helper or kfunc that the program's tables do not have
    "helper": _errno.EFAULT,  # a helper refused its arguments (HelperFault chooses the errno)
    "livelock": _errno.EDEADLK,  # the ring's run budget: too many runs with no kernel completion
}


class VmFault(ProgramFault):
    """A run stopped on a fault at slot `pc`; the Vm stays usable."""

    def __init__(self, program: str, kind: str, message: str, pc: int, errno: int | None = None,
                 loc: SourceLocation | None = None, access: MemoryFault | None = None):
        self.kind = kind
        self.access = access
        super().__init__(program, message, pc, KIND_ERRNO[kind] if errno is None else errno, loc)


class HelperFault(Exception):
    """Raised by a helper to fault the program (e.g. a bad pointer argument)."""

    def __init__(self, message: str, errno: int = _errno.EFAULT):
        self.errno = errno
        super().__init__(message)


class StopProgram(Exception):
    """Raised by a helper to end the whole run at once, as if the program had returned `value`."""

    def __init__(self, value: int):
        self.value = value
        super().__init__(f"program stopped by a helper with value {value}")


class InsnFault(Exception):
    """Raised by generated instruction code; `kind` is a key of KIND_ERRNO (engine-internal)."""

    def __init__(self, kind: str, message: str):
        self.kind = kind
        super().__init__(message)


class ProgramExit(Exception):
    """The outermost frame of a run executed `exit` (engine-internal control flow)."""
