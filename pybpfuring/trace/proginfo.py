"""Run counts of io_uring struct_ops programs (the kernel backend's scheduler) from bpf_prog_info.

The kernel counts a program's runs and run time only while BPF statistics are on: BPF_ENABLE_STATS
turns them on for as long as its fd stays open (no sysctl left behind). Programs are every loaded
struct_ops program of `io_uring_bpf_ops`, or with a pid those the process holds an fd on, or on one of
whose maps (/proc/PID/fdinfo: `prog_id`, `map_id`); an fd taken on each one (BPF_PROG_GET_FD_BY_ID)
keeps it readable after the process closed it, so the last interval still has its final count.
"""
from __future__ import annotations

import ctypes
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from pybpfuring.loader.btf import STRUCT, vmlinux_btf
from pybpfuring.loader.syscalls import (OBJ_GET_INFO_BY_FD, BpfSyscallError, FdAttr, GetFdByIdAttr,
                                             InfoByFdAttr, bpf, close_fd, obj_get_info_by_fd)

BPF_PROG_GET_NEXT_ID = 11
BPF_PROG_GET_FD_BY_ID = 13
BPF_ENABLE_STATS = 32
BPF_STATS_RUN_TIME = 0
BPF_PROG_TYPE_STRUCT_OPS = 27
# struct bpf_prog_info (include/uapi/linux/bpf.h): the fields read here, by byte offset
_TYPE, _ID, _NR_MAP_IDS, _NAME, _RUN_TIME_NS, _RUN_CNT, _ATTACH_BTF_ID = 0, 4, 52, 64, 192, 200, 224
INFO_SIZE = 232


@dataclass
class ProgRuns:
    prog_id: int
    name: str
    run_cnt: int
    run_time_ns: int
    unloaded: bool = False     # counted by the unload probe when the kernel freed it (unload.py)


def enable_stats() -> int | None:
    """An fd that keeps run counting on (closed by `close_fd`), or None where the kernel refuses."""
    try:
        return bpf(BPF_ENABLE_STATS, FdAttr(fd=BPF_STATS_RUN_TIME))
    except BpfSyscallError:
        return None


def _info(fd: int) -> bytes:
    return obj_get_info_by_fd(fd, INFO_SIZE).ljust(INFO_SIZE, b"\0")


def ops_type_id() -> int | None:
    """BTF id of `io_uring_bpf_ops` (a struct_ops program's attach_btf_id names its struct)."""
    try:
        ids = vmlinux_btf().find("io_uring_bpf_ops", STRUCT)
        return ids[0] if ids else None
    except (OSError, ValueError, ImportError):
        return None


class StructOpsWatch:
    """The io_uring struct_ops programs of a pid (or of the machine) and their run counts."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self.fds: dict[int, int] = {}          # prog id -> our fd on it
        self.skipped: set[int] = set()         # ids seen that are not io_uring struct_ops programs
        self.ops_id = ops_type_id()
        self.stats_fd = enable_stats()

    def _all_ids(self) -> list[int]:
        ids, cur = [], 0
        while True:
            attr = GetFdByIdAttr(id=cur)
            try:
                bpf(BPF_PROG_GET_NEXT_ID, attr)
            except BpfSyscallError:
                return ids
            cur = attr.next_id
            ids.append(cur)

    def scan(self) -> None:
        """Take an fd on every new io_uring struct_ops program of the pid (or of the machine).

        A program belongs to the pid if the pid holds an fd on it or on one of its maps (fdinfo
        prog_id / map_id): a loader may close the program's own fd once the struct_ops map holds it."""
        owned: tuple[set[int], set[int]] | None = None
        for prog_id in self._all_ids():
            if prog_id in self.fds or prog_id in self.skipped:
                continue
            try:
                fd = bpf(BPF_PROG_GET_FD_BY_ID, GetFdByIdAttr(id=prog_id))
            except BpfSyscallError:
                continue
            info, maps = _info_with_maps(fd)
            ptype = struct.unpack_from("<I", info, _TYPE)[0]
            attach = struct.unpack_from("<I", info, _ATTACH_BTF_ID)[0]
            if ptype != BPF_PROG_TYPE_STRUCT_OPS or (self.ops_id is not None and attach != self.ops_id):
                close_fd(fd)
                self.skipped.add(prog_id)
                continue
            if self.pid is not None:
                owned = owned or _fdinfo_ids(self.pid)
                if prog_id not in owned[0] and not owned[1] & maps:
                    close_fd(fd)          # another process's program (not remembered: ids are not
                    continue              # reused, but the pid may still take a map of it later)
            self.fds[prog_id] = fd

    def read(self) -> list[ProgRuns]:
        out = []
        for prog_id, fd in sorted(self.fds.items()):
            info = _info(fd)
            name = info[_NAME:_NAME + 16].split(b"\0", 1)[0].decode(errors="replace")
            run_time, run_cnt = struct.unpack_from("<QQ", info, _RUN_TIME_NS)
            out.append(ProgRuns(prog_id, name, run_cnt, run_time))
        return out

    def close(self) -> None:
        for fd in self.fds.values():
            close_fd(fd)
        self.fds.clear()
        if self.stats_fd is not None:
            close_fd(self.stats_fd)
            self.stats_fd = None


def _info_with_maps(fd: int, max_maps: int = 64) -> tuple[bytes, set[int]]:
    """bpf_prog_info of a program and the ids of the maps it uses."""
    ids = (ctypes.c_uint32 * max_maps)()
    buf = ctypes.create_string_buffer(INFO_SIZE)
    struct.pack_into("<IQ", buf, _NR_MAP_IDS, max_maps, ctypes.addressof(ids))
    attr = InfoByFdAttr(bpf_fd=fd, info_len=INFO_SIZE, info=ctypes.addressof(buf))
    bpf(OBJ_GET_INFO_BY_FD, attr)
    info = buf.raw
    count = min(struct.unpack_from("<I", info, _NR_MAP_IDS)[0], max_maps)
    return info, set(ids[:count])


def _fdinfo_ids(pid: int) -> tuple[set[int], set[int]]:
    """(prog ids, map ids) of the BPF fds the process holds (its fdinfo says so)."""
    progs: set[int] = set()
    maps: set[int] = set()
    base = Path(f"/proc/{pid}/fdinfo")
    try:
        entries = os.listdir(base)
    except OSError:
        return progs, maps
    for entry in entries:
        try:
            text = (base / entry).read_text()
        except OSError:
            continue
        for line in text.splitlines():
            if line.startswith("prog_id:"):
                progs.add(int(line.split()[1]))
            elif line.startswith("map_id:"):
                maps.add(int(line.split()[1]))
    return progs, maps


__all__ = ["ProgRuns", "StructOpsWatch", "enable_stats", "ops_type_id"]
