"""The guest's packages (docs/vm.md "What is verified", docs/security.md "Guest packages").

Each .deb is checked every time it is used against the SHA-256 in Debian's signed index: gpgv on
InRelease with the archive keyring -> the Packages index's hash -> the .deb's hash. What was unpacked
is hashed into the manifest and re-checked before every boot.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from hostile import needs_root, needs_setpriv, nobody_sh, shared_dir
from pybpfuring.cache import UnsafeCacheError, ensure_private_tree
from pybpfuring.vm import verify
from pybpfuring.vm.apt import PrivateApt, VerifiedDeb, host_mirror
from pybpfuring.vm.cache import Manifest, check_files, load_manifest, save_manifest
from pybpfuring.vm.kernel import unpack_debs
from pybpfuring.vm.steps import NoAptAccess, VmError

SMALL_PACKAGE = "zlib1g"  # ~90 KiB: cheap to download again


@pytest.fixture(scope="module")
def apt_copy(tmp_path_factory: pytest.TempPathFactory) -> PrivateApt:
    """A private apt whose lists are a copy of the fetched cache's (or freshly updated ones)."""
    root = tmp_path_factory.mktemp("apt-copy") / "apt"
    try:
        mirror = host_mirror()
    except NoAptAccess as exc:
        pytest.skip(f"this machine has no apt mirror configured: {exc}")
    apt = PrivateApt(ensure_private_tree(root.parent, "apt"), mirror)
    fetched = Path(os.environ.get("PYBPFURING_CACHE") or Path.home() / ".cache" / "pybpfuring") / "vm" / "apt" / "lists"
    lists = sorted(fetched.glob("*_InRelease")) + sorted(fetched.glob("*_main_binary-amd64_Packages*"))
    if len(lists) == 2:
        for f in lists:
            shutil.copy(f, root / "lists" / f.name)
    else:
        try:
            apt.update()
        except NoAptAccess as exc:
            pytest.skip(f"no fetched apt lists and apt cannot reach the mirror: {exc}")
    return apt


def lists_of(apt: PrivateApt) -> Path:
    return apt.root / "lists"


def test_the_signed_chain_gives_each_package_its_hash(apt_copy: PrivateApt) -> None:
    versions = apt_copy.versions([SMALL_PACKAGE])
    hashes = apt_copy.signed_hashes(versions)
    assert len(hashes[SMALL_PACKAGE].sha256) == 64 and hashes[SMALL_PACKAGE].size > 1000


def test_a_tampered_release_is_refused(apt_copy: PrivateApt, tmp_path: Path) -> None:
    lists = tmp_path / "lists"
    shutil.copytree(lists_of(apt_copy), lists)
    [release] = lists.glob("*_InRelease")
    text = release.read_text()
    sha = verify.index_hash(text).sha256
    release.write_text(text.replace(sha, sha[::-1], 1))  # point the index hash somewhere else
    with pytest.raises(VmError, match="verify InRelease signature"):
        verify.signed_package_hashes(lists, apt_copy.mirror.verify_keyring(), {SMALL_PACKAGE: "1"})


def test_a_substituted_packages_index_is_refused(apt_copy: PrivateApt, tmp_path: Path) -> None:
    lists = tmp_path / "lists"
    shutil.copytree(lists_of(apt_copy), lists)
    [index] = lists.glob("*_main_binary-amd64_Packages*")
    index.unlink()
    # A well-formed index listing a package with the attacker's hash, stored as apt would store it.
    plain = lists / (index.name.split("_Packages")[0] + "_Packages")
    plain.write_text(
        f"Package: {SMALL_PACKAGE}\nVersion: 1\nArchitecture: amd64\nSHA256: {'0' * 64}\nSize: 10\n\n")
    with pytest.raises(VmError, match="does not match the signed Release"):
        verify.signed_package_hashes(lists, apt_copy.mirror.verify_keyring(), {SMALL_PACKAGE: "1"})


def test_an_altered_deb_is_downloaded_again_and_never_unpacked(apt_copy: PrivateApt, tmp_path: Path) -> None:
    debs = ensure_private_tree(tmp_path, "debs")
    try:
        [good] = apt_copy.download([SMALL_PACKAGE], debs)
    except NoAptAccess as exc:
        pytest.skip(f"apt cannot reach the mirror: {exc}")
    genuine = good.path.read_bytes()
    # Same name, same size, other content: reused by name before, now replaced.
    good.path.write_bytes(bytes([genuine[0] ^ 1]) + genuine[1:])
    [again] = apt_copy.download([SMALL_PACKAGE], debs)
    assert again.path == good.path and again.path.read_bytes() == genuine
    # Altered between download and use: unpack refuses it before dpkg reads it.
    again.path.write_bytes(genuine[:-1] + bytes([genuine[-1] ^ 1]))
    dest = tmp_path / "unpacked"
    with pytest.raises(VmError, match="does not have the SHA-256"):
        unpack_debs([again], dest)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["debs"]  # nothing unpacked, no staging left


def test_deb_check_compares_content_not_name(tmp_path: Path) -> None:
    deb = tmp_path / "pkg_1_amd64.deb"
    deb.write_bytes(b"!<arch>\n genuine")
    expected = verify.DebHash(verify.sha256_of(deb), deb.stat().st_size)
    assert VerifiedDeb("pkg", deb, expected).check() == deb
    deb.write_bytes(b"!<arch>\n planted")          # same size, same name
    with pytest.raises(VmError, match="does not have the SHA-256"):
        VerifiedDeb("pkg", deb, expected).check()
    deb.unlink()
    deb.symlink_to(tmp_path / "elsewhere.deb")
    assert not verify.deb_matches(deb, expected)


def test_packages_index_parsing_matches_version_and_architecture() -> None:
    index = (b"Package: a\nVersion: 1\nArchitecture: amd64\nSHA256: " + b"1" * 64 + b"\nSize: 5\n\n"
             b"Package: a\nVersion: 2\nArchitecture: amd64\nSHA256: " + b"2" * 64 + b"\nSize: 6\n\n"
             b"Package: b\nVersion: 2\nArchitecture: arm64\nSHA256: " + b"3" * 64 + b"\nSize: 7\n")
    assert verify.package_hashes(index, {"a": "2"}) == {"a": verify.DebHash("2" * 64, 6)}
    with pytest.raises(VmError, match="no entry for b"):
        verify.package_hashes(index, {"b": "2"})   # only an arm64 build is listed


def make_fetched_tree(root: Path) -> Manifest:
    """A cache laid out as `vm fetch` leaves it, with the manifest's file hashes."""
    kdir = ensure_private_tree(root, "kernel", "7.9.0-test", "modules")
    (kdir.parent / "vmlinux").write_bytes(b"\x7fELF kernel")
    (kdir / "overlay.ko").write_bytes(b"module")
    sid = ensure_private_tree(root, "sid", "usr", "lib")
    (sid / "libc.so.6").write_bytes(b"libc")
    (sid / "libc.so").symlink_to("libc.so.6")
    manifest = Manifest(kernel_release="7.9.0-test", kernel_packages={}, vmlinux="kernel/7.9.0-test/vmlinux",
                        modules_dir="kernel/7.9.0-test/modules", sid_root="sid", sid_packages={},
                        mirror="test", fetch_seconds=0.0, fetched_at="now")
    manifest.files = verify.tree_hashes(root, manifest.verified_trees())
    save_manifest(root, manifest)
    return manifest


@pytest.mark.parametrize("tamper", ["change a library", "add a library", "remove a module",
                                    "redirect a symlink", "change the kernel"])
def test_unpacked_files_are_rechecked_before_every_boot(tmp_path: Path, tamper: str) -> None:
    root = ensure_private_tree(tmp_path, "vm")
    make_fetched_tree(root)
    assert load_manifest(root) is not None
    lib = root / "sid" / "usr" / "lib"
    {"change a library": lambda: (lib / "libc.so.6").write_bytes(b"evil"),
     "add a library": lambda: (lib / "libpreload.so").write_bytes(b"evil"),
     "remove a module": lambda: (root / "kernel" / "7.9.0-test" / "modules" / "overlay.ko").unlink(),
     "redirect a symlink": lambda: ((lib / "libc.so").unlink(), (lib / "libc.so").symlink_to("/tmp/evil")),
     "change the kernel": lambda: (root / "kernel" / "7.9.0-test" / "vmlinux").write_bytes(b"evil"),
     }[tamper]()
    with pytest.raises(UnsafeCacheError, match="vm fetch --refresh"):
        load_manifest(root)


def test_a_manifest_without_hashes_is_fetched_again(tmp_path: Path) -> None:
    """Caches from before the file hashes existed are not trusted: `vm fetch` redoes them."""
    root = ensure_private_tree(tmp_path, "vm")
    manifest = make_fetched_tree(root)
    files, manifest.files = manifest.files, {}
    save_manifest(root, manifest)
    assert load_manifest(root) is None
    manifest.files = files
    check_files(root, manifest)  # the tree itself is intact


@needs_root
@needs_setpriv
def test_debs_folder_planted_by_another_user_is_refused() -> None:
    with shared_dir() as shared:
        root = ensure_private_tree(shared / "cache", "vm")
        os.chmod(root.parent, 0o711)
        os.chmod(root, 0o1777)
        nobody_sh(f"mkdir {root}/debs && touch {root}/debs/zlib1g_1_amd64.deb")
        os.chmod(root, 0o700)
        with pytest.raises(UnsafeCacheError, match="owned by uid 65534"):
            ensure_private_tree(root, "debs")
