"""Load the native loop (`core.c`, `helpers.c`, `hmap.c`, `api.c`, `nl.h`) with ctypes.

An installed package has it as the extension module `pybpfuring.runtime.backends.native._loop`, compiled when
the package was built (setup.py): no C compiler is needed at run time. Its source hash must match the
sources beside it (a checkout where the C files changed after `build_ext --inplace` has a stale one).
Without a usable extension (a source checkout), the loop is built with the system C compiler at
first use. That shared object goes to a private cache folder outside the repository (`native/` under
`$PYBPFURING_CACHE`, default `~/.cache/pybpfuring`; see pybpfuring/cache.py), stored under a key hashed
from the sources, the compiler and its flags, so an edit or another compiler builds a new one. It is
stored content-addressed (`cache.store_verified`) and its hash is checked again before every load:
we dlopen it as root, so a folder or file another user could write is refused, never loaded.
"""
from __future__ import annotations

import ctypes
import hashlib
import importlib.machinery
import os
import shutil
import subprocess
from pathlib import Path

from pybpfuring import cache
from pybpfuring.errors import PyBpfUringError
from pybpfuring.runtime.backends.usermem import UserMemory
from pybpfuring.runtime.engine import jit_abi as J

HERE = Path(__file__).resolve().parent
SOURCES = [HERE / name for name in ("core.c", "helpers.c", "hmap.c", "api.c")]
HEADERS = [HERE / "nl.h"]
CFLAGS = ["-O2", "-std=gnu11", "-shared", "-fPIC", "-fno-strict-aliasing", "-Wall"]
_U64, _U32, _I32, _I64, _P = ctypes.c_uint64, ctypes.c_uint32, ctypes.c_int32, ctypes.c_int64, ctypes.c_void_p

# The C files hard-code the JIT's context layout: refuse to load it if the ABI moved.
_ABI = (J.CTX_STATUS, J.CTX_PC, J.CTX_ADDR, J.CTX_SIZE, J.CTX_MODE, J.CTX_BUDGET, J.CTX_REGIONS,
        J.CTX_NREGIONS, J.CTX_AUX, J.CTX_HINT, J.CTX_HOST, J.CTX_FIELDS, J.ST_MEMORY, J.ST_HELPER,
        J.MODE_READ, J.MODE_WRITE)
_ABI_EXPECTED = (0, 1, 2, 3, 4, 5, 8, 9, 14, 15, 16, 17, 1, 6, 0, 1)


class NativeUnavailable(PyBpfUringError):
    """The native event loop cannot be built or loaded here (the message says why)."""


def cache_dir() -> Path:
    """The checked private folder of built loops (cache.private_dir)."""
    try:
        return cache.private_dir("native")
    except cache.CacheUnwritable as exc:
        raise NativeUnavailable(str(exc)) from None
    # cache.UnsafeCacheError propagates: a planted folder is an error to report, not a reason to
    # fall back quietly to another engine.


def _compiler() -> str:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return name
    raise NativeUnavailable("no C compiler found (set CC, or install gcc: apt-get install gcc)")


def _compiler_id(cc: str) -> str:
    try:
        out = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NativeUnavailable(f"the C compiler {cc!r} does not run: {exc}") from None
    return out.stdout.splitlines()[0] if out.stdout else cc


def source_hash() -> str:
    """The hash setup.py stamps into the extension (same definition there: name + bytes per file)."""
    files = [HERE / name for name in ("core.c", "helpers.c", "hmap.c", "api.c", "nl.h")]
    return hashlib.sha256(b"".join(p.name.encode() + p.read_bytes() for p in files)).hexdigest()[:16]


def built_extension() -> Path | None:
    """The extension module built with the package, if it is here and matches the sources."""
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = HERE / f"_loop{suffix}"
        if not path.is_file():
            continue
        try:
            stamp = ctypes.CDLL(str(path)).nl_source_hash
        except (OSError, AttributeError):
            return None
        stamp.restype = ctypes.c_char_p
        have_sources = all((HERE / n).is_file() for n in ("core.c", "helpers.c", "hmap.c", "api.c", "nl.h"))
        if not have_sources or stamp().decode() == source_hash():
            return path
    return None


def build() -> Path:
    """The path of the built shared object (compiling it if this source/compiler has none yet)."""
    if _ABI != _ABI_EXPECTED:
        raise NativeUnavailable("the JIT's context layout changed; update nl.h's CTX_* constants")
    source = b"".join(p.name.encode() + p.read_bytes() for p in SOURCES + HEADERS)
    cc = _compiler()
    key = hashlib.sha256(source + _compiler_id(cc).encode() + " ".join(CFLAGS).encode()).hexdigest()[:16]
    directory = cache_dir()
    name = f"loop-{key}.so"
    built = cache.verified_path(directory, name)  # UnsafeCacheError if planted or altered
    if built is not None:
        return built
    tmp = cache.new_temp_file(directory, ".so")
    try:
        result = subprocess.run([cc, *CFLAGS, "-o", str(tmp), *map(str, SOURCES)], capture_output=True,
                                text=True, timeout=120)
        if result.returncode:
            raise NativeUnavailable(f"{cc} failed to build the native loop:\n{result.stderr.strip()}")
        return cache.store_verified(directory, name, tmp, mode=0o700)
    except subprocess.TimeoutExpired:
        raise NativeUnavailable(f"{cc} took over 120 s to build the native loop") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _declare(lib: ctypes.CDLL) -> None:
    sig = {
        "nl_new": (_P, [ctypes.c_int, _U64, _U64, _U64, _U32, _U32, _U64, _U64, _U64, _U32, _U64, _P, _U32]),
        "nl_free": (None, [_P]),
        "nl_set_engine": (None, [_P, _P, _U64, _U64, _P]),
        "nl_set_programs": (None, [_P, _P, _P, _U32]),
        "nl_set_maps": (None, [_P, _P, _U32]),
        "nl_helper": (_U64, [_U32]),
        "nl_run": (ctypes.c_int, [_P, _I32, _U64, _I64, _U64]),
        "nl_set_run_budget": (None, [_P, _U64]),
        "nl_set_known": (None, [_P, _P, _U32]),
        "nl_copy_counts": (None, [_P, _P]),
        "nl_attempts": (_U64, [_P]),
        "nl_pop_event": (ctypes.c_int, [_P, _P]),
        "nl_deferred": (_U32, [_P, ctypes.POINTER(_P)]),
        "nl_error": (ctypes.c_int, [_P]),
        "nl_kernel_sqe": (ctypes.c_int, [_P, ctypes.c_char_p, _U32, _U64, _U32, _U64, ctypes.c_int, _I32, _P]),
        "nl_post": (ctypes.c_int, [_P, _U32, _U64, _I32, _U32]),
        "nl_add_request": (_U32, [_P, _U32, _U64, _U32, _U32, _U64, _I32]),
        "nl_complete": (None, [_P, _U32, _I32]),
        "nl_wait": (None, [_P, _U32, _U32, _U32]),
        "nl_request": (None, [_P, _U32, _P]),
        "nl_cq_ready": (_U64, [_P, _U32]),
        "nl_cq_take": (ctypes.c_int, [_P, _U32, _P, ctypes.c_int]),
        "nl_cq_info": (None, [_P, _U32, _P]),
        "nl_cq_waiters": (_U32, [_P, _U32, _P, _U32]),
        "nl_counters": (None, [_P, _P]),
        "nl_pinned_tags": (_U32, [_P, _P, _U32]),
        "nl_current_prog": (_U32, [_P]),
        "nl_flush": (ctypes.c_int, [_P]),
        "nl_hmap_new": (_P, [_U32, _U32, _U32, _U64, _U64]),
        "nl_hmap_free": (None, [_P]),
        "nl_hmap_lookup": (_U64, [_P, ctypes.c_char_p]),
        "nl_hmap_update": (_I64, [_P, ctypes.c_char_p, ctypes.c_char_p, _U64]),
        "nl_hmap_delete": (_I64, [_P, ctypes.c_char_p]),
        "nl_hmap_slots": (_U32, [_P, _P, _U32]),
        "nl_hmap_key": (_P, [_P, _U32]),
        "nl_hmap_count": (_U32, [_P]),
    }
    for name, (restype, argtypes) in sig.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes


_LIB: ctypes.CDLL | None = None
_REASON: str | None = None


def load() -> ctypes.CDLL:
    """The loaded library (built on first use); NativeUnavailable says why it cannot be."""
    global _LIB, _REASON
    if _LIB is not None:
        return _LIB
    if _REASON is not None:
        raise NativeUnavailable(_REASON)
    try:
        _check_process_vm()
        lib = ctypes.CDLL(str(built_extension() or build()))
        _declare(lib)
    except NativeUnavailable as exc:
        _REASON = str(exc)
        raise
    except (OSError, AttributeError) as exc:  # AttributeError: a symbol missing from the library
        _REASON = f"cannot load the native event loop: {exc}"
        raise NativeUnavailable(_REASON) from None
    _LIB = lib
    return lib


def _check_process_vm() -> None:
    """copy_{from,to}_user use process_vm_readv/writev; a seccomp policy may forbid them (the Python
    helpers then fall back to /proc/self/maps, the native ones cannot)."""
    src, dst = ctypes.c_uint64(0x5EED), ctypes.c_uint64(0)
    user = UserMemory()
    if not user.read_into(ctypes.addressof(dst), ctypes.addressof(src), 8) or user.use_maps:
        raise NativeUnavailable("process_vm_readv on this process is not permitted here")


def unavailable_reason() -> str | None:
    """None if the native loop can run here, else why not."""
    try:
        load()
    except NativeUnavailable as exc:
        return str(exc)
    return None
