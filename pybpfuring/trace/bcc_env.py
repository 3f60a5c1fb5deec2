"""Finding bcc and the running kernel's headers, or saying exactly what is missing.

bcc (Debian's `python3-bpfcc` + `libbpfcc`) compiles its C programs at run time against the running
kernel's headers. Where they are looked for, in order:
  1. /lib/modules/$(uname -r)/build (the distribution's linux-headers package; bcc's own default);
  2. the headers `pybpfuring vm fetch` unpacked for the guest kernel (vm/headers.py), when this is
     that kernel (the 7.2 guest: no CONFIG_IKHEADERS, no /lib/modules/*/build), checked by SHA-256;
  3. /sys/kernel/kheaders.tar.xz (CONFIG_IKHEADERS; bcc unpacks it itself).
Debian's bcc is built for the system Python (/usr/bin/python3); its package is pure Python over
libbcc.so, so another Python 3 of the same machine imports it from the system's dist-packages
(added at the *end* of sys.path: nothing it holds can shadow the packages of this interpreter).
"""
from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from pybpfuring.errors import PyBpfUringError
from pybpfuring.vm.headers import cached_headers

SYSTEM_DIST_PACKAGES = "/usr/lib/python3/dist-packages"
KHEADERS = Path("/sys/kernel/kheaders.tar.xz")
APT_HINT = "apt-get install python3-bpfcc   (Debian 12: bcc 0.26 with libbpfcc)"


class TraceUnavailable(PyBpfUringError):
    """`pybpfuring trace` cannot run on this machine; the message says what is missing and how to
    get it (Ring.stats() gives the user-space side of the same picture without bcc)."""


@dataclass(frozen=True)
class BccSetup:
    bcc: ModuleType
    headers: str          # where the kernel headers come from (for the report)


def import_bcc() -> ModuleType:
    """The bcc Python package, from this interpreter's path or the system's dist-packages."""
    try:
        return importlib.import_module("bcc")
    except ImportError:
        pass
    if Path(SYSTEM_DIST_PACKAGES, "bcc", "__init__.py").is_file() and SYSTEM_DIST_PACKAGES not in sys.path:
        sys.path.append(SYSTEM_DIST_PACKAGES)
        try:
            return importlib.import_module("bcc")
        except (ImportError, OSError) as err:   # OSError: libbcc.so.0 missing or broken
            raise TraceUnavailable(f"pybpfuring trace: bcc is installed but does not load: {err}\n"
                                   f"hint: reinstall it: {APT_HINT}") from None
    raise TraceUnavailable("pybpfuring trace needs bcc (BPF Compiler Collection), which is not "
                           f"installed.\nhint: {APT_HINT}")


def find_headers(release: str | None = None) -> str:
    """Where bcc will find the running kernel's headers (setting BCC_KERNEL_SOURCE for the vm
    cache's tree), or TraceUnavailable saying what to install."""
    release = release or os.uname().release
    build = Path("/lib/modules") / release / "build"
    if (build / "include").is_dir():
        return str(build)
    if os.environ.get("BCC_KERNEL_SOURCE"):
        given = Path(os.environ["BCC_KERNEL_SOURCE"])
        if (given / "include").is_dir():
            return str(given)
        raise TraceUnavailable(f"pybpfuring trace: BCC_KERNEL_SOURCE={given} holds no include/ folder")
    tree = _vm_cache_headers(release)
    if tree is not None:
        os.environ["BCC_KERNEL_SOURCE"] = str(tree)
        return f"{tree} (pybpfuring vm fetch, SHA-256 checked)"
    if KHEADERS.is_file():
        return str(KHEADERS)
    raise TraceUnavailable(
        f"pybpfuring trace: bcc needs the headers of the running kernel {release}, and this machine "
        f"has none: no {build}, no {KHEADERS} (CONFIG_IKHEADERS), no headers of this release in the "
        "pybpfuring vm cache.\n"
        f"hint: install the headers of this exact kernel (Debian: apt-get install "
        f"linux-headers-{release}), or, on a kernel built with CONFIG_IKHEADERS=m, load its kheaders "
        "module (modprobe kheaders), or run the trace in the Linux 7.x guest, whose headers "
        "`pybpfuring vm fetch` obtains:\n"
        "  python3 -m pybpfuring vm fetch && python3 -m pybpfuring vm run -- "
        "python3 -m pybpfuring trace -- python3 examples/cp.py SRC DST\n"
        "Without bcc, Ring.stats() gives the per-ring counters from user space (docs/trace.md).")


def _vm_cache_headers(release: str) -> Path | None:
    try:
        return cached_headers(release)
    except PyBpfUringError as err:      # a tampered cache is an error, not a silent fallback
        raise TraceUnavailable(f"pybpfuring trace: {err}") from None
    except OSError:
        return None


def setup_bcc() -> BccSetup:
    """bcc and the headers it will compile against: checked before anything is attached."""
    problems: list[str] = []
    bcc = headers = None
    try:
        bcc = import_bcc()
    except TraceUnavailable as err:
        problems.append(str(err))
    try:
        headers = find_headers()
    except TraceUnavailable as err:
        problems.append(str(err))
    if problems or bcc is None or headers is None:
        raise TraceUnavailable("\n".join(problems))
    return BccSetup(bcc, headers)


def support_line() -> str:
    """One line for `pybpfuring info`: whether `pybpfuring trace` can run here, else why not."""
    try:
        setup = setup_bcc()
    except TraceUnavailable as err:
        first = str(err).splitlines()[0].removeprefix("pybpfuring trace: ")
        return f"trace: unavailable: {first}"
    return f"trace: available (bcc {getattr(setup.bcc, '__version__', '?')}, kernel headers {setup.headers})"
