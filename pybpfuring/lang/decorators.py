"""The decorators that mark Python functions as BPF code.

`@iouring_program` marks a program started by an IORING_OP_BPF request; `@bpf_function` a function
programs call; `@loop_step` a raw Linux 7.1 `io_uring_bpf_ops.loop_step` program. The decorated object
keeps the Python function (its source is what the compiler reads) and compiles on demand.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Literal

ProgramKind = Literal["iouring", "function", "loop_step"]

# The compiler sits above the language (it imports lang, never the reverse); it installs its entry
# point here when it is imported, which `import pybpfuring` does, so `fn.compile()` works without
# the language importing upward.
_compile_functions: Callable[..., bytes] | None = None


def install_compiler(compile_functions: Callable[..., bytes]) -> None:
    """Called once by pybpfuring.compiler.driver at import."""
    global _compile_functions
    _compile_functions = compile_functions


class BpfFunction:
    """A decorated function. `kind` says what it is; `.compile()` gives ELF bytes for a target."""

    def __init__(self, py_func: Callable[..., Any], kind: ProgramKind, *, inline: bool = True,
                 name: str | None = None, verified_alone: bool = False, program_body: bool = False):
        if not inspect.isfunction(py_func):
            raise TypeError(f"@{kind} decorates a plain function, not {py_func!r}")
        self.py_func = py_func
        self.kind: ProgramKind = kind
        # A global (non-static) BPF function: the verifier checks it once, on its own, against its
        # argument types, instead of once per call path through its callers.
        self.verified_alone = verified_alone
        # An @iouring_program's body compiled as a function (the kernel backend's scheduler calls
        # it): it keeps a program's language (ctx, yield, complete, request_state).
        self.program_body = program_body
        self.inline = inline and not verified_alone
        self.name = name or py_func.__name__
        self.__name__ = py_func.__name__
        self.__doc__ = py_func.__doc__
        self.__module__ = py_func.__module__
        self.__wrapped__ = py_func

    @property
    def globals(self) -> dict[str, Any]:
        """The module globals of the Python function: where the compiler resolves the names it uses."""
        return self.py_func.__globals__

    def compile(self, target: str = "op_bpf") -> bytes:
        """Compile this program (and every function it calls) to a BPF ELF object for `target`."""
        if _compile_functions is None:  # only if pybpfuring.lang was loaded without its package
            raise RuntimeError("the compiler is not loaded: import pybpfuring first")
        return _compile_functions([self], target=target)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"{self.name} is BPF code: compile it, or register it with a Ring and "
                           "start it with an IORING_OP_BPF request; it cannot be called from Python")

    def __repr__(self) -> str:
        return f"<{self.kind} {self.name} from {self.py_func.__module__}>"


def iouring_program(fn: Callable[..., Any]) -> BpfFunction:
    """`@iouring_program def prog(ctx: Ctx) -> int:` returning OK or WAIT."""
    return BpfFunction(fn, "iouring")


def bpf_function(fn: Callable[..., Any] | None = None, *, inline: bool = True,
                 verified_alone: bool = False) -> Any:
    """`@bpf_function` (inlined where called), `@bpf_function(inline=False)` (a BPF-to-BPF call to
    a static function, verified as part of each caller's paths) or
    `@bpf_function(verified_alone=True)` (a global function: verified once on its own, so its cost
    does not multiply with its callers' paths; it returns an integer, and a struct parameter that
    is NULL makes it return -EFAULT)."""
    if fn is None:
        return lambda f: BpfFunction(f, "function", inline=inline, verified_alone=verified_alone)
    return BpfFunction(fn, "function", inline=inline, verified_alone=verified_alone)


def loop_step(fn: Callable[..., Any]) -> BpfFunction:
    """`@loop_step def step(ctx: IoRingCtx, lp: LoopParams) -> int:` for Linux >= 7.1 io_uring_bpf_ops."""
    return BpfFunction(fn, "loop_step")
