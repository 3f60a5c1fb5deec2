"""examples/lookup.py: one BPF request per B+tree lookup, checked against a dict and an os.pread
lookup of the same file; absent keys give -ENOENT, a damaged index -EIO, a bad fd -EBADF."""
from __future__ import annotations

import errno
import os
import shutil
import tempfile

import pytest

import lookup as L


@pytest.fixture(scope="module")
def tree() -> tuple[str, dict[int, int]]:
    d = tempfile.mkdtemp(prefix="pybpfuring-lookup-test-")
    path = os.path.join(d, "index")
    items = L.build_tree(path, 60_000)
    yield path, items
    shutil.rmtree(d, ignore_errors=True)


def _lookups(path: str, keys: list[int], inflight: int, engine: str = "auto") -> list[int]:
    fd = os.open(path, os.O_RDONLY)
    try:
        with L.open_ring(inflight, "emulated", engine) as ring:
            return L.bpf_lookups(ring, fd, keys, inflight)
    finally:
        os.close(fd)


@pytest.mark.parametrize("inflight", [1, 16, 256])
def test_lookups_match_the_dict_and_os_pread(tree, inflight: int) -> None:
    path, items = tree
    assert L.tree_depth(path) == 3
    keys = L.query_keys(items, 600, missing=0.2)
    got = _lookups(path, keys, inflight)
    assert got == [items.get(k, -errno.ENOENT) for k in keys]
    fd = os.open(path, os.O_RDONLY)
    try:
        assert got == [L.python_lookup(fd, k) for k in keys]
    finally:
        os.close(fd)
    assert sum(r == -errno.ENOENT for r in got) > 60      # absent keys were exercised


@pytest.mark.parametrize("engine", ["interp", "jit"])
def test_every_engine_gives_the_same_results(tree, engine: str) -> None:
    path, items = tree
    lo, hi = min(items), max(items)
    keys = [lo, hi, lo - 1, hi + 1, 0, (1 << 64) - 1] + L.query_keys(items, 50, 0.3)
    assert _lookups(path, keys, 4, engine) == [items.get(k, -errno.ENOENT) for k in keys]


def test_a_damaged_or_short_index_gives_eio_and_a_bad_fd_ebadf(tree) -> None:
    path, items = tree
    d = tempfile.mkdtemp(prefix="pybpfuring-lookup-bad-")
    try:
        with open(path, "rb") as f:
            data = bytearray(f.read())
        bad = os.path.join(d, "zeroed-root")
        data[4:8] = bytes(4)                                # root page count 0: not a tree page
        with open(bad, "xb") as f:
            f.write(data)
        short = os.path.join(d, "short")
        with open(short, "xb") as f:
            f.write(b"\x02" + bytes(L.PAGE - 2))            # half a page less than a page
        key = next(iter(items))
        assert _lookups(bad, [key], 1) == [-errno.EIO]
        assert _lookups(short, [key, key], 2) == [-errno.EIO, -errno.EIO]
        with L.open_ring(1, "emulated") as ring:
            assert L.bpf_lookups(ring, 9999, [key], 1) == [-errno.EBADF]
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_the_example_runs_as_a_script(capsys) -> None:
    assert L.main(["--backend", "emulated", "--keys", "3000", "--lookups", "200",
                   "--inflight", "16"]) == 0
    assert "all 200 results match" in capsys.readouterr().out
