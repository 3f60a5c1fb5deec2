"""Checks that run inside the Linux 7.x QEMU guest: the kernel has what pybpfuring's kernel backend needs.

On the host these are skipped; tests/guest/test_vm.py boots the guest, runs them there and reports
each one's result as a host-side test. They can also run directly on a real machine with Linux >= 7.1
(see docs/vm.md): `PYBPFURING_IN_GUEST=1 PYBPFURING_SCRATCH=<an ext4 dir> pytest tests/guest`.
"""
from __future__ import annotations

import ctypes
import errno
import json
import mmap
import os
import re
import struct
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.in_guest

BTF_PATH = Path("/sys/kernel/btf/vmlinux")
SYS_io_uring_setup, SYS_io_uring_enter, SYS_bpf = 425, 426, 321
IORING_OFF_SQ_RING, IORING_OFF_CQ_RING, IORING_OFF_SQES = 0, 0x8000000, 0x10000000
IORING_ENTER_GETEVENTS = 1
BPF_PROG_LOAD, BPF_OBJ_PIN, BPF_PROG_TEST_RUN = 5, 6, 10
BPF_PROG_TYPE_SOCKET_FILTER = 1

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _syscall(nr: int, *args: int) -> int:
    ret = _libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"syscall {nr}: {os.strerror(err)}")
    return ret


def test_kernel_is_at_least_7_1() -> None:
    release = os.uname().release
    major, minor = (int(x) for x in re.match(r"(\d+)\.(\d+)", release).groups())
    assert (major, minor) >= (7, 1), f"guest kernel {release} predates io_uring BPF ops (7.1)"


def test_btf_string_table_names_io_uring_bpf_ops() -> None:
    data = BTF_PATH.read_bytes()
    magic, _version, _flags, hdr_len = struct.unpack_from("<HBBI", data, 0)
    assert magic == 0xEB9F, "not a BTF blob"
    _type_off, _type_len, str_off, str_len = struct.unpack_from("<IIII", data, 8)
    strings = data[hdr_len + str_off: hdr_len + str_off + str_len]
    assert b"\0io_uring_bpf_ops\0" in strings


def test_btf_reader_finds_the_struct_ops_type_and_its_members() -> None:
    btf_mod = pytest.importorskip("pybpfuring.loader.btf")
    btf = btf_mod.vmlinux_btf(str(BTF_PATH))
    ids = btf.find("io_uring_bpf_ops")
    assert ids, "io_uring_bpf_ops is not a BTF type name"
    struct_ids = [i for i in ids if btf[i].kind_name == "STRUCT"]
    assert struct_ids, f"io_uring_bpf_ops is not a STRUCT (kinds {[btf[i].kind_name for i in ids]})"
    members = {m.name for m in btf.members(struct_ids[0])}
    assert {"loop_step", "ring_fd"} <= members, f"members: {sorted(members)}"


def test_kallsyms_lists_the_io_uring_kfuncs() -> None:
    names = {line.split()[2] for line in Path("/proc/kallsyms").read_text().splitlines()
             if len(line.split()) >= 3}
    assert "bpf_io_uring_submit_sqes" in names
    assert "bpf_io_uring_get_region" in names


def _nop_round_trip(user_data: int) -> tuple[int, int]:
    """Set up a ring, submit one NOP, wait for it: (user_data, res) of its CQE. Raw syscalls only."""
    params = bytearray(120)
    pbuf = (ctypes.c_char * len(params)).from_buffer(params)
    fd = _syscall(SYS_io_uring_setup, 4, ctypes.addressof(pbuf))
    try:
        sq_entries, cq_entries = struct.unpack_from("<II", params, 0)
        sq_head, sq_tail, sq_mask, _, _, _, sq_array = struct.unpack_from("<7I", params, 40)
        cq_head, cq_tail, cq_mask, _, _, cqes = struct.unpack_from("<6I", params, 80)
        sq = mmap.mmap(fd, sq_array + sq_entries * 4, offset=IORING_OFF_SQ_RING)
        cq = mmap.mmap(fd, cqes + cq_entries * 16, offset=IORING_OFF_CQ_RING)
        sqes = mmap.mmap(fd, sq_entries * 64, offset=IORING_OFF_SQES)
        tail = struct.unpack_from("<I", sq, sq_tail)[0]
        idx = tail & struct.unpack_from("<I", sq, sq_mask)[0]
        sqes[idx * 64:(idx + 1) * 64] = bytes(64)           # opcode 0 = IORING_OP_NOP
        struct.pack_into("<Q", sqes, idx * 64 + 32, user_data)
        struct.pack_into("<I", sq, sq_array + idx * 4, idx)
        struct.pack_into("<I", sq, sq_tail, tail + 1)
        assert _syscall(SYS_io_uring_enter, fd, 1, 1, IORING_ENTER_GETEVENTS, 0, 0) == 1
        head = struct.unpack_from("<I", cq, cq_head)[0]
        assert struct.unpack_from("<I", cq, cq_tail)[0] == head + 1
        slot = cqes + (head & struct.unpack_from("<I", cq, cq_mask)[0]) * 16
        got_user_data, res = struct.unpack_from("<Qi", cq, slot)
        struct.pack_into("<I", cq, cq_head, head + 1)
        for m in (sq, cq, sqes):
            m.close()
        return got_user_data, res
    finally:
        os.close(fd)


def test_io_uring_nop_round_trip() -> None:
    assert _nop_round_trip(0xC0FFEE_1234) == (0xC0FFEE_1234, 0)


def _load_socket_filter(ret: int, name: bytes) -> int:
    insns = struct.pack("<BBhi", 0xB7, 0, 0, ret) + struct.pack("<BBhi", 0x95, 0, 0, 0)  # r0 = ret; exit
    insn_buf = ctypes.create_string_buffer(insns)
    license_buf = ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(4096)
    attr = bytearray(160)
    struct.pack_into("<IIQQIIQ", attr, 0, BPF_PROG_TYPE_SOCKET_FILTER, 2, ctypes.addressof(insn_buf),
                     ctypes.addressof(license_buf), 1, len(log), ctypes.addressof(log))
    attr[48:48 + len(name)] = name
    abuf = (ctypes.c_char * len(attr)).from_buffer(attr)
    # The verifier returns EAGAIN when signal_pending() is true, which io_uring task work
    # (TIF_NOTIFY_SIGNAL, e.g. after a ring was closed) makes true; libbpf retries 5 times, so do we.
    for attempt in range(5):
        try:
            return _syscall(SYS_bpf, BPF_PROG_LOAD, ctypes.addressof(abuf), len(attr))
        except OSError as err:
            if err.errno != errno.EAGAIN or attempt == 4:
                raise AssertionError(f"BPF_PROG_LOAD failed: {err}; verifier log: "
                                     f"{log.value.decode()}") from None
    raise AssertionError("unreachable")


def test_bpf_prog_load_and_test_run_of_a_socket_filter() -> None:
    fd = _load_socket_filter(42, b"pbu_ret42")
    try:
        packet = ctypes.create_string_buffer(bytes(range(64)))
        attr = bytearray(160)
        struct.pack_into("<IIIIQQII", attr, 0, fd, 0, 64, 0, ctypes.addressof(packet), 0, 1, 0)
        abuf = (ctypes.c_char * len(attr)).from_buffer(attr)
        _syscall(SYS_bpf, BPF_PROG_TEST_RUN, ctypes.addressof(abuf), len(attr))
        assert struct.unpack_from("<I", attr, 4)[0] == 42  # retval: the program's r0
    finally:
        os.close(fd)


def test_scratch_is_a_real_ext4_file_system() -> None:
    scratch = os.environ.get("PYBPFURING_SCRATCH", "/scratch")
    mounts = {fields[1]: fields[2] for fields in
              (line.split() for line in Path("/proc/mounts").read_text().splitlines())}
    assert mounts.get(scratch) == "ext4", f"{scratch} is {mounts.get(scratch, 'not a mount point')}"
    probe = Path(scratch) / "pbu-probe"
    probe.write_bytes(b"x" * 8192)
    assert probe.read_bytes() == b"x" * 8192
    probe.unlink()


def _sid_bpftool() -> list[str]:
    vm = pytest.importorskip("pybpfuring.vm")
    from pybpfuring.vm.cache import cache_dir  # the same cache the host fetched into (runner passes its root)
    sid = cache_dir() / "sid"
    if not (sid / "usr" / "sbin" / "bpftool").is_file():
        pytest.skip("sid's bpftool is not in the pybpfuring cache (run `pybpfuring vm fetch`)")
    return vm.sid_command(sid, "usr/sbin/bpftool")


def test_sid_bpftool_sees_a_program_we_loaded_and_pinned() -> None:
    bpftool = _sid_bpftool()
    fd = _load_socket_filter(7, b"pbu_pinned")
    pin = Path("/sys/fs/bpf/pbu_pinned")
    path = ctypes.create_string_buffer(str(pin).encode())
    attr = bytearray(128)
    struct.pack_into("<QI", attr, 0, ctypes.addressof(path), fd)
    abuf = (ctypes.c_char * len(attr)).from_buffer(attr)
    try:
        _syscall(SYS_bpf, BPF_OBJ_PIN, ctypes.addressof(abuf), len(attr))
        out = subprocess.run([*bpftool, "-j", "prog", "show", "pinned", str(pin)], capture_output=True,
                             text=True, timeout=120, check=True).stdout
        info = json.loads(out)
        assert info["type"] == "socket_filter" and info["name"] == "pbu_pinned"
    finally:
        pin.unlink(missing_ok=True)
        os.close(fd)
