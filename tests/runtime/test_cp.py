"""examples/cp.py: one IORING_OP_BPF request copies a file 4 KiB at a time (QD1), byte for byte."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

import cp
from pybpfuring.cli.run import run_main

# 100 MiB (the size) takes about 10 s on the emulated engine. When typeguard instruments the
# copy's hot path (the CI command's --typeguard-packages=pybpfuring instruments every function, the
# engine's per-instruction memory accessors too: ~240 s; tests/conftest.py's public-modules-only hook
# still covers the ring's per-block calls: ~40 s), the large file is 8 MiB, which stays under 30 s.
LARGE = 100 * 1024 * 1024
LARGE_UNDER_TYPEGUARD = 8 * 1024 * 1024


def _hot_path_instrumented() -> bool:
    import pybpfuring.runtime.backends.emulated as emulated
    import pybpfuring.runtime.engine.memory as memory
    import pybpfuring.uring.ring as ring
    return any("typeguard" in type(mod.__loader__).__module__ for mod in (emulated, memory, ring))


@pytest.fixture
def large_size() -> int:
    return LARGE_UNDER_TYPEGUARD if _hot_path_instrumented() else LARGE


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 3 * 4096 + 17])
def test_copies_small_files_exactly(backend: str, tmp_path: Path, size: int, no_fd_leak: None) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_bytes(os.urandom(size))
    stats = cp.copy_file(str(src), str(dst), backend)
    assert stats.bytes_copied == size
    assert dst.read_bytes() == src.read_bytes()
    blocks = -(-size // cp.BLOCK)
    assert stats.program_runs == 2 * blocks + 2  # one run per CQE, plus the first and EOF runs


def test_copies_a_large_file(backend: str, tmp_path: Path, large_size: int) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    with open(src, "wb") as f:
        block = os.urandom(1 << 20)
        for i in range(large_size >> 20):
            f.write(block[i:] + block[:i])  # every MiB different
    assert cp.copy_file(str(src), str(dst), backend).bytes_copied == large_size
    assert _digest(dst) == _digest(src)


def test_read_error_is_reported(backend: str, tmp_path: Path) -> None:
    # A directory fd cannot be read: the program's READ fails with -EISDIR and it stops.
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    out = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        with pytest.raises(OSError) as info:
            cp.copy_fds(fd, out, backend)
        assert info.value.errno == 21  # EISDIR
    finally:
        os.close(fd)
        os.close(out)


def test_pybpfuring_run_copies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_bytes(b"hello io_uring bpf\n" * 1000)
    example = Path(cp.__file__)
    assert run_main([str(example), str(src), str(dst)]) == 0
    assert dst.read_bytes() == src.read_bytes()
    assert "copied 19000 bytes" in capsys.readouterr().out
    assert run_main([str(example)]) == 2  # usage
    assert run_main([str(tmp_path / "missing.py")]) == 2
