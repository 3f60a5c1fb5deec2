"""What the guest's packages and files are checked against before they are used.

The chain, re-checked every time a .deb is used (downloaded, reused from `debs/`, unpacked):
  1. the suite's `InRelease` in the private apt lists is verified with `gpgv` and the mirror's keyring
     (Debian's archive keyring); only the signed text is read;
  2. the `Packages` index apt stored beside it must have the SHA-256 and size that signed text lists
     for `main/binary-amd64/Packages`;
  3. each .deb must have the SHA-256 and size that index lists for its package, version and
     architecture.
After a fetch, the manifest records the SHA-256 of every file the guest runs (vmlinux, modules, the
unpacked sid tree); `load_manifest` re-hashes them before each boot (`tree_hashes`).
"""
from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from pybpfuring.vm.steps import VmError, run_step

VERIFY_TIMEOUT = 120.0
APT_HELPER = "/usr/lib/apt/apt-helper"
INDEX = "main/binary-amd64/Packages"


@dataclass(frozen=True)
class DebHash:
    sha256: str
    size: int


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def signed_release(lists: Path, keyring: str) -> str:
    """The signed text of the one InRelease in `lists`, verified with `gpgv` against `keyring`."""
    releases = sorted(lists.glob("*_InRelease"))
    if len(releases) != 1:
        raise VmError("verify packages", f"expected one InRelease in {lists}, found {len(releases)}",
                      "run `pybpfuring vm fetch --refresh`")
    proc = run_step("verify InRelease signature",
                    ["gpgv", "--keyring", keyring, "--output", "-", releases[0]], VERIFY_TIMEOUT)
    return proc.stdout.decode("utf-8", "replace")


def index_hash(release_text: str, name: str = INDEX) -> DebHash:
    """The SHA-256 and size the signed Release lists for `name`."""
    in_sha256 = False
    for line in release_text.splitlines():
        if not line.startswith(" "):
            in_sha256 = line.strip() == "SHA256:"
            continue
        parts = line.split()
        if in_sha256 and len(parts) == 3 and parts[2] == name:
            return DebHash(parts[0], int(parts[1]))
    raise VmError("verify packages", f"the signed Release lists no SHA-256 for {name}")


def read_index(lists: Path) -> bytes:
    """The (uncompressed) Packages index apt stored in `lists`."""
    found = sorted(lists.glob("*_main_binary-amd64_Packages*"))
    if len(found) != 1:
        raise VmError("verify packages", f"expected one Packages index in {lists}, found {len(found)}",
                      "run `pybpfuring vm fetch --refresh`")
    # apt may keep it compressed (lz4, zstd, gz ...); its own helper reads every format it writes.
    return run_step("read the Packages index", [APT_HELPER, "cat-file", found[0]], VERIFY_TIMEOUT).stdout


def package_hashes(index: bytes, wanted: dict[str, str]) -> dict[str, DebHash]:
    """SHA-256 and size of each wanted package at its version (amd64 or all), from a Packages index."""
    found: dict[str, DebHash] = {}
    for stanza in index.split(b"\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.split(b"\n"):
            key, sep, value = line.partition(b":")
            if sep and key in (b"Package", b"Version", b"Architecture", b"SHA256", b"Size"):
                fields[key.decode()] = value.strip().decode()
        pkg = fields.get("Package")
        if pkg in wanted and fields.get("Version") == wanted[pkg] and \
                fields.get("Architecture") in ("amd64", "all") and "SHA256" in fields:
            found[pkg] = DebHash(fields["SHA256"], int(fields.get("Size", "-1")))
    missing = sorted(set(wanted) - set(found))
    if missing:
        raise VmError("verify packages", f"the signed Packages index has no entry for {', '.join(missing)} "
                      f"at the version apt chose", "run `pybpfuring vm fetch --refresh`")
    return found


def signed_package_hashes(lists: Path, keyring: str, wanted: dict[str, str]) -> dict[str, DebHash]:
    """Steps 1-2-3's expectations: per package (name -> version), the hash its .deb must have."""
    expected_index = index_hash(signed_release(lists, keyring))
    index = read_index(lists)
    actual = hashlib.sha256(index).hexdigest()
    if actual != expected_index.sha256 or len(index) != expected_index.size:
        raise VmError("verify packages", f"the Packages index in {lists} does not match the signed "
                      f"Release (SHA-256 {actual[:16]}..., expected {expected_index.sha256[:16]}...)",
                      "run `pybpfuring vm fetch --refresh`")
    return package_hashes(index, wanted)


def deb_matches(path: Path, expected: DebHash) -> bool:
    """Whether the .deb at `path` is a regular file with exactly the signed size and SHA-256."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(st.st_mode) or st.st_size != expected.size:
        return False
    return sha256_of(path) == expected.sha256


def tree_hashes(root: Path, rels: list[str]) -> dict[str, str]:
    """SHA-256 of every regular file (and the target of every symlink) under root/rel, by relative path."""
    out: dict[str, str] = {}
    for rel in rels:
        base = root / rel
        paths = [base] if not base.is_dir() or base.is_symlink() else sorted(base.rglob("*"))
        for path in paths:
            st = os.lstat(path)
            key = str(path.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                out[key] = "symlink:" + os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                out[key] = sha256_of(path)
    return out
