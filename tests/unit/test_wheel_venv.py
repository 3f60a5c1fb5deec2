"""The package as a user installs it: build a wheel, install it into a fresh virtual environment
(no access to this checkout, no C compiler at run time), and run examples there.

The native loop must come from the extension module built into the wheel (runtime/backends/native/_loop*.so):
with CC pointing nowhere and an empty cache folder, Ring must still pick engine "native" and no
first-use build may appear in the cache. Skips only where `python3 -m venv` cannot make an environment
or the package index (for llvmlite, pyelftools, typeguard) cannot be reached.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COPIED = ["pybpfuring", "examples", "pyproject.toml", "setup.py", "MANIFEST.in", "README.md"]
OFFLINE = ("No matching distribution", "Could not find a version", "NewConnectionError",
           "Temporary failure in name resolution", "Network is unreachable")
CHECK = """
import ctypes
from pybpfuring.runtime import Ring
from pybpfuring.runtime.backends.native import build
import pybpfuring
assert "site-packages" in pybpfuring.__file__, pybpfuring.__file__
assert build.built_extension() is not None, "the wheel has no usable native extension"
with Ring(8) as ring:
    print("engine", ring.engine)
"""


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None,
         timeout: int = 900) -> subprocess.CompletedProcess[str]:
    """`cmd` without this checkout on PYTHONPATH (pip would take it for an installed copy)."""
    env = dict(os.environ if env is None else env)
    env.pop("PYTHONPATH", None)
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _copy_sources(dest: Path) -> Path:
    """The package sources in a private folder: building writes build/ and egg-info beside them."""
    src = dest / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.so", "*.egg-info", "build")
    for name in COPIED:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=ignore)
        else:
            shutil.copy2(path, src / name)
    return src


def _skip_if_offline(done: subprocess.CompletedProcess[str]) -> None:
    text = done.stdout + done.stderr
    if done.returncode and any(s in text for s in OFFLINE):
        pytest.skip(f"the package index is unreachable: {text.strip().splitlines()[-1]}")


@pytest.mark.slow
def test_wheel_installs_and_runs_in_a_fresh_venv() -> None:
    work = Path(tempfile.mkdtemp(prefix="pybpfuring-wheel-"))
    try:
        src = _copy_sources(work)
        # An isolated build, as `python -m build` does: setuptools from the index, not the host's.
        made = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(work / "dist"), str(src)], work)
        _skip_if_offline(made)
        assert made.returncode == 0, made.stdout + made.stderr
        wheel = next((work / "dist").glob("pybpfuring-*.whl"))
        venv = work / "venv"
        if _run([sys.executable, "-m", "venv", str(venv)], work).returncode:
            pytest.skip("python3 -m venv cannot create an environment here (install python3-venv)")
        python = str(venv / "bin" / "python")
        installed = _run([python, "-m", "pip", "install", "-q", str(wheel)], work)
        _skip_if_offline(installed)
        assert installed.returncode == 0, installed.stdout + installed.stderr
        cache = work / "cache"
        cache.mkdir(mode=0o700)
        env = {**os.environ, "CC": str(work / "no-compiler"), "PYBPFURING_CACHE": str(cache),
               "PATH": f"{venv / 'bin'}:/usr/bin:/bin"}
        checked = _run([python, "-c", CHECK], work, env)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "engine native" in checked.stdout, checked.stdout
        chase = _run([python, str(work / "src" / "examples" / "chase.py"), "--chains", "4", "--hops", "10"], work, env)
        assert chase.returncode == 0 and "all 4 results match" in chase.stdout, chase.stdout + chase.stderr
        ref = _run([python, "-m", "pybpfuring", "run", str(work / "src" / "examples" / "run_reference.py")], work, env)
        assert ref.returncode == 0, ref.stdout + ref.stderr
        assert not (cache / "native").exists(), "the native loop was compiled at run time"
    finally:
        shutil.rmtree(work, ignore_errors=True)
