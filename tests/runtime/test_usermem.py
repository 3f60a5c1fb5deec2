"""User-memory copies never crash: bad, unmapped and read-only addresses are refused, with the
process_vm_* syscalls and with the /proc/self/maps fallback used where seccomp forbids them."""
from __future__ import annotations

import ctypes
import mmap

import pytest

from pybpfuring.runtime.backends.usermem import UserMemory, mapped_with

_libc = ctypes.CDLL(None)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                       ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]


@pytest.fixture
def read_only_page() -> object:
    addr = _libc.mmap(None, 8192, mmap.PROT_READ | mmap.PROT_WRITE,
                      mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
    ctypes.memmove(addr, b"readonly", 8)
    _libc.munmap(addr + 4096, 4096)  # the second page is a hole
    libc = ctypes.CDLL(None)
    libc.mprotect(ctypes.c_void_p(addr), ctypes.c_size_t(4096), mmap.PROT_READ)
    yield addr
    _libc.munmap(addr, 4096)


@pytest.mark.parametrize("use_maps", [False, True])
def test_copies_and_refusals(use_maps: bool, read_only_page: int) -> None:
    user = UserMemory(use_maps=use_maps)
    src = ctypes.create_string_buffer(b"abcdefgh", 8)
    dst = ctypes.create_string_buffer(8)
    assert user.read_into(ctypes.addressof(dst), ctypes.addressof(src), 8) and dst.raw == b"abcdefgh"
    assert user.write_from(ctypes.addressof(dst), ctypes.addressof(src), 4)
    # read-only memory: readable, never written
    assert user.read_into(ctypes.addressof(dst), read_only_page, 8) and dst.raw == b"readonly"
    assert not user.write_from(read_only_page, ctypes.addressof(src), 8)
    assert ctypes.string_at(read_only_page, 8) == b"readonly"
    # the hole after it, a range running into the hole, null and kernel addresses
    for bad, n in ((read_only_page + 4096, 1), (read_only_page + 4090, 8), (0, 8), (8, 1),
                   (0xFFFF_FFFF_FFFF_F000, 8)):
        assert not user.read_into(ctypes.addressof(dst), bad, n)
        assert not user.write_from(bad, ctypes.addressof(src), n)
    assert user.use_maps == use_maps


def test_mapped_with_follows_adjacent_mappings() -> None:
    buf = ctypes.create_string_buffer(1 << 20)
    assert mapped_with(ctypes.addressof(buf), 1 << 20, "w")
    assert not mapped_with(0, 1, "r")
