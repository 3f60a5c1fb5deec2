"""The guest kernel's headers, for bcc (`pybpfuring trace`): fetched and verified like the kernel.

bcc compiles its programs against the running kernel's headers. The guest kernel (Debian sid's cloud
kernel, vm/kernel.py) has no CONFIG_IKHEADERS, so its headers come from sid's packages for exactly
that release: `linux-headers-<release>` (the flavour's generated headers and .config) and
`linux-headers-<abi>-common` (the rest), at the version of the kernel package itself. Each .deb is
checked against Debian's signed index (verify.py); they are unpacked and merged into one tree
(`headers/<release>/`), the layout bcc reads through BCC_KERNEL_SOURCE (it runs with that folder as
its working directory and adds `-I include -I arch/x86/include/generated ...`). The SHA-256 of every
file is recorded in `headers/<release>.json` and checked again before the tree is handed to bcc.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from pybpfuring.cache import UnsafeCacheError, read_checked
from pybpfuring.outputs import write_atomic
from pybpfuring.vm.apt import PrivateApt, host_mirror
from pybpfuring.vm.cache import cache_dir, cache_lock, load_manifest, subdir
from pybpfuring.vm.steps import VmError, run_step, timed_step
from pybpfuring.vm.verify import tree_hashes

UNPACK_TIMEOUT = 300.0
# What bcc never reads: the flavour's copy of vmlinux (BTF users read /sys/kernel/btf), the kbuild
# symlinks (scripts/, tools/ point into linux-kbuild, which bcc does not run) and Module.symvers.
_SKIP = {"vmlinux", "scripts", "tools", "Module.symvers", "Makefile", ".kernelvariables"}


def header_packages(release: str) -> list[str]:
    """sid's header packages for a kernel release such as 7.2.13+deb14-cloud-amd64."""
    abi = release.removesuffix("-cloud-amd64")
    return [f"linux-headers-{release}", f"linux-headers-{abi}-common"]


def headers_tree(release: str) -> Path:
    return cache_dir() / "headers" / release


def _record(release: str) -> Path:
    return cache_dir() / "headers" / f"{release}.json"


def cached_headers(release: str, verify: bool = True) -> Path | None:
    """The merged headers tree of `release` if `vm fetch` made it (re-hashed when `verify`: an
    altered file is an UnsafeCacheError, never silently used); None if it was never fetched."""
    tree, record = headers_tree(release), _record(release)
    if not record.is_file() or not tree.is_dir():
        return None
    try:
        files = json.loads(read_checked(record))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if verify:
        actual = tree_hashes(tree.parent, [release])
        if actual != files:
            bad = sorted(set(actual.items()) ^ set(files.items()))[0][0]
            raise UnsafeCacheError(tree.parent / bad, "the kernel headers differ from what `vm fetch` "
                                   "unpacked and verified; run `pybpfuring vm fetch --refresh`")
    return tree


def fetch_headers(refresh: bool = False) -> Path:
    """Obtain, verify and unpack the headers of the cached guest kernel (after `vm fetch`)."""
    root = cache_dir()
    manifest = load_manifest(root)
    if manifest is None:
        raise VmError("fetch kernel headers", "no guest kernel is cached", "run `pybpfuring vm fetch`")
    release = manifest.kernel_release
    with cache_lock(root):
        if not refresh and (tree := cached_headers(release)) is not None:
            return tree
        kernel_version = next(v for p, v in manifest.kernel_packages.items() if p.startswith("linux-binary-"))
        apt = PrivateApt(subdir(root, "apt"), host_mirror())
        pkgs = header_packages(release)
        try:
            versions = apt.versions(pkgs)
        except VmError:
            apt.update()          # no lists yet, or older ones: ask the mirror
            versions = apt.versions(pkgs)
        wrong = {p: v for p, v in versions.items() if v != kernel_version}
        if wrong:
            raise VmError("fetch kernel headers", f"sid has {wrong} but the cached kernel is "
                          f"{kernel_version}: the headers must be the kernel's exact version",
                          "run `pybpfuring vm fetch --refresh` to move both to sid's current kernel")
        with timed_step(f"download and unpack {', '.join(pkgs)}"):
            debs = apt.download(pkgs, subdir(root, "debs"))
            _unpack_merged(debs, release, subdir(root, "headers"))
        files = tree_hashes(root / "headers", [release])
        write_atomic(_record(release), json.dumps({"release": release, "packages": versions,
                                                   "files": files}, indent=1, sort_keys=True), 0o600)
        return headers_tree(release)


def _unpack_merged(debs: list, release: str, dest_parent: Path) -> None:
    """Unpack both packages and merge the flavour's part into the common tree, then swap it in."""
    staging = Path(tempfile.mkdtemp(prefix=".headers-", dir=dest_parent))
    try:
        for deb in debs:
            run_step(f"dpkg -x {deb.path.name}", ["dpkg-deb", "-x", deb.check(), staging], UNPACK_TIMEOUT)
        src = staging / "usr" / "src"
        flavour = src / f"linux-headers-{release}"
        common = next((p for p in src.iterdir() if p.name.endswith("-common")), None)
        if common is None or not flavour.is_dir():
            raise VmError("unpack kernel headers", f"the packages hold no {flavour.name} and *-common trees")
        _merge(flavour, common)
        target = dest_parent / release
        if target.exists():
            shutil.rmtree(target)
        os.rename(common, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _merge(flavour: Path, common: Path) -> None:
    for path in sorted(flavour.rglob("*")):
        rel = path.relative_to(flavour)
        if rel.parts[0] in _SKIP or path.is_symlink():
            continue
        out = common / rel
        if path.is_dir():
            out.mkdir(parents=True, exist_ok=True)
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, out)
    for name in ("scripts", "tools"):          # dangling links into linux-kbuild: bcc needs neither
        link = common / name
        if link.is_symlink():
            link.unlink()
