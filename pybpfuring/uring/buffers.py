"""Turning Python buffer objects into (address, length) pairs the kernel can use, safely.

The kernel reads or writes a request's memory at some later time, so the memory must neither move
nor be freed until the completion arrives. `pin()` returns, with the address, an object that holds a
buffer export on the original: while it is alive a bytearray cannot be resized (which would move it)
and an mmap cannot be closed. The ring keeps that object until the request's CQE has been reaped.
"""
from __future__ import annotations

import ctypes
from ctypes import c_char, c_int, c_ssize_t, c_void_p
from typing import Any


class _PyBuffer(ctypes.Structure):
    """CPython's Py_buffer (Include/pybuffer.h), used only to read the address of a read-only buffer."""

    _fields_ = [("buf", c_void_p), ("obj", c_void_p), ("len", c_ssize_t), ("itemsize", c_ssize_t),
                ("readonly", c_int), ("ndim", c_int), ("format", c_void_p), ("shape", c_void_p),
                ("strides", c_void_p), ("suboffsets", c_void_p), ("internal", c_void_p)]


_get_buffer = ctypes.pythonapi.PyObject_GetBuffer
_get_buffer.argtypes = [ctypes.py_object, ctypes.POINTER(_PyBuffer), c_int]
_get_buffer.restype = c_int
_release_buffer = ctypes.pythonapi.PyBuffer_Release
_release_buffer.argtypes = [ctypes.POINTER(_PyBuffer)]
_release_buffer.restype = None

_PyBUF_SIMPLE = 0


def _readonly_address(view: memoryview) -> int:
    """The data address of a contiguous memoryview (which itself keeps the export alive)."""
    pybuf = _PyBuffer()
    _get_buffer(view, ctypes.byref(pybuf), _PyBUF_SIMPLE)
    try:
        return pybuf.buf or 0
    finally:
        _release_buffer(ctypes.byref(pybuf))


def _bytes_data_offset() -> int | None:
    """Offset of a bytes object's data from id() on this CPython; None if our reckoning is wrong."""
    probe = b"pybpfuring-probe"
    offset = bytes.__basicsize__ - 1  # ob_sval[1] is the last member of PyBytesObject
    real = ctypes.cast(ctypes.c_char_p(probe), c_void_p).value
    return offset if real == id(probe) + offset else None


_BYTES_OFFSET = _bytes_data_offset()
_CTYPES_DATA = (ctypes.Array, ctypes.Structure, ctypes.Union, ctypes._SimpleCData)


def pin(obj: Any, *, writable: bool, what: str = "buffer") -> tuple[int, int, object]:
    """(address, nbytes, keepalive) of `obj`'s memory.

    `writable` says the kernel will write into it (reads, recv): read-only objects are refused then.
    Raises TypeError for objects without the buffer protocol and ValueError for non-contiguous ones.
    """
    kind = type(obj)
    if kind is bytearray and obj:
        # Hot path (benchmarks pass a preallocated bytearray): from_buffer holds the export itself.
        anchor = c_char.from_buffer(obj)
        return ctypes.addressof(anchor), len(obj), anchor
    if kind is bytes:
        if writable:
            raise TypeError(f"{what} is bytes, which is read-only, but the kernel writes into it: "
                            "pass a bytearray, memoryview of writable memory, mmap or ctypes array")
        if _BYTES_OFFSET is not None:
            return id(obj) + _BYTES_OFFSET, len(obj), obj
    if isinstance(obj, _CTYPES_DATA):
        return ctypes.addressof(obj), ctypes.sizeof(obj), obj
    return _pin_generic(obj, writable, what)


def _pin_generic(obj: Any, writable: bool, what: str) -> tuple[int, int, object]:
    try:
        view = memoryview(obj)
    except TypeError:
        raise TypeError(f"{what} must support the buffer protocol (bytearray, memoryview, mmap, "
                        f"array.array, ctypes array), not {type(obj).__name__}") from None
    if not view.c_contiguous:
        raise ValueError(f"{what} must be C-contiguous memory (slice with step 1)")
    nbytes = view.nbytes
    if view.readonly:
        if writable:
            raise TypeError(f"{what} is read-only, but the kernel writes into it")
        return (_readonly_address(view) if nbytes else 0), nbytes, view
    if nbytes == 0:
        return 0, 0, view
    anchor = c_char.from_buffer(view)  # any item format: from_buffer only needs writable + contiguous
    return ctypes.addressof(anchor), nbytes, anchor
