"""The benchmark's source files: on a real, page-cached file system, written once, fully cached.

Never tmpfs: io_uring hands every buffered read of a shmem file to an io-wq worker, so a tmpfs source
measures that handoff, not the ring (shared/reference/kernel-vm.md). On the host every run works in
a new private directory (`tempfile.mkdtemp`: ours, mode 0700, a fresh random name) under /var/tmp
(disk-backed even where /tmp is tmpfs) or under `--data-dir`, and removes it at the end: a root
benchmark never follows a symlink or imports a file another user planted, and leaves nothing behind.
In the QEMU guest the data goes to the ext4 scratch disk, which is discarded after the boot.
"""
from __future__ import annotations

import ctypes
import mmap
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pybpfuring.cache import UnsafeCacheError, check_trusted_parents

MiB = 1 << 20
# Page-cache-less or memory-backed file systems: a source there is not the talk's "cached file".
REFUSED_FS = {"tmpfs", "ramfs", "devtmpfs", "hugetlbfs", "proc", "sysfs"}
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                       ctypes.c_long]


class DataDirError(Exception):
    """The data directory cannot hold a fair source file; the message says why and what to do."""


DEFAULT_PARENT = Path("/var/tmp")


def guest_dir() -> Path | None:
    """The guest's data directory (on its own scratch disk), or None outside the guest."""
    scratch = os.environ.get("PYBPFURING_SCRATCH") if os.environ.get("PYBPFURING_IN_GUEST") else None
    return Path(scratch) / "bench" if scratch else None


@contextmanager
def private_run_dir(parent: Path | None = None) -> Iterator[Path]:
    """A new directory only this run uses, under `parent` (default /var/tmp), removed afterwards.

    `parent` is created (0700) if missing; it and every folder above it must belong to root or us and
    be writable by others only if sticky (as /var/tmp is), or another user could swap our directory.
    """
    parent = Path(os.path.abspath(parent or DEFAULT_PARENT))
    try:
        parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        check_trusted_parents(parent)
    except UnsafeCacheError as exc:
        raise DataDirError(str(exc)) from None
    except OSError as exc:
        raise DataDirError(f"cannot use {parent} for the benchmark's data: {exc.strerror}") from None
    work = Path(tempfile.mkdtemp(prefix="pybpfuring-bench-", dir=parent))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def fs_type(path: Path) -> str:
    """The file system type of the mount holding `path` (from /proc/self/mountinfo)."""
    target = os.path.realpath(path)
    best, kind = "", "unknown"
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            mount_point = left.split()[4].replace("\\040", " ")
            inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
            if inside and len(mount_point) >= len(best):
                best, kind = mount_point, right.split()[0]
    return kind


def prepare_dir(path: Path) -> str:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    kind = fs_type(path)
    if kind in REFUSED_FS:
        raise DataDirError(f"{path} is on {kind}: a source file there is not page-cached like a disk "
                           "file (io_uring punts its reads to io-wq). Pass --data-dir on ext4/xfs/btrfs.")
    return kind


def source_file(directory: Path, size: int) -> Path:
    """A file of exactly `size` bytes (not zeros, so nothing can be skipped), written and synced once."""
    path = directory / f"src-{size}.dat"
    if path.is_file() and path.stat().st_size == size:
        return path
    chunk = os.urandom(MiB)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    # O_EXCL|O_NOFOLLOW: never write through a name someone else created (the directory is ours anyway)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as f:
        left = size
        while left > 0:
            left -= f.write(chunk[:min(left, MiB)])
        f.flush()
        os.fsync(f.fileno())  # no writeback of this file may overlap the timed runs
    tmp.replace(path)
    return path


def warm(path: Path) -> float:
    """Read the file through the page cache; return the fraction of its pages resident afterwards."""
    with open(path, "rb", buffering=0) as f:
        while f.read(MiB):
            pass
    return cached_fraction(path)


def cached_fraction(path: Path) -> float:
    """mincore(2) over the whole file: the share of its pages in the page cache."""
    size = path.stat().st_size
    if size == 0:
        return 1.0
    pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    vec = (ctypes.c_ubyte * pages)()
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = _libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), f"mmap of {path} failed")
        try:
            if _libc.mincore(ctypes.c_void_p(addr), ctypes.c_size_t(size), vec) != 0:
                raise OSError(ctypes.get_errno(), "mincore failed")
        finally:
            _libc.munmap(ctypes.c_void_p(addr), ctypes.c_size_t(size))
    finally:
        os.close(fd)
    return sum(b & 1 for b in vec) / pages
