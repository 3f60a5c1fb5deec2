"""Build hook for setuptools: the native event loop as a CPython extension module.

The metadata lives in pyproject.toml; this file only declares the extension, so that a wheel
(`python -m build`) or an install compiles runtime/backends/native/*.c once, at build time. The extension is
optional: where no C compiler exists at build time the package still installs and Ring picks the
"jit" engine (pybpfuring info says why). At run time the library is loaded with ctypes
(runtime/backends/native/build.py); the module init in module.c only makes it a valid extension module.
"""
import hashlib
from pathlib import Path

from setuptools import Extension, setup

NATIVE = "pybpfuring/runtime/backends/native/"
# Same definition as runtime/backends/native/build.py's source_hash(): name and bytes of each file, in order.
HASHED = ("core.c", "helpers.c", "hmap.c", "api.c", "nl.h")
SOURCE_HASH = hashlib.sha256(b"".join(name.encode() + Path(NATIVE + name).read_bytes()
                                      for name in HASHED)).hexdigest()[:16]

setup(ext_modules=[Extension(
    "pybpfuring.runtime.backends.native._loop",
    sources=[NATIVE + name for name in ("core.c", "helpers.c", "hmap.c", "api.c", "module.c")],
    depends=[NATIVE + "nl.h"],
    extra_compile_args=["-O2", "-std=gnu11", "-fno-strict-aliasing", "-fvisibility=default"],
    define_macros=[("NL_SOURCE_HASH", f'"{SOURCE_HASH}"')],
    optional=True,
)])
