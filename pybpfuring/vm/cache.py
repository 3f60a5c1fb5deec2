"""Where the guest's artefacts live (outside the repository) and what is already there.

Layout of the cache directory (`vm/` under `$PYBPFURING_CACHE`, default `~/.cache/pybpfuring`):
    apt/            private apt configuration and package lists (never the system's apt state)
    debs/           downloaded .deb files
    kernel/<ver>/   vmlinux, vmlinuz, config, System.map, modules/*.ko (decompressed)
    sid/            Debian sid user-space unpacked side by side (virtiofsd, bpftool, libbpf, their libc)
    headers/<ver>/  the kernel's headers for bcc (`pybpfuring trace`), with <ver>.json: their SHA-256s
    initramfs/      built initramfs images, content-addressed (pybpfuring.cache.store_verified)
    manifest.json   what `vm fetch` obtained and the SHA-256 of every file the guest runs, read (and
                    re-checked) by `vm info` and by every later run

Every folder is a checked private cache folder (pybpfuring/cache.py: ours, 0700, no symlinks); the
.debs are checked against Debian's signed index each time they are used (verify.py).
"""
from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pybpfuring.cache import UnsafeCacheError, ensure_private_tree, private_dir, read_checked
from pybpfuring.outputs import write_atomic
from pybpfuring.vm.verify import tree_hashes

# 2: the manifest records the SHA-256 of every file the guest runs (`files`).
MANIFEST_VERSION = 2


def cache_dir() -> Path:
    """The guest's cache folder, created on first use and checked (pybpfuring.cache.private_dir)."""
    return private_dir("vm")


def subdir(root: Path, *parts: str) -> Path:
    """A checked private folder below the guest cache (created 0700 if missing)."""
    return ensure_private_tree(root, *parts)


@contextmanager
def cache_lock(root: Path) -> Iterator[None]:
    """Serialise fetches: two pytest sessions must not unpack into the same directory at once."""
    fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


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
    files: dict[str, str] = field(default_factory=dict)   # relative path -> SHA-256 (or symlink:target)
    version: int = MANIFEST_VERSION

    def verified_trees(self) -> list[str]:
        """The folders whose every file the manifest hashes: the kernel's and sid's."""
        return [str(Path(self.vmlinux).parent), self.sid_root]


def load_manifest(root: Path) -> Manifest | None:
    """The manifest if a complete fetch is cached, every file it names still exists and every file
    the guest runs still has the SHA-256 recorded at fetch time (else `UnsafeCacheError`)."""
    try:
        data = json.loads(read_checked(root / "manifest.json"))
        manifest = Manifest(**data)
    except (OSError, ValueError, TypeError):
        return None
    if manifest.version != MANIFEST_VERSION or not manifest.files:
        return None
    needed = [manifest.vmlinux, manifest.modules_dir, manifest.sid_root]
    if not all((root / rel).exists() for rel in needed):
        return None
    check_files(root, manifest)
    return manifest


def check_files(root: Path, manifest: Manifest) -> None:
    """Every file under the kernel and sid folders must be exactly the one `vm fetch` unpacked."""
    actual = tree_hashes(root, manifest.verified_trees())
    for rel in sorted(set(actual) | set(manifest.files)):
        want, have = manifest.files.get(rel), actual.get(rel)
        if want == have:
            continue
        problem = ("it was not unpacked by `vm fetch` (an added file)" if want is None else
                   "it is missing" if have is None else
                   "its content differs from what `vm fetch` unpacked and verified")
        raise UnsafeCacheError(root / rel, f"{problem}; run `pybpfuring vm fetch --refresh`")


def save_manifest(root: Path, manifest: Manifest) -> None:
    write_atomic(root / "manifest.json", json.dumps(asdict(manifest), indent=2, sort_keys=True) + "\n",
                 0o600)


def tree_size(path: Path) -> int:
    """Bytes used by a file or directory tree (for `vm info`)."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
