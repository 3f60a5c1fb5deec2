"""Obtain Debian sid's newest Linux 7.x cloud kernel (and sid user-space tools), extract, cache.

`ensure_artifacts()` is the one entry point: it returns the cached manifest when a complete fetch is
there (no network at all), else runs `fetch()`:
  1. private apt on the host's own mirror, suite sid (see apt.py); `apt-get update`
  2. pick the newest `linux-binary-<ver>+debN-cloud-amd64` with ver >= 7.1 (never a pinned ABI string)
  3. download it with `linux-modules-<abi>` (overlay.ko) and `linux-base-<abi>` (config, System.map)
  4. `dpkg -x`; vmlinux = the zstd stream inside vmlinuz that decompresses to an ELF (PVH entry)
  5. download and unpack sid's virtiofsd, bpftool, libbpf1, libbpf-dev and their shared libraries into
     one directory; they run with sid's own ld.so (the host's glibc is older than they need)
"""
from __future__ import annotations

import datetime
import lzma
import os
import re
import shutil
import struct
import subprocess
import tempfile
import time
from pathlib import Path

from pybpfuring.vm.apt import PrivateApt, VerifiedDeb, host_mirror
from pybpfuring.vm.cache import Manifest, cache_dir, cache_lock, load_manifest, save_manifest, subdir
from pybpfuring.vm.verify import tree_hashes
from pybpfuring.vm.steps import VmError, progress, run_step, timed_step

MIN_KERNEL = (7, 1)
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
EXTRACT_TIMEOUT = 180.0
# Modules the guest's initramfs loads (the rest of what it needs is built into the cloud kernel).
GUEST_MODULES = ("kernel/fs/overlayfs/overlay.ko",)
# sid user space unpacked side by side: the virtio-fs daemon that shares the host root with the guest,
# and the BPF tools for interoperability checks, with every shared library they load.
SID_PACKAGES = ["virtiofsd", "bpftool", "libbpf1", "libbpf-dev", "libc6", "libgcc-s1", "libcap-ng0",
                "libseccomp2", "libelf1t64", "libzstd1", "zlib1g", "libcap2", "libssl3t64"]
SID_BINARIES = ("usr/libexec/virtiofsd", "usr/sbin/bpftool")
SID_LDSO = "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
SID_LIBDIR = "usr/lib/x86_64-linux-gnu"
_KERNEL_PKG = re.compile(r"^linux-binary-((\d+)\.(\d+)\.(\d+)\+deb\d+)-cloud-amd64$")


def newest_kernel_package(names: list[str]) -> tuple[str, str] | None:
    """(package, kernel release) of the newest signed cloud kernel >= 7.1 among apt package names."""
    best: tuple[tuple[int, int, int], str, str] | None = None
    for name in names:
        m = _KERNEL_PKG.match(name)
        if not m:
            continue
        ver = (int(m.group(2)), int(m.group(3)), int(m.group(4)))
        if ver[:2] < MIN_KERNEL:
            continue
        if best is None or ver > best[0]:
            best = (ver, name, f"{m.group(1)}-cloud-amd64")
    return (best[1], best[2]) if best else None


def elf_image_size(data: bytes) -> int:
    """Bytes an ELF64 file spans according to its own headers (0 if `data` is not a whole ELF64)."""
    if len(data) < 64 or data[:4] != b"\x7fELF" or data[4] != 2:
        return 0
    phoff, shoff = struct.unpack_from("<QQ", data, 0x20)
    phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", data, 0x36)
    end = max(phoff + phentsize * phnum, shoff + shentsize * shnum)
    if end > len(data):
        return 0
    for i in range(phnum):
        p_offset, p_filesz = struct.unpack_from("<Q16xQ", data, phoff + i * phentsize + 8)
        end = max(end, p_offset + p_filesz)
    return end if end <= len(data) else 0


def extract_vmlinux(vmlinuz: Path, dest: Path) -> None:
    """Write the uncompressed ELF kernel hidden in a bzImage as a zstd stream (booted via PVH)."""
    data = vmlinuz.read_bytes()
    offset = data.find(ZSTD_MAGIC)
    while offset >= 0:
        out = zstd_decompress(data[offset:])
        if elf_image_size(out):
            dest.write_bytes(out)
            return
        offset = data.find(ZSTD_MAGIC, offset + 1)
    raise VmError("extract vmlinux", f"{vmlinuz} holds no zstd stream that decompresses to an ELF kernel")


def zstd_decompress(stream: bytes) -> bytes:
    """What zstd decompresses from the first frame of `stream`.

    zstd exits 1 when unrelated bytes follow the frame (the rest of a bzImage), yet writes the frame;
    the caller checks the result (an ELF of consistent size), not the exit status.
    """
    try:
        proc = subprocess.run(["zstd", "-dcq"], input=stream, capture_output=True,
                              timeout=EXTRACT_TIMEOUT, check=False)
    except FileNotFoundError:
        raise VmError("extract vmlinux", "the program 'zstd' is not installed",
                      "apt-get install zstd") from None
    except subprocess.TimeoutExpired:
        raise VmError("extract vmlinux", f"zstd did not finish within {EXTRACT_TIMEOUT:.0f} s") from None
    return proc.stdout


def unpack_debs(debs: list[VerifiedDeb], dest: Path) -> None:
    """Unpack each .deb (re-checked against the signed index right before) into a fresh `dest`.

    Unpacked beside `dest` and swapped in by rename, so a guest another session starts meanwhile sees
    the old tree or the new one, never a half-unpacked or missing one."""
    subdir(dest.parent)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-new-", dir=dest.parent))
    old = None
    try:
        for deb in debs:
            path = deb.check()
            run_step(f"dpkg -x {path.name}", ["dpkg-deb", "-x", path, staging], EXTRACT_TIMEOUT)
        if dest.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}-old-", dir=dest.parent))
            os.rename(dest, old / dest.name)
        os.rename(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def sid_command(sid_root: Path, binary: str) -> list[str]:
    """argv prefix that runs a sid binary with sid's own dynamic loader and libraries."""
    return [str(sid_root / SID_LDSO), "--library-path", str(sid_root / SID_LIBDIR), str(sid_root / binary)]


def _check_sid_binaries(sid_root: Path) -> None:
    """Every sid binary we rely on must find all its libraries among the unpacked ones."""
    for binary in SID_BINARIES:
        proc = run_step(f"check {binary}", [*sid_command(sid_root, binary)[:3], "--list",
                                            str(sid_root / binary)], EXTRACT_TIMEOUT)
        missing = [ln.strip() for ln in proc.stdout.decode().splitlines() if "not found" in ln]
        if missing:
            raise VmError("unpack sid user space", f"{binary} needs {missing[0]}",
                          "add the Debian package that ships it to SID_PACKAGES")


def _fetch_kernel(apt: PrivateApt, root: Path) -> tuple[str, dict[str, str], Path, Path]:
    names = apt.package_names("linux-binary-")
    chosen = newest_kernel_package(names)
    if chosen is None:
        raise VmError("select kernel", f"sid has no linux-binary-*-cloud-amd64 package >= "
                      f"{MIN_KERNEL[0]}.{MIN_KERNEL[1]} (saw {len(names)} linux-binary packages)")
    binary_pkg, release = chosen
    abi = release.removesuffix("-cloud-amd64")
    pkgs = [binary_pkg, f"linux-modules-{abi}-cloud-amd64", f"linux-base-{abi}-cloud-amd64"]
    progress(f"newest sid cloud kernel: {release}")
    with timed_step(f"download {', '.join(pkgs)}"):
        versions = apt.versions(pkgs)
        debs = apt.download(pkgs, subdir(root, "debs"))
    kdir = subdir(root, "kernel", release)
    with timed_step("extract vmlinux and modules"):
        unpack_debs(debs, kdir / "pkg")
        moddir = kdir / "pkg" / "usr" / "lib" / "modules" / release
        extract_vmlinux(moddir / "vmlinuz", kdir / "vmlinux")
        for name in ("config", "System.map"):
            if (moddir / name).is_file():
                shutil.copy(moddir / name, kdir / name)
        _decompress_modules(moddir, kdir / "modules")
        shutil.rmtree(kdir / "pkg")  # the modules tree is 100+ MiB; keep only what the guest loads
    return release, versions, kdir / "vmlinux", kdir / "modules"


def _decompress_modules(moddir: Path, dest: Path) -> None:
    subdir(dest.parent, dest.name)
    for rel in GUEST_MODULES:
        src = next(iter(moddir.glob(rel + "*")), None)
        if src is None:
            raise VmError("extract modules", f"the kernel package has no {rel}")
        data = src.read_bytes()
        if src.suffix == ".xz":
            data = lzma.decompress(data)
        elif src.suffix == ".zst":
            data = zstd_decompress(data)
        (dest / Path(rel).name).write_bytes(data)


def fetch(refresh: bool = False) -> Manifest:
    """Obtain everything the guest needs through apt (cached unless `refresh`)."""
    root = cache_dir()
    with cache_lock(root):
        cached = None if refresh else load_manifest(root)  # --refresh replaces even a damaged cache
        if cached is not None:
            return cached
        start = time.monotonic()
        mirror = host_mirror()
        apt = PrivateApt(subdir(root, "apt"), mirror)
        with timed_step(f"apt-get update (sid on the host's mirror {mirror.uri})"):
            apt.update()
        release, kpkgs, vmlinux, modules = _fetch_kernel(apt, root)
        with timed_step("download and unpack sid virtiofsd, bpftool, libbpf"):
            sid_versions = apt.versions(SID_PACKAGES)
            debs = apt.download(SID_PACKAGES, subdir(root, "debs"))
            unpack_debs(debs, root / "sid")
            _check_sid_binaries(root / "sid")
        manifest = Manifest(
            kernel_release=release, kernel_packages=kpkgs, vmlinux=str(vmlinux.relative_to(root)),
            modules_dir=str(modules.relative_to(root)), sid_root="sid", sid_packages=sid_versions,
            mirror=mirror.uri, fetch_seconds=round(time.monotonic() - start, 1),
            fetched_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            notes=["sid's bpftool/libbpf/virtiofsd need glibc >= 2.38; they run with sid's own ld.so "
                   "(see sid_command)"])
        # What the guest runs, as unpacked from the verified .debs: re-hashed before every boot.
        manifest.files = tree_hashes(root, manifest.verified_trees())
        save_manifest(root, manifest)
        progress(f"fetched kernel {release} in {manifest.fetch_seconds:.1f} s; cache {root}")
        return manifest


def ensure_artifacts() -> Manifest:
    """The cached artefacts, fetching them first if the cache is empty or incomplete."""
    cached = load_manifest(cache_dir())
    return cached if cached is not None else fetch()
