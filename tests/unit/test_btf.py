"""Our BTF reader/writer against real BTF: the running kernel's and clang's."""
from __future__ import annotations

import re
import shutil
import struct
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from pybpfuring.loader import btf as B
from pybpfuring.loader.btf import Btf, BtfError, BtfExt, BtfType
from pybpfuring.loader.btf_fixup import fixup_btf
from pybpfuring.loader.elf import read_elf

PROGS = Path(__file__).resolve().parents[1] / "kernel" / "progs"
VMLINUX = Path(B.VMLINUX_PATH)

needs_vmlinux = pytest.mark.skipif(not VMLINUX.exists(),
                                   reason="kernel has no /sys/kernel/btf/vmlinux (no CONFIG_DEBUG_INFO_BTF)")


@pytest.fixture(scope="module")
def clang_objects(tmp_path_factory) -> dict[str, Path]:
    clang = shutil.which("clang")
    if clang is None:
        pytest.skip("clang is not installed (apt-get install clang) to build BTF test objects")
    out = tmp_path_factory.mktemp("btf-objs")
    objs = {}
    for src in sorted(PROGS.glob("*.c")):
        obj = out / (src.stem + ".o")
        subprocess.run([clang, "-g", "-O2", "-target", "bpf", "-c", str(src), "-o", str(obj)],
                       check=True)
        objs[src.stem] = obj
    return objs


@needs_vmlinux
def test_vmlinux_round_trip_is_byte_exact():
    raw = VMLINUX.read_bytes()
    btf = Btf.parse(raw)
    assert btf.encode() == raw
    kinds = Counter(t.kind for t in btf.types[1:])
    assert kinds[B.STRUCT] > 1000 and kinds[B.FUNC] > 1000   # it really parsed the types


@needs_vmlinux
def test_vmlinux_kind_counts_match_bpftool():
    """bpftool (libbpf) as an independent reader: same number of types of every kind."""
    bpftool = shutil.which("bpftool") or "/usr/sbin/bpftool"
    if not Path(bpftool).exists():
        pytest.skip("bpftool is not installed (apt-get install bpftool)")
    dump = subprocess.run([bpftool, "btf", "dump", "file", str(VMLINUX)], capture_output=True,
                          text=True, check=True).stdout
    theirs = Counter(m.group(1) for m in re.finditer(r"^\[\d+\] (\w+) ", dump, re.M))
    ours = Counter(B.KIND_NAMES[t.kind] for t in B.vmlinux_btf().types[1:])
    assert ours == theirs


@needs_vmlinux
def test_vmlinux_lookups():
    kbtf = B.vmlinux_btf()
    assert B.vmlinux_btf() is kbtf                      # parsed once per process
    task = kbtf.find_one("task_struct", B.STRUCT)
    assert kbtf.size_of(task) > 1000
    pid = kbtf.member(task, "pid")
    assert kbtf.int_info(pid.type_id) == (4, True) and pid.bit_offset % 32 == 0
    assert kbtf.type_str(kbtf.member(task, "parent").type_id) == "struct task_struct *"
    # struct_ops value types exist for every registered struct_ops (the 7.1 loader needs them).
    tcp = kbtf.find_one("tcp_congestion_ops", B.STRUCT)
    assert kbtf.find("bpf_struct_ops_tcp_congestion_ops", B.STRUCT)
    assert kbtf.size_of(kbtf.member(tcp, "ssthresh").type_id) == 8   # a function pointer
    assert B.kernel_btf_id("bpf_map_lookup_elem", B.FUNC, kbtf) > 0
    with pytest.raises(BtfError, match="no BTF FUNC named 'no_such_kfunc_here'"):
        B.kernel_btf_id("no_such_kfunc_here", B.FUNC, kbtf)
    for ops in kbtf.find("io_uring_bpf_ops", B.STRUCT):       # only on Linux >= 7.1
        assert kbtf.member(ops, "loop_step").bit_offset == 0


def test_clang_objects_round_trip_and_ext(clang_objects):
    for name, path in clang_objects.items():
        image = read_elf(str(path))
        raw = image.section(".BTF").data
        btf = Btf.parse(raw)
        assert btf.encode() == raw, name
        ext = BtfExt.parse(image.section(".BTF.ext").data, btf)
        funcs = [s.name for s in image.symbols if s.type == "STT_FUNC"]
        infos = [r for recs in ext.func_info.values() for r in recs]
        assert sorted(btf.name(r.type_id) for r in infos) == sorted(funcs), name
        source = (PROGS / f"{name}.c").read_text().splitlines()
        for sec, lines in ext.line_info.items():
            assert lines and all(btf.str_at(r.file_name_off).endswith(f"{name}.c") for r in lines)
            for r in lines:   # the recorded text is the text of the recorded line
                if r.line > 0:
                    assert btf.str_at(r.line_off).strip() == source[r.line - 1].strip()
            assert [r.insn_off for r in lines] == sorted(r.insn_off for r in lines)


def test_datasec_fixup_from_elf(clang_objects):
    image = read_elf(str(clang_objects["syscall_basic"]))
    btf = Btf.parse(image.section(".BTF").data)
    bss = btf[btf.find_one(".bss", B.DATASEC)]
    assert bss.size_or_type == 0                        # what clang leaves for the loader
    fixed = fixup_btf(btf, image)
    assert Btf.parse(fixed.encode()).encode() == fixed.encode()
    fbss = fixed[fixed.find_one(".bss", B.DATASEC)]
    assert fbss.size_or_type == image.section(".bss").size == 16
    layout = {fixed.name(v): (off, size) for v, off, size in fbss.members}
    syms = {s.name: s.value for s in image.symbols if s.shndx == image.section(".bss").index}
    assert layout == {"runs": (syms["runs"], 8), "last_sum": (syms["last_sum"], 8)}
    assert [off for _, off, _ in fbss.members] == sorted(off for _, off, _ in fbss.members)
    assert bss.size_or_type == 0                        # the original is left as it was


def test_every_kind_written_and_read_back():
    """A blob with one type of every kind, built with our writer, read back field by field."""
    btf = Btf([None], b"\0")
    s = btf.add_string
    u32 = btf.add_type(BtfType(B.INT, s("u32"), 0, 0, 4, (32,)))
    types = [
        BtfType(B.PTR, 0, 0, 0, u32),
        BtfType(B.ARRAY, 0, 0, 0, 0, (u32, u32, 7)),
        BtfType(B.STRUCT, s("pair"), 0, 1, 8, (), [(s("a"), u32, 0), (s("b"), u32, (3 << 24) | 32)]),
        BtfType(B.UNION, s("either"), 0, 0, 4, (), [(s("x"), u32, 0)]),
        BtfType(B.ENUM, s("color"), 0, 1, 4, (), [(s("RED"), -1), (s("BLUE"), 2)]),
        BtfType(B.FWD, s("opaque"), 0, 0, 0),
        BtfType(B.TYPEDEF, s("u32_t"), 0, 0, u32),
        BtfType(B.VOLATILE, 0, 0, 0, u32),
        BtfType(B.CONST, 0, 0, 0, u32),
        BtfType(B.RESTRICT, 0, 0, 0, u32),
        BtfType(B.FUNC_PROTO, 0, 0, 0, u32, (), [(s("arg"), u32)]),
        BtfType(B.FUNC, s("f"), B.FUNC_GLOBAL, 0, 12),
        BtfType(B.VAR, s("v"), 0, 0, u32, (B.VAR_GLOBAL_ALLOCATED,)),
        BtfType(B.DATASEC, s(".data"), 0, 0, 4, (), [(14, 0, 4)]),
        BtfType(B.FLOAT, s("double"), 0, 0, 8),
        BtfType(B.DECL_TAG, s("tag"), 0, 0, 13, (-1,)),
        BtfType(B.TYPE_TAG, s("user"), 0, 0, u32),
        BtfType(B.ENUM64, s("big"), 0, 0, 8, (), [(s("HUGE"), 0xFFFFFFFF, 0xFFFFFFFF)]),
    ]
    for t in types:
        btf.add_type(t)
    back = Btf.parse(btf.encode())
    assert [(t.kind, t.name_off, t.info_word(), t.size_or_type, tuple(t.extra), t.members)
            for t in back.types[1:]] == \
           [(t.kind, t.name_off, t.info_word(), t.size_or_type, tuple(t.extra), t.members)
            for t in btf.types[1:]]
    assert back.size_of(3) == 28 and back.size_of(8) == 4 and back.size_of(15) == 4
    assert back.members(4)[1].bitfield_size == 3 and back.members(4)[1].byte_offset == 4
    assert back.enum_values(6) == {"RED": -1, "BLUE": 2}
    assert back.enum_values(19) == {"HUGE": (1 << 64) - 1}
    assert back.int_info(8) == (4, False) and back.resolve(18) == u32 and back.resolve(10) == u32
    with pytest.raises(BtfError, match="has no size"):
        back.size_of(7)   # FWD


def test_bad_blobs_are_reported():
    with pytest.raises(BtfError, match="magic"):
        Btf.parse(b"\x00" * 24)
    with pytest.raises(BtfError, match="shorter"):
        Btf.parse(b"\x9f\xeb")
    hdr = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, 100, 100, 1)
    with pytest.raises(BtfError, match="past the end"):
        Btf.parse(hdr)
