"""Print the io_uring cBPF filter ABI of the running kernel (struct layouts from its BTF, and the
per-opcode pdu sizes the kernel writes back at registration). Run in the 7.2 guest:
    python3 -m pybpfuring vm run -- env PYTHONPATH=$PWD python3 scripts/probe_filter_abi.py
"""
from __future__ import annotations

import ctypes
import os
import struct
import sys

from pybpfuring.loader.btf import vmlinux_btf, BtfError
from pybpfuring.uring.syscalls import _sys_register, NR_IO_URING_REGISTER


def dump(btf, name: str, indent: str = "", tid: int | None = None, base: int = 0) -> None:
    if tid is None:
        try:
            tid = btf.find_one(name)
        except BtfError as e:
            print(f"{name}: {e}")
            return
        print(f"struct {name}: size {btf.size_of(tid)}")
    for m in btf.members(tid):
        rt = btf.resolve(m.type_id)
        print(f"{indent}  +{base + m.byte_offset:3d} {m.name or '<anon>'}: {btf.type_str(m.type_id)}"
              f" ({btf.size_of(m.type_id)} bytes)")
        if btf[rt].kind_name in ("STRUCT", "UNION"):
            dump(btf, "", indent + "    ", rt, base + m.byte_offset)


def main() -> None:
    btf = vmlinux_btf()
    for n in ("io_uring_bpf_ctx", "io_uring_bpf_filter", "io_uring_bpf"):
        dump(btf, n)
    try:
        print("io_uring_register_op enum:", {k: v for k, v in btf.enum_values(btf.find_one("io_uring_register_op")).items() if "BPF" in k or "LAST" in k})
    except Exception as e:  # noqa
        print("enum:", e)
    try:
        for en in btf.find("__anon_enum") or []:
            pass
    except Exception:
        pass
    # pdu sizes: register a 1-insn allow filter with pdu_size 0 on a fresh ring per opcode and read the
    # size the kernel writes back (the u8/u32 after filter_len? found from BTF above).
    fil = struct.pack("<HBBI", 0x06, 0, 0, 1)
    fbuf = ctypes.create_string_buffer(fil)
    from pybpfuring.uring.ring import IoUring  # noqa
    tid = btf.find_one("io_uring_bpf_filter")
    offs = {m.name: m.byte_offset for m in btf.members(tid)}
    print("filter member offsets", offs)
    for op in range(0, 70):
        ring = IoUring(4)
        buf = bytearray(80)
        struct.pack_into("<HHI", buf, 0, 1, 0, 0)
        struct.pack_into("<III", buf, 8, op, 0, 1)
        struct.pack_into("<Q", buf, 8 + offs["filter_ptr"], ctypes.addressof(fbuf))
        cbuf = (ctypes.c_char * 80).from_buffer(buf)
        ret = _sys_register(NR_IO_URING_REGISTER, ring.fd, 37, ctypes.addressof(cbuf), 1)
        err = ctypes.get_errno() if ret < 0 else 0
        pdu = buf[8 + offs["pdu_size"]] if "pdu_size" in offs else None
        if ret < 0 or pdu:
            print(f"op {op}: ret {ret} errno {err} pdu {pdu}")
        ring.close()


if __name__ == "__main__":
    main()
