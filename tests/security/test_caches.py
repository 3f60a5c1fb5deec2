"""Code execution as root from the caches (docs/security.md "Caches").

Every cache folder is created 0700 and checked (ours, not group/world writable, not a symlink, the
root and its parents too) before anything in it is loaded; cached native code and objects are
content-addressed and re-hashed before use. A failed check is an `UnsafeCacheError` naming the path.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hostile import REPO, needs_root, needs_setpriv, nobody_sh, pybpfuring, shared_dir
from pybpfuring import cache
from pybpfuring.cache import UnsafeCacheError

PROGRAM = REPO / "examples" / "cp.py"
# A shared object whose constructor leaves a mark: loading it is running someone else's code.
EVIL_C = r'''
#include <stdio.h>
__attribute__((constructor)) static void planted(void) {
    FILE *f = fopen(MARKER, "w");
    if (f) { fputs("planted code ran as root\n", f); fclose(f); }
}
'''


def build_evil_so(tmp_path: Path, marker: Path) -> Path:
    src, so = tmp_path / "evil.c", tmp_path / "evil.so"
    src.write_text(EVIL_C)
    proc = subprocess.run(["cc", "-shared", "-fPIC", f'-DMARKER="{marker}"', "-o", so, src],
                          capture_output=True, text=True)
    if proc.returncode:
        pytest.skip(f"no C compiler to build the planted library: {proc.stderr}")
    return so


def native_load(cache_root: Path) -> subprocess.CompletedProcess[str]:
    """A fresh process building (or finding) the native event loop in `cache_root` and loading it:
    the first-use path of a source checkout without the built extension (an installed package
    loads its own extension and never reads the cache)."""
    code = ("import ctypes\nfrom pybpfuring.runtime.backends.native import build\n"
            "try:\n    ctypes.CDLL(str(build.build())); print('loaded')\n"
            "except Exception as e:\n    print(type(e).__name__, e)\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO), "PYBPFURING_CACHE": str(cache_root)})


@pytest.fixture()
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PYBPFURING_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_folders_are_created_private_at_every_level(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYBPFURING_CACHE", str(tmp_path / "a" / "b" / "cache"))
    path = cache.private_dir("vm/debs")
    assert path == tmp_path / "a" / "b" / "cache" / "vm" / "debs"
    for level in (tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "cache", path.parent, path):
        st = os.lstat(level)
        assert st.st_uid == os.geteuid() and (st.st_mode & 0o777) == 0o700, level


def test_store_and_load_verify_content(root: Path) -> None:
    d = cache.private_dir("things")
    blob = cache.store_verified(d, "key1", b"object bytes")
    assert cache.load_verified(d, "key1") == b"object bytes"
    assert cache.verified_path(d, "key1") == blob and cache.load_verified(d, "missing") is None
    blob.write_bytes(b"object bytez")  # altered in place
    for load in (cache.load_verified, cache.verified_path):
        with pytest.raises(UnsafeCacheError, match="hashes to") as exc:
            load(d, "key1")
        assert exc.value.path == blob


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o757])
def test_group_or_world_writable_cache_is_refused(root: Path, mode: int) -> None:
    cache.private_dir("compile")
    os.chmod(root, mode)
    with pytest.raises(UnsafeCacheError, match="writable by group or others") as exc:
        cache.private_dir("compile")
    assert exc.value.path == root
    proc = pybpfuring("compile", str(PROGRAM), "-o", os.devnull, env={"PYBPFURING_CACHE": str(root)})
    assert proc.returncode == 2 and f"refusing to use {root}" in proc.stderr and "Traceback" not in proc.stderr


def test_symlinked_cache_root_or_folder_is_refused(tmp_path: Path, root: Path) -> None:
    real = tmp_path / "elsewhere"
    real.mkdir(mode=0o700)
    root.symlink_to(real)
    with pytest.raises(UnsafeCacheError, match="symlink"):
        cache.private_dir("native")
    root.unlink()
    cache.private_dir("bench")
    (root / "native").symlink_to(real)
    with pytest.raises(UnsafeCacheError, match="symlink") as exc:
        cache.private_dir("native")
    assert exc.value.path == root / "native"


@needs_root
@needs_setpriv
def test_cache_precreated_by_another_user_is_refused(tmp_path: Path) -> None:
    """A predictable PYBPFURING_CACHE in a shared directory, pre-created by nobody."""
    with shared_dir() as shared:
        nobody_sh(f"mkdir -m 0700 {shared}/cache && mkdir -m 0755 {shared}/cache2 && "
                  f"mkdir -m 0755 {shared}/parent")
        for path, problem in ((shared / "cache", "owned by uid 65534"),
                              (shared / "parent" / "cache", "a parent of the cache is owned by uid 65534")):
            proc = pybpfuring("compile", str(PROGRAM), "-o", os.devnull, env={"PYBPFURING_CACHE": str(path)})
            assert proc.returncode == 2 and problem in proc.stderr, proc.stderr
        assert not (shared / "parent" / "cache").exists()
        # The same for the native engine: never loaded, never silently replaced by another engine.
        out = native_load(shared / "cache2").stdout
        assert out.startswith("UnsafeCacheError") and "owned by uid 65534" in out, out


@needs_root
@needs_setpriv
def test_folder_planted_inside_our_root_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with shared_dir() as shared:
        root = shared / "cache"
        monkeypatch.setenv("PYBPFURING_CACHE", str(root))
        cache.private_dir("compile")
        os.chmod(root, 0o1777)  # as if the root had been shared for a while; nobody plants native/ ...
        nobody_sh(f"mkdir -m 0755 {root}/native")
        os.chmod(root, 0o700)   # ... and the root is private again: the planted folder is still refused
        with pytest.raises(UnsafeCacheError, match="owned by uid 65534") as exc:
            cache.private_dir("native")
        assert exc.value.path == root / "native"


def test_planted_shared_object_is_never_loaded(tmp_path: Path, root: Path) -> None:
    """A .so with the name of the real one, or put where the real one's reference points, never runs."""
    marker = tmp_path / "marker"
    evil = build_evil_so(tmp_path, marker)
    assert native_load(root).stdout.strip() == "loaded"           # the genuine build, cached
    native = root / "native"
    [ref] = native.glob("loop-*.so.ref")
    blob = native / ref.read_text().strip()
    # 1. Overwrite the cached library in place (same name, other content).
    os.chmod(blob, 0o700)
    blob.write_bytes(evil.read_bytes())
    out = native_load(root).stdout
    assert out.startswith("UnsafeCacheError") and str(blob) in out and "hashes to" in out, out
    assert not marker.exists()
    # 2. A library another user stored under its own (correct) hash, the reference pointing at it:
    #    the hash matches, but a file we do not own is refused before it is read.
    if os.geteuid() == 0:
        blob.unlink()
        planted = native / f"sha256-{hashlib.sha256(evil.read_bytes()).hexdigest()}"
        planted.write_bytes(evil.read_bytes())
        os.chown(planted, 65534, 65534)
        ref.write_text(planted.name + "\n")
        out = native_load(root).stdout
        assert out.startswith("UnsafeCacheError") and "owned by uid 65534" in out, out
        assert not marker.exists()
    # 3. The old naming scheme (loop-<key>.so) is not a cache entry at all: ignored, rebuilt.
    for p in native.iterdir():
        p.unlink()
    (native / ref.name.removesuffix(".ref")).write_bytes(evil.read_bytes())
    assert native_load(root).stdout.strip() == "loaded"
    assert not marker.exists()


def test_a_ring_does_not_fall_back_quietly_from_an_unsafe_cache(root: Path) -> None:
    """engine="auto" would pick the native loop: with its cache unsafe, Ring() says so."""
    cache.private_dir("native")
    os.chmod(root / "native", 0o777)
    code = ("from pybpfuring.runtime import Ring\n"
            "try:\n    Ring(8, cqs=[8]).close(); print('ring made')\n"
            "except Exception as e:\n    print(type(e).__name__, e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(REPO), "PYBPFURING_CACHE": str(root)}).stdout
    from pybpfuring.runtime.backends.native.build import built_extension
    if built_extension() is not None:
        # An installed package loads the extension built with it: the cache is never read.
        assert out.strip() == "ring made" and not any((root / "native").iterdir()), out
    else:
        assert out.startswith("UnsafeCacheError") and str(root / "native") in out, out


def test_altered_compiled_object_is_refused(root: Path) -> None:
    from pybpfuring.compiler.driver import _memory_cache, compile_module
    _memory_cache.clear()  # an earlier test may have compiled it in this process: go to the disk
    compile_module(PROGRAM)
    # Two entries: the op_bpf ELF, and the object that adds the kernel-loop form to it.
    blobs = [root / "compile" / ref.read_text().strip() for ref in (root / "compile").glob("*.ref")]
    assert len(blobs) == 2
    for blob in blobs:
        data = bytearray(blob.read_bytes())
        data[-1] ^= 0xFF
        blob.write_bytes(bytes(data))
    _memory_cache.clear()
    with pytest.raises(UnsafeCacheError, match="hashes to"):
        compile_module(PROGRAM)
    proc = pybpfuring("compile", str(PROGRAM), "-o", os.devnull)
    assert proc.returncode == 2 and any(str(b) in proc.stderr for b in blobs)
    assert "Traceback" not in proc.stderr


@needs_root
def test_cache_file_owned_by_another_user_is_refused(root: Path) -> None:
    d = cache.private_dir("compile")
    blob = cache.store_verified(d, "k", b"data")
    os.chown(blob, 65534, 65534)
    with pytest.raises(UnsafeCacheError, match="owned by uid 65534"):
        cache.load_verified(d, "k")
    os.chown(blob, 0, 0)
    os.chmod(blob, 0o666)
    with pytest.raises(UnsafeCacheError, match="writable by group or others"):
        cache.load_verified(d, "k")


def test_generated_scheduler_module_is_verified_before_import(root: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The bpf_ops model writes a Python module to the cache and imports it: it is hash-checked."""
    monkeypatch.syspath_prepend(str(REPO / "examples"))
    from pybpfuring.runtime.backends.bpf_ops_scheduler import build_scheduler
    import cp as cp_example  # examples/cp.py
    step = build_scheduler([cp_example.cp])
    [ref] = (root / "compile" / "bpf_ops_model").glob("*.ref")
    blob = ref.parent / ref.read_text().strip()
    assert step.py_func.__code__.co_filename == str(blob)
    blob.write_text(blob.read_text() + "\nopen('/dev/null', 'w')  # planted\n")
    with pytest.raises(UnsafeCacheError, match="hashes to"):
        build_scheduler([cp_example.cp])
