"""The compiler driver: decorated functions or a module file -> typed IR -> LLVM IR -> ELF bytes.

A content-hash cache keeps the ELF of every (programs, target) compiled in this process and on disk
(`compile/` under `$PYBPFURING_CACHE`, default `~/.cache/pybpfuring`), so unchanged programs cost a
hash to reload. The key covers every source the object comes from and the compiler itself
(cache_key.py); the disk copy is in a checked private folder and re-hashed before use (pybpfuring/cache.py).
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import stat
import sys
import sysconfig
import tokenize
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from .. import cache as shared_cache
from ..errors import CompileError, SourceLocation
from ..lang.decorators import BpfFunction, install_compiler
from . import kernel_loop, typed_ir as ir
from .cache_key import compile_key
from .emit import emit_assembly, emit_object, optimise
from .pipeline import lower, type_functions
from .stack_check import check_stack_depth
from .targets import get_target


@dataclass
class CompileResult:
    typed: ir.TypedModule
    llvm_ir: str
    elf: bytes


def compile_full(functions: list[BpfFunction], target: str = "op_bpf",
                 linked: dict[str, bytes] | None = None) -> CompileResult:
    """`linked`: function name -> bitcode defining it, linked in place of the stand-in `functions`
    define under that name (the kernel backend's scheduler with an object's programs)."""
    typed = type_functions(functions, target)
    if not typed.programs:
        raise CompileError("nothing to compile: no @iouring_program or @loop_step functions given")
    text = lower(typed)
    mod = optimise(text, get_target(target), linked)
    elf = emit_object(mod, get_target(target))
    check_stack_depth(elf, typed.functions[0].loc if typed.functions else None)
    return CompileResult(typed, text, elf)


def cache_dir() -> Path:
    """The checked private folder of compiled objects (raises UnsafeCacheError if it is not ours)."""
    return shared_cache.private_dir("compile")


_memory_cache: dict[str, bytes] = {}


def compile_functions(functions: list[BpfFunction], target: str = "op_bpf", *, cache: bool = True,
                      linked: dict[str, bytes] | None = None) -> bytes:
    """ELF bytes of the given programs (and all they call) for `target` (`linked`: compile_full)."""
    return _compile_keyed(functions, target, compile_key(functions, target) if cache else "", linked)


def _compile_keyed(functions: list[BpfFunction], target: str, key: str,
                   linked: dict[str, bytes] | None = None) -> bytes:
    """compile_functions with its key computed (hashing every source: once per call)."""
    if not key:                   # not wanted, or an input cannot be read: never cached
        return compile_full(functions, target, linked).elf
    if linked:
        key = hashlib.sha256("\0".join([key, *(f"{n}:{hashlib.sha256(b).hexdigest()}"
                                               for n, b in sorted(linked.items()))]).encode()).hexdigest()
    return _cached(key, lambda: compile_full(functions, target, linked).elf)


def _cached(key: str, make: Callable[[], bytes]) -> bytes:
    """The object stored under `key` in this process or on disk, else `make()`, then stored."""
    if key in _memory_cache:
        return _memory_cache[key]
    directory = _usable_cache_dir()
    elf = shared_cache.load_verified(directory, key) if directory is not None else None
    if elf is None:
        elf = make()
        if directory is not None:
            try:
                shared_cache.store_verified(directory, key, elf)
            except OSError:
                pass  # a full disk: the cache is an optimisation only
    _memory_cache[key] = elf
    return elf


def _usable_cache_dir() -> Path | None:
    """The compile cache, or None if it cannot be created (read-only home); an unsafe one raises."""
    try:
        return cache_dir()
    except shared_cache.CacheUnwritable:
        return None


MAX_SOURCE_SIZE = 16 << 20   # a program file larger than this is not a program


install_compiler(compile_functions)


def load_module(path: str | os.PathLike[str], *, exit_is_error: bool = True) -> object:
    """Import a program file as a module (its top level declares maps, structs and programs).

    Importing runs the file's top level, as `python FILE` would (but with a module name other than
    `__main__`, so code under `if __name__ == "__main__":` does not run). An exception raised there
    is the user's error: a CompileError at the user's line, with the traceback trimmed to the
    user's frames. `sys.exit()` at the top level is reported the same way unless `exit_is_error`
    is False (`pybpfuring run`, where a script's exit status is its result).
    """
    p = _checked_source_file(path)
    name = f"pybpfuring_user_{hashlib.sha1(str(p).encode()).hexdigest()[:12]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, p)
    if spec is None or spec.loader is None:
        raise CompileError(f"{path} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    # As `python FILE` does: the file's folder comes first while its top level runs, so a program
    # can import the modules beside it (shared @bpf_functions, struct definitions).
    old_path = list(sys.path)
    sys.path.insert(0, str(p.parent))
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        del sys.modules[name]
        raise CompileError(f"syntax error: {e.msg}",
                           SourceLocation(str(p), e.lineno or 1, max((e.offset or 1) - 1, 0))) from None
    except RecursionError:
        # Python's own compiler gave up on the file (an expression nested thousands deep).
        del sys.modules[name]
        raise _too_deep(p) from None
    except CompileError:
        del sys.modules[name]
        raise
    except SystemExit as e:
        del sys.modules[name]
        if not exit_is_error:
            raise
        raise CompileError(f"importing {p.name} called sys.exit({e.code!r}) at its top level",
                           _deepest_frame_in(e, p),
                           "compiling imports the file: guard script code with "
                           "`if __name__ == \"__main__\":`\n" + _user_traceback(e)) from None
    except Exception as e:
        # The file's top level failed (a bad @struct field, a NameError...): point at its line.
        del sys.modules[name]
        raise CompileError(f"importing {p.name} failed: {type(e).__name__}: {e}",
                           _deepest_frame_in(e, p),
                           "compiling imports the file; the error is in its top-level code:\n"
                           + _user_traceback(e)) from None
    finally:
        sys.path[:] = old_path
    return module


def _checked_source_file(path: str | os.PathLike[str]) -> Path:
    """The resolved path of a program file: a regular `.py` file of sane size."""
    p = Path(path).resolve()
    try:
        st = p.stat()
    except OSError as e:
        raise CompileError(f"cannot read {path}: {e.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise CompileError(f"{path} is not a regular file")
    if p.suffix != ".py":
        raise CompileError(f"{path} is not a Python program file (expected a .py file with "
                           "@iouring_program or @loop_step functions)")
    if st.st_size > MAX_SOURCE_SIZE:
        raise CompileError(f"{path} is {st.st_size} bytes; a program file is at most "
                           f"{MAX_SOURCE_SIZE >> 20} MiB")
    return p


def _too_deep(p: Path) -> CompileError:
    """Locate the statement Python could not compile. Its AST is too deep to build or walk, so
    the tokens are counted instead (tokenize is iterative): the logical line with the most
    tokens and the deepest bracket nesting is the one."""
    best: tuple[int, int, int, int] = (0, 0, 1, 0)   # (depth, tokens, line, col)
    depth = max_depth = count = 0
    start: tuple[int, int] | None = None
    try:
        with open(p, "rb") as f:
            for tok in tokenize.tokenize(f.readline):
                if tok.type in (tokenize.NEWLINE, tokenize.ENDMARKER):
                    if start is not None and (max_depth, count) > best[:2]:
                        best = (max_depth, count, *start)
                    depth = max_depth = count = 0
                    start = None
                    continue
                if tok.type in (tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT,
                                tokenize.ENCODING):
                    continue
                start = start or tok.start
                count += 1
                if tok.type == tokenize.OP and tok.string in "([{":
                    depth += 1
                    max_depth = max(max_depth, depth)
                elif tok.type == tokenize.OP and tok.string in ")]}":
                    depth -= 1
    except (tokenize.TokenError, SyntaxError, OSError):
        pass
    _depth, tokens, line, col = best
    return CompileError(f"this statement is nested too deeply for Python to compile it "
                        f"({tokens} tokens)", SourceLocation(str(p), line, col),
                        "split the expression into several statements")


def _user_traceback(exc: BaseException) -> str:
    """The traceback with only the user's frames: not pybpfuring's, importlib's, the standard
    library's or installed packages' (a library failing on the user's arguments shows as the
    user's line that called it)."""
    skip = [str(Path(__file__).resolve().parents[1])]
    skip += [sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")]
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not f.filename.startswith(tuple(skip)) and not f.filename.startswith("<frozen ")]
    text = "".join(traceback.format_list(frames)).rstrip()
    return f"Traceback (your code):\n{text}\n{type(exc).__name__}: {exc}" if text else ""


def _deepest_frame_in(exc: BaseException, path: Path) -> SourceLocation | None:
    loc = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if Path(frame.filename).resolve() == path:
            loc = SourceLocation(str(path), frame.lineno or 1, (frame.colno or 0))
    return loc


def programs_in(module: object) -> list[BpfFunction]:
    """The programs a module defines, in source order."""
    progs = [v for v in vars(module).values() if isinstance(v, BpfFunction) and v.kind != "function"
             and v.py_func.__module__ == getattr(module, "__name__", None)]
    return sorted(progs, key=lambda f: f.py_func.__code__.co_firstlineno)


def compile_module(path: str | os.PathLike[str], target: str = "op_bpf") -> bytes:
    """Compile every program defined in a file into one ELF object (compile_object)."""
    module = load_module(path)
    progs = programs_in(module)
    if not progs:
        raise CompileError(f"{path} defines no @iouring_program or @loop_step functions")
    return compile_object(progs, target)


def compile_object(functions: list[BpfFunction], target: str = "op_bpf") -> bytes:
    """The object file of these programs: compile_functions' ELF and, for target op_bpf, the
    programs' kernel-loop form (kernel_loop.py), so the object runs on every backend with no
    Python source at hand. Cached as compile_functions' ELF is."""
    key = compile_key(functions, target)
    if target != "op_bpf" or not any(f.kind == "iouring" for f in functions):
        return _compile_keyed(functions, target, key)

    def make() -> bytes:
        return kernel_loop.attach(_compile_keyed(functions, target, key), functions)
    if not key:
        return make()
    # A warm cache serves the whole object: the ELF alone is not read again.
    return _cached(hashlib.sha256(f"{key}\0{kernel_loop.SECTION}".encode()).hexdigest(), make)


def emit_text(functions: list[BpfFunction], target: str, kind: str) -> str:
    """`ir` (unoptimised LLVM IR as generated) or `asm` (BPF assembly after optimisation)."""
    typed = type_functions(functions, target)
    text = lower(typed)
    if kind == "ir":
        return text
    return emit_assembly(optimise(text, get_target(target)), get_target(target))
