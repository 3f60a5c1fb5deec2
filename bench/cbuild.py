"""Build the C baselines with the system `cc`, once, into a cache outside the repository.

A binary is keyed by the hash of its source, the headers beside it, the flags and the compiler's
version, so an edit rebuilds it and an unchanged tree never does. The cache is shared with the QEMU
guest (it sees the host's file system), so the guest runs the binaries the host built. They run as
root: the folder is a checked private cache folder and each binary is re-hashed before it is run
(pybpfuring/cache.py).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from pybpfuring import cache

BENCH_DIR = Path(__file__).resolve().parent
CFLAGS = ["-O2", "-Wall", "-Werror"]
COMPILE_TIMEOUT = 120.0


class BuildUnavailable(Exception):
    """A baseline cannot be built here; the message says why and what to install."""


def cache_dir() -> Path:
    return cache.private_dir("bench")


def _compiler() -> str:
    cc = shutil.which(os.environ.get("CC", "cc"))
    if cc is None:
        raise BuildUnavailable("no C compiler (apt-get install gcc)")
    return cc


def _needs_liburing(source: Path) -> bool:
    return "#include <liburing.h>" in source.read_text()


def _key(cc: str, source: Path, flags: list[str]) -> str:
    h = hashlib.sha256()
    version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
    h.update(version.encode())
    h.update(" ".join(flags).encode())
    for part in sorted(source.parent.glob("*.h")) + [source]:
        h.update(part.name.encode() + b"\0" + part.read_bytes())
    return h.hexdigest()[:16]


def build(relative_source: str) -> Path:
    """The binary built from bench/<relative_source> (e.g. "cp/rw.c"), compiling it if needed."""
    source = BENCH_DIR / relative_source
    cc = _compiler()
    libs = []
    if _needs_liburing(source):
        if not Path("/usr/include/liburing.h").exists():
            raise BuildUnavailable("liburing headers missing (apt-get install liburing-dev)")
        libs = ["-luring"]
    flags = CFLAGS + libs
    directory = cache_dir()
    name = f"{source.stem}-{_key(cc, source, flags)}"
    built = cache.verified_path(directory, name)  # UnsafeCacheError if altered: never run it
    if built is not None:
        return built
    tmp = cache.new_temp_file(directory)
    try:
        proc = subprocess.run([cc, *CFLAGS, "-o", str(tmp), str(source), *libs], capture_output=True,
                              text=True, timeout=COMPILE_TIMEOUT)
        if proc.returncode != 0:
            raise BuildUnavailable(f"cc failed on {relative_source}: {proc.stderr.strip()[-400:]}")
        return cache.store_verified(directory, name, tmp, mode=0o700)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
