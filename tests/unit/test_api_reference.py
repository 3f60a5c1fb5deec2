"""The API reference (docs/api) builds from the docstrings with warnings as errors (issue 20): a public
name without a docstring, or a docstring Sphinx cannot render, fails here. Needs the `docs` extra
(pip install -e '.[docs]'), which scripts/test.sh installs."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "docs" / "api"


def _sphinx_missing() -> str | None:
    for module in ("sphinx", "sphinxarg"):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed (pip install -e '.[docs]'; scripts/test.sh does)"
    return None


def test_every_public_module_has_a_page() -> None:
    pages = {p.name for p in SOURCE.glob("*.rst")}
    assert {"index.rst", "package.rst", "lang.rst", "runtime.rst", "filters.rst", "errors.rst",
            "cli.rst"} <= pages


def test_api_reference_builds_without_warnings() -> None:
    why = _sphinx_missing()
    if why:
        pytest.skip(why)
    out = Path(tempfile.mkdtemp(prefix="pybpfuring-api-"))
    try:
        # -W: warnings are errors; -n would also flag unresolved type names, which we do not link.
        proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                               "-d", str(out / "doctrees"), str(SOURCE), str(out / "html")],
                              capture_output=True, text=True, timeout=300, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert proc.returncode == 0, proc.stdout + proc.stderr
        lang = (out / "html" / "lang.html").read_text()
        runtime = (out / "html" / "runtime.html").read_text()
        cli = (out / "html" / "cli.html").read_text()
        # The names a user looks up first are on their pages (autodoc skips what it cannot document).
        for name in ("iouring_program", "ArrayMap", "submit", "prep_read", "wait_cqe", "u32"):
            assert f'id="pybpfuring.lang.{name}"' in lang, name
        for name in ("Ring", "Ring.submit_and_wait", "Ring.cq_ready", "Cqe",
                     "prep_read", "RegistrationError"):
            assert f'id="pybpfuring.runtime.{name}"' in runtime, name
        for command in ("compile", "disasm", "check", "run", "info", "vm", "trace", "bench"):
            assert command in cli
    finally:
        shutil.rmtree(out, ignore_errors=True)
