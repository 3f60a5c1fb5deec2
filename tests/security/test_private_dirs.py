"""Code execution and file clobbering as root through shared directories (docs/security.md
"Private directories"): the benchmarks work in a fresh `mkdtemp` directory (ours, 0700) under a
parent that nobody else controls, never follow or import what another user planted, and remove
everything they wrote when the run ends.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hostile import REPO, needs_root, needs_setpriv, nobody_sh, shared_dir

sys.path.insert(0, str(REPO))
from bench import datafile  # noqa: E402

needs_cc = pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler for the C baselines")


def bench(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


@pytest.fixture()
def disk_parent(tmp_path: Path) -> Iterator[Path]:
    """A parent for benchmark data on a disk file system (the benchmark refuses tmpfs)."""
    if datafile.fs_type(tmp_path) not in datafile.REFUSED_FS:
        (tmp_path / "data").mkdir()
        yield tmp_path / "data"
        return
    if datafile.fs_type(datafile.DEFAULT_PARENT) in datafile.REFUSED_FS:
        pytest.skip("neither the pytest tmp dir nor /var/tmp is on a disk file system")
    parent = Path(tempfile.mkdtemp(dir=datafile.DEFAULT_PARENT))
    yield parent
    shutil.rmtree(parent, ignore_errors=True)


def plant(shared: Path, victim: Path, marker: Path) -> list[str]:
    """As nobody: the old fixed data directory, with symlinks to root's file where source files go,
    and a code tree that records it ran if anything imports it. Returns what is there afterwards."""
    nobody_sh(f"""
        cd {shared}
        mkdir -p pybpfuring-bench/bench pybpfuring-bench/pybpfuring pybpfuring-bench/tree-x/bench
        for name in src-65536.dat src-1048576.dat pybpfuring-bench/src-65536.dat; do
            ln -s {victim} $name
        done
        echo 'open("{marker}", "w").write("planted code ran")' > pybpfuring-bench/bench/__init__.py
        cp pybpfuring-bench/bench/__init__.py pybpfuring-bench/pybpfuring/__init__.py
        cp pybpfuring-bench/bench/__init__.py pybpfuring-bench/tree-x/bench/__init__.py
    """)
    return sorted(str(p.relative_to(shared)) for p in shared.rglob("*"))


CP_TINY = ["cp", "--size", "64K", "--emulated-size", "64K", "--runs", "1", "--warmup", "0",
           "--where", "host", "--no-syscalls", "--no-write"]


@needs_root
@needs_setpriv
@needs_cc
def test_bench_ignores_what_another_user_planted_in_its_data_dir(tmp_path: Path) -> None:
    if datafile.fs_type(Path(tempfile.gettempdir())) in datafile.REFUSED_FS:
        pytest.skip("/tmp is not on a disk file system here")
    with shared_dir() as shared:
        victim, marker = tmp_path / "victim", shared / "imported"
        victim.write_text("root's file\n")
        planted = plant(shared, victim, marker)
        proc = bench(*CP_TINY, "--data-dir", str(shared))
        assert proc.returncode == 0, proc.stderr
        assert victim.read_text() == "root's file\n"
        assert not marker.exists()
        assert sorted(str(p.relative_to(shared)) for p in shared.rglob("*")) == planted  # nothing left


@needs_root
@needs_setpriv
@needs_cc
def test_default_run_ignores_a_planted_var_tmp_tree(tmp_path: Path) -> None:
    """The default parent, /var/tmp, seen through a private mount namespace in which nobody has
    pre-created /var/tmp/pybpfuring-bench (the path the benchmark used to use) with traps in it."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")
    with shared_dir() as shared:
        if datafile.fs_type(shared) in datafile.REFUSED_FS:
            pytest.skip("/tmp is not on a disk file system here")
        victim, marker = tmp_path / "victim", tmp_path / "imported"
        victim.write_text("root's file\n")
        os.chmod(tmp_path, 0o755)  # nobody's planted code could write the marker if it ran
        planted = plant(shared, victim, marker)
        argv = " ".join([sys.executable, "-m", "bench", *CP_TINY])
        proc = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                               f"mount --bind {shared} /var/tmp && exec {argv}"], cwd=REPO,
                              capture_output=True, text=True, timeout=600,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
        if proc.returncode != 0 and "mount" in proc.stderr and "bench" not in proc.stderr:
            pytest.skip(f"no private mount namespace here: {proc.stderr.strip()}")
        assert proc.returncode == 0, proc.stderr
        assert "Source: /var/tmp/pybpfuring-bench-" in proc.stdout  # a fresh mkdtemp name, not the fixed one
        assert victim.read_text() == "root's file\n" and not marker.exists()
        assert sorted(str(p.relative_to(shared)) for p in shared.rglob("*")) == planted


@needs_root
@needs_setpriv
def test_a_data_dir_another_user_controls_is_refused(tmp_path: Path) -> None:
    with shared_dir() as shared:
        nobody_sh(f"mkdir {shared}/theirs")  # owned by nobody: they could swap our directory inside
        proc = bench("cp", "--size", "64K", "--runs", "1", "--where", "host", "--no-syscalls",
                     "--no-write", "--data-dir", str(shared / "theirs"))
        assert proc.returncode == 2, proc
        assert f"{shared / 'theirs'}" in proc.stderr and "owned by uid 65534" in proc.stderr
        assert "Traceback" not in proc.stderr
        assert os.listdir(shared / "theirs") == []


@needs_cc
def test_every_run_removes_what_it_wrote(disk_parent: Path, tmp_path: Path) -> None:
    """A cp run writes its source files and a copy of the code; all of it goes at the end."""
    parent = disk_parent
    proc = bench("cp", "--size", "1M", "--emulated-size", "64K", "--runs", "1", "--warmup", "0",
                 "--where", "host", "--no-syscalls", "--no-write", "--data-dir", str(parent),
                 env={"PYBPFURING_CACHE": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stderr
    # The run really used the parent (its table names the directory) ...
    assert re.search(rf"Source: {re.escape(str(parent))}/pybpfuring-bench-\w+/data", proc.stdout), \
        proc.stdout[-2000:]
    # ... and left nothing behind in it.
    assert os.listdir(parent) == []


def test_the_run_directory_is_private(disk_parent: Path) -> None:
    parent = disk_parent
    with datafile.private_run_dir(parent) as work:
        st = os.lstat(work)
        assert st.st_uid == os.geteuid() and (st.st_mode & 0o777) == 0o700
        assert work.parent == parent and work.name.startswith("pybpfuring-bench-")
        (work / "file").write_text("x")
    assert not work.exists()


# Code and scripts must not name a fixed file or folder in a shared temporary directory.
_FIXED_TMP = re.compile(r"""(?<![\w.$])(?:/var)?/tmp/[A-Za-z0-9_${-]""")


def test_no_fixed_paths_in_shared_temporary_directories() -> None:
    offenders = []
    for folder in ("pybpfuring", "bench", "scripts", "tests", "examples", ".ci"):
        for path in sorted((REPO / folder).rglob("*")):
            if path.suffix not in (".py", ".sh", ".c", ".h", "") or not path.is_file() \
                    or path.parent == Path(__file__).parent:
                continue
            for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                code = line.split("#", 1)[0] if path.suffix in (".py", ".sh", "") else line
                if _FIXED_TMP.search(code):
                    offenders.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert offenders == [], "use tempfile.mkdtemp / mktemp -d instead:\n" + "\n".join(offenders)
