"""Wrong results from stale caches (docs/security.md "Compile cache").

The compile cache key covers every module the compiled code comes from (the program file, imported
@bpf_functions, maps, structs, constants) and the compiler itself (its sources, llvmlite and LLVM), so
an edit anywhere gives a new object, exactly the one a cold cache gives.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hostile import REPO, pybpfuring

PROGRAM = '''
from pybpfuring import Ctx, HashMap, OK, iouring_program, u32, u64
import shared
from shared import STEP, bump, counts, Pair

pairs = HashMap(u32, Pair, 4)


@iouring_program
def prog(ctx: Ctx) -> int:
    p = Pair()
    p.a = STEP
    p.b = 5
    pairs[0] = p
    counts[0] = bump(counts[0]) + shared.twice(u64(pairs[0].b))
    return OK
'''
SHARED = '''
from pybpfuring import ArrayMap, bpf_function, struct, u32, u64

STEP = 3
counts = ArrayMap(u64, 4)


@struct
class Pair:
    a: u32
    b: u32


@bpf_function
def bump(x: u64) -> u64:
    return x + 1


@bpf_function
def twice(x: u64) -> u64:
    return x * 2
'''

EDITS = {
    "imported @bpf_function": ("return x + 1", "return x + 7"),
    "function reached as module.attr": ("return x * 2", "return x * 5"),
    "imported map size": ("ArrayMap(u64, 4)", "ArrayMap(u64, 64)"),
    "imported constant": ("STEP = 3", "STEP = 11"),
    "imported struct layout": ("    a: u32\n    b: u32", "    b: u32\n    a: u32"),
}


def compile_obj(project: Path, cache: Path, out: str) -> bytes:
    proc = pybpfuring("compile", "prog.py", "-o", out, cwd=project, env={"PYBPFURING_CACHE": str(cache)})
    assert proc.returncode == 0, proc.stderr
    return (project / out).read_bytes()


@pytest.mark.parametrize("what", sorted(EDITS))
def test_editing_an_imported_module_changes_the_object(tmp_path: Path, what: str) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "prog.py").write_text(PROGRAM)
    (project / "shared.py").write_text(SHARED)
    warm = tmp_path / "cache"
    before = compile_obj(project, warm, "a.o")
    assert compile_obj(project, warm, "a.o") == before            # unchanged: served from the cache
    # Two entries: the op_bpf ELF and the object with its kernel-loop form (docs/kernel.md).
    assert len(list((warm / "compile").glob("*.ref"))) == 2
    old, new = EDITS[what]
    assert old in SHARED
    (project / "shared.py").write_text(SHARED.replace(old, new))
    after = compile_obj(project, warm, "b.o")
    assert after != before, f"editing the {what} returned the stale object"
    assert after == compile_obj(project, tmp_path / "cold", "c.o")  # what a cold cache compiles


def test_the_key_covers_the_compilers_own_sources(tmp_path: Path) -> None:
    """A copy of the package with one compiler file changed (a comment) keys every program anew."""
    copy = tmp_path / "copy"
    shutil.copytree(REPO / "pybpfuring", copy / "pybpfuring",
                    ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); "
             "from pybpfuring.compiler.driver import load_module, programs_in; "
             "from pybpfuring.compiler.cache_key import compile_key; "
             f"print(compile_key(programs_in(load_module({str(REPO / 'examples' / 'cp.py')!r})), 'op_bpf'))")

    def key(tree: Path) -> str:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        proc = subprocess.run([sys.executable, "-c", probe, str(tree)], capture_output=True, text=True,
                              timeout=120, env={**env, "PYBPFURING_CACHE": str(tmp_path / "cache")})
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    original = key(copy)
    assert key(copy) == original
    with open(copy / "pybpfuring" / "compiler" / "emit.py", "a") as f:
        f.write("\n# a new compiler version\n")
    assert key(copy) != original


def test_the_key_covers_llvmlite_and_llvm_versions() -> None:
    import llvmlite
    import llvmlite.binding as llvm

    from pybpfuring.compiler import cache_key
    cache_key.compiler_fingerprint.cache_clear()
    real = cache_key.compiler_fingerprint()
    version = llvmlite.__version__
    try:
        llvmlite.__version__ = version + "+other"
        cache_key.compiler_fingerprint.cache_clear()
        assert cache_key.compiler_fingerprint() != real
    finally:
        llvmlite.__version__ = version
        cache_key.compiler_fingerprint.cache_clear()
    assert str(llvm.llvm_version_info) and cache_key.compiler_fingerprint() == real
