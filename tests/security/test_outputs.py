"""Data loss: no output of pybpfuring ever overwrites an input or a file it did not write.

docs/security.md "Outputs": `compile -o` refuses an input (by inode: through a symlink, `..` or a hard
link), a symlink and any existing file that is not a pybpfuring object/IR/assembly, unless --force;
every output is a temporary file in the same directory renamed into place.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from hostile import REPO, needs_root, needs_setpriv, nobody_sh, pybpfuring, shared_dir

PROGRAM = '''
from pybpfuring import ArrayMap, Ctx, OK, iouring_program, u64
from shared import bump

counts = ArrayMap(u64, 4)


@iouring_program
def prog(ctx: Ctx) -> int:
    counts[0] = bump(counts[0])
    return OK
'''
SHARED = '''
from pybpfuring import bpf_function, u64


@bpf_function
def bump(x: u64) -> u64:
    return x + 1
'''


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "prog.py").write_text(PROGRAM)
    (tmp_path / "shared.py").write_text(SHARED)
    monkeypatch.setenv("PYBPFURING_CACHE", str(tmp_path / "cache"))
    return tmp_path


def compile_to(project: Path, *args: str) -> "subprocess.CompletedProcess[str]":  # noqa: F821
    return pybpfuring("compile", "prog.py", *args, cwd=project)


def assert_refused(proc: "subprocess.CompletedProcess[str]", what: str) -> None:  # noqa: F821
    assert proc.returncode == 2, proc
    assert "refusing to write" in proc.stderr and what in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("output", ["prog.py", "./sub/../prog.py", "shared.py", "link-to-prog.o",
                                    "hardlink-to-prog.o"])
def test_compile_never_overwrites_an_input(project: Path, output: str) -> None:
    (project / "sub").mkdir()
    (project / "link-to-prog.o").symlink_to("prog.py")
    os.link(project / "prog.py", project / "hardlink-to-prog.o")
    before = {p: (project / p).read_bytes() for p in ("prog.py", "shared.py")}
    proc = compile_to(project, "-o", output)
    assert_refused(proc, output)
    assert "--force" in proc.stderr
    assert {p: (project / p).read_bytes() for p in before} == before


def test_existing_file_that_is_not_ours_needs_force(project: Path) -> None:
    notes = project / "notes.o"
    notes.write_text("my notes, not an object\n")
    assert_refused(compile_to(project, "-o", "notes.o"), "not a file pybpfuring wrote")
    assert notes.read_text() == "my notes, not an object\n"
    # A BPF object from another compiler is not ours either.
    shutil.copy(REPO / "pybpfuring" / "__init__.py", project / "other.ll")
    assert_refused(compile_to(project, "--emit", "ir", "-o", "other.ll"), "not a file pybpfuring wrote")
    forced = compile_to(project, "-o", "notes.o", "--force")
    assert forced.returncode == 0, forced.stderr
    assert notes.read_bytes()[:4] == b"\x7fELF"


def test_our_own_outputs_are_replaced_atomically(project: Path) -> None:
    for args, name in ((["-o", "prog.o"], "prog.o"), (["--emit", "ir", "-o", "prog.ll"], "prog.ll"),
                       (["--emit", "asm", "-o", "prog.s"], "prog.s")):
        assert compile_to(project, *args).returncode == 0
        first = os.stat(project / name)
        again = compile_to(project, *args)
        assert again.returncode == 0, again.stderr  # recompiling over our own output needs no --force
        # A new inode: written to a temporary file and renamed, never truncated in place.
        assert os.stat(project / name).st_ino != first.st_ino
    leftovers = [p.name for p in project.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_a_failed_compile_leaves_the_old_output(project: Path) -> None:
    assert compile_to(project, "-o", "prog.o").returncode == 0
    old = (project / "prog.o").read_bytes()
    (project / "prog.py").write_text(PROGRAM.replace("return OK", "return undefined_name"))
    proc = compile_to(project, "-o", "prog.o")
    assert proc.returncode == 2 and "undefined_name" in proc.stderr
    assert (project / "prog.o").read_bytes() == old


def test_directories_and_block_devices_are_never_written(project: Path) -> None:
    (project / "out").mkdir()
    assert_refused(compile_to(project, "-o", "out", "--force"), "is a directory")
    assert compile_to(project, "-o", os.devnull).returncode == 0  # a stream, not a file to lose
    missing = compile_to(project, "-o", "no-such-dir/x.o")
    assert missing.returncode == 2 and "cannot write no-such-dir/x.o" in missing.stderr, missing.stderr
    assert "Traceback" not in missing.stderr


@needs_root
@needs_setpriv
def test_symlink_planted_by_another_user_is_not_followed(project: Path) -> None:
    """In a shared directory, nobody points `x.o` at a root-owned file; root compiles to x.o."""
    with shared_dir() as shared:
        victim = shared / "victim"
        victim.write_text("root's data\n")
        nobody_sh(f"ln -s {victim} {shared}/x.o")
        assert_refused(compile_to(project, "-o", str(shared / "x.o")), "symlink")
        forced = compile_to(project, "-o", str(shared / "x.o"), "--force")
        assert forced.returncode == 0, forced.stderr
        assert victim.read_text() == "root's data\n"      # the link was replaced, not followed
        assert not (shared / "x.o").is_symlink()


def test_bench_report_does_not_rewrite_its_input(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    shutil.copy(REPO / "docs" / "results" / "nops.json", results / "nops.json")
    before = os.stat(results / "nops.json")
    content = (results / "nops.json").read_bytes()
    proc = subprocess_bench(["report", str(results / "nops.json")])
    assert proc.returncode == 0, proc.stderr
    after = os.stat(results / "nops.json")
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert (results / "nops.json").read_bytes() == content
    assert (results / "nops.md").read_text().startswith("## ")
    assert json.loads(content)["benchmark"] == "nops"


def subprocess_bench(args: list[str]) -> "subprocess.CompletedProcess[str]":  # noqa: F821
    import subprocess
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})


@pytest.mark.parametrize("example", ["examples/cp.py", "examples/ring_stats.py", "examples/trace_copy.py"])
def test_copy_example_refuses_to_copy_a_file_onto_itself(tmp_path: Path, example: str) -> None:
    src = tmp_path / "data"
    src.write_bytes(os.urandom(10000))
    (tmp_path / "alias").symlink_to(src)
    content = src.read_bytes()
    for dst in (src, tmp_path / "alias"):
        proc = pybpfuring("run", str(REPO / example), str(src), str(dst))
        assert proc.returncode != 0 and "same file" in proc.stderr, proc
        assert src.read_bytes() == content
