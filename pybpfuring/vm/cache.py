"""Where the guest's artefacts live (outside the repository) and what is already there.

Layout of the cache directory (`vm/` under `$PYBPFURING_CACHE`, default `~/.cache/pybpfuring`):
    apt/            private apt configuration and package lists (never the system's apt state)
    debs/           downloaded .deb files
    kernel/<ver>/   vmlinux, vmlinuz, config, System.map, modules/*.ko (decompressed)
    sid/            Debian sid user-space unpacked side by side (virtiofsd, bpftool, libbpf, their libc)
    initramfs/      built initramfs images, named by the hash of what went in
    manifest.json   what `vm fetch` obtained, read by `vm info` and by every later run
"""
from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pybpfuring.cache import cache_dir as shared_cache_dir

MANIFEST_VERSION = 1


def cache_dir() -> Path:
    """The cache root; created on first use."""
    return shared_cache_dir("vm", create=True).resolve()


@contextmanager
def cache_lock(root: Path) -> Iterator[None]:
    """Serialise fetches: two pytest sessions must not unpack into the same directory at once."""
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@dataclass
class Manifest:
    """What a completed fetch left in the cache. Paths are relative to the cache root."""

    kernel_release: str                 # e.g. "7.2.13+deb14-cloud-amd64" (uname -r in the guest)
    kernel_packages: dict[str, str]     # package name -> Debian version
    vmlinux: str
    modules_dir: str
    sid_root: str
    sid_packages: dict[str, str]
    mirror: str                         # the URI apt used (read from the host's own apt sources)
    fetch_seconds: float
    fetched_at: str
    notes: list[str] = field(default_factory=list)
    version: int = MANIFEST_VERSION


def load_manifest(root: Path) -> Manifest | None:
    """The manifest if a complete fetch is cached and every file it names still exists."""
    try:
        data = json.loads((root / "manifest.json").read_text())
        manifest = Manifest(**data)
    except (OSError, ValueError, TypeError):
        return None
    if manifest.version != MANIFEST_VERSION:
        return None
    needed = [manifest.vmlinux, manifest.modules_dir, manifest.sid_root]
    if not all((root / rel).exists() for rel in needed):
        return None
    return manifest


def save_manifest(root: Path, manifest: Manifest) -> None:
    tmp = root / "manifest.json.tmp"
    tmp.write_text(json.dumps(asdict(manifest), indent=2, sort_keys=True) + "\n")
    tmp.replace(root / "manifest.json")


def tree_size(path: Path) -> int:
    """Bytes used by a file or directory tree (for `vm info`)."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
