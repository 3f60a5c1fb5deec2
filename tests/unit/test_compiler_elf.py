"""The ELF objects the compiler writes follow the libbpf conventions, so other tools read them:
ELF64 EM_BPF little-endian relocatable, one section per target, `license`, BTF-defined `.maps`,
`.BTF` + `.BTF.ext` whose line_info names the Python file and carries its source lines, no `.eh_frame`.
Checked with pyelftools and our BTF reader, and with llvm-objdump and bpftool where installed."""
from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from elftools.elf.relocation import RelocationSection

from pybpfuring.abi import isa
from pybpfuring.abi.asm import disassemble
from pybpfuring.compiler.driver import compile_functions, compile_module, load_module, programs_in
from pybpfuring.loader.btf import Btf, BtfExt
from pybpfuring.loader.maps import map_def_from_btf

ROOT = Path(__file__).parents[2]
REFERENCE = ROOT / "examples" / "reference.py"
R_BPF_64_64 = 1

# The helpers each 2021 reference program calls, by ID (reference/io_uring-bpf-abi.md §2.1):
# 1 map_lookup_elem, 148 copy_from_user, 164 queue_sqe, 165 emit_cqe, 166 reap_cqe, 167 copy_to_user.
REFERENCE_HELPERS = {
    "test": {1, 148, 164, 165, 166, 167},
    "counting": {1, 164, 166},
    "pingpong": {1, 148, 165, 166},
    "write_file": {1, 164, 166},
}

EXTRA_SOURCE = '''from pybpfuring.lang import *

LICENSE = "Dual BSD/GPL"


@struct
class Key:
    fd: i32
    op: u8


@struct
class Stats:
    bytes: u64
    ops: u32


stats = HashMap(Key, Stats, 64)
ticks = ArrayMap(u32, 4)


@bpf_function(inline=False)
def bump(s: Stats, n: u64) -> None:
    s.bytes += n
    s.ops += 1


@iouring_program
def account(ctx: Ctx) -> int:
    k = Key()
    k.fd = 3
    bump(stats[k], ctx.user_data)
    ticks[0] += 1
    return OK
'''


@pytest.fixture(scope="module")
def reference_elf() -> bytes:
    return compile_functions(programs_in(load_module(REFERENCE)), "op_bpf", cache=False)


@pytest.fixture(scope="module")
def extra_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("elf") / "accounting.py"
    path.write_text(EXTRA_SOURCE)
    return path


def elf_of(data: bytes) -> ELFFile:
    return ELFFile(io.BytesIO(data))


def btf_of(data: bytes) -> tuple[Btf, BtfExt]:
    e = elf_of(data)
    btf = Btf.parse(e.get_section_by_name(".BTF").data())
    return btf, BtfExt.parse(e.get_section_by_name(".BTF.ext").data(), btf)


def function_insns(data: bytes, name: str) -> tuple[list[isa.Insn], int, str]:
    """(instructions, byte offset in its section, section name) of the function symbol `name`."""
    e = elf_of(data)
    sym = next(s for s in e.get_section_by_name(".symtab").iter_symbols()
               if s.name == name and s["st_info"]["type"] == "STT_FUNC")
    sec = e.get_section(sym["st_shndx"])
    start = sym["st_value"]
    return isa.decode(sec.data()[start:start + sym["st_size"]]), start, sec.name


def test_elf_header(reference_elf: bytes) -> None:
    e = elf_of(reference_elf)
    assert e.elfclass == 64
    assert e.little_endian
    assert e["e_machine"] == "EM_BPF"
    assert e["e_type"] == "ET_REL"


@pytest.mark.parametrize("target,section", [("op_bpf", "iouring"), ("generic", "syscall")])
def test_program_section_per_target(target: str, section: str, extra_path: Path) -> None:
    data = compile_module(extra_path, target)
    assert function_insns(data, "account")[2] == section
    assert function_insns(data, "bump")[2] == ".text"  # a BPF-to-BPF callee, as clang places it
    e = elf_of(data)
    assert {s.name for s in e.iter_sections() if s["sh_flags"] & 0x4} == {section, ".text"}


def test_license_section(reference_elf: bytes, extra_path: Path) -> None:
    assert elf_of(reference_elf).get_section_by_name("license").data() == b"GPL\0"
    data = compile_module(extra_path)
    assert elf_of(data).get_section_by_name("license").data() == b"Dual BSD/GPL\0"


def test_no_eh_frame(reference_elf: bytes, extra_path: Path) -> None:
    for data in (reference_elf, compile_module(extra_path)):
        assert elf_of(data).get_section_by_name(".eh_frame") is None


def test_maps_are_btf_defined(reference_elf: bytes, extra_path: Path) -> None:
    btf, _ = btf_of(reference_elf)
    var = btf.find_one("arr")
    d = map_def_from_btf(btf, "arr", btf[var].size_or_type)
    assert (d.map_type, d.key_size, d.value_size, d.max_entries) == (2, 4, 8, 256)
    assert elf_of(reference_elf).get_section_by_name(".maps").data_size == 32

    data = compile_module(extra_path)
    btf, _ = btf_of(data)
    d = map_def_from_btf(btf, "stats", btf[btf.find_one("stats")].size_or_type)
    assert (d.map_type, d.key_size, d.value_size, d.max_entries) == (1, 8, 16, 64)
    # The struct key and value keep their names and fields in BTF (bpftool map dump shows them).
    assert [m.name for m in btf.members(btf.find_one("Key"))] == ["fd", "op"]
    assert [(m.name, m.byte_offset) for m in btf.members(btf.find_one("Stats"))] == [("bytes", 0), ("ops", 8)]
    d = map_def_from_btf(btf, "ticks", btf[btf.find_one("ticks")].size_or_type)
    assert (d.map_type, d.key_size, d.value_size, d.max_entries) == (2, 4, 4, 4)


def test_functions_have_named_parameters(extra_path: Path) -> None:
    btf, ext = btf_of(compile_module(extra_path))
    for func, params in (("account", ["ctx"]), ("bump", ["s", "n"])):
        proto = btf[btf[btf.find_one(func)].size_or_type]
        assert [btf.str_at(name_off) for name_off, _ in proto.members] == params
    assert set(ext.func_info) == {"iouring", ".text"}


def test_line_info_names_python_file_and_source(reference_elf: bytes) -> None:
    btf, ext = btf_of(reference_elf)
    prep = ROOT / "pybpfuring" / "lang" / "prep.py"  # prep_* are inlined with their own lines
    sources = {str(f): f.read_text().splitlines() for f in (REFERENCE, prep)}
    records = ext.line_info["iouring"]
    assert len(records) > 50
    lines = set()
    for r in records:
        file = btf.str_at(r.file_name_off)
        assert file in sources
        # The embedded text is the Python line itself, so verifier logs quote Python.
        assert btf.str_at(r.line_off).strip() == sources[file][r.line - 1].strip()
        lines.add((file, r.line))
    wanted = [i + 1 for i, text in enumerate(sources[str(REFERENCE)])
              if "ret = reap_cqe(ctx, cq_idx, cqe)" in text]
    assert {(str(REFERENCE), n) for n in wanted} <= lines
    assert any(file == str(prep) for file, _ in lines)


@pytest.mark.parametrize("name", sorted(REFERENCE_HELPERS))
def test_reference_programs_call_the_2021_helpers(reference_elf: bytes, name: str) -> None:
    insns, _, _ = function_insns(reference_elf, name)
    assert {i.imm for i in insns if isa.is_helper_call(i)} == REFERENCE_HELPERS[name]
    text = disassemble(insns)  # the same, as the project's disassembler spells it
    assert {int(line.split()[1]) for line in text if line.startswith("call ")} == REFERENCE_HELPERS[name]
    assert not any(isa.is_pseudo_call(i) for i in insns)  # prep_* and all else inlined
    assert sum(isa.is_exit(i) for i in insns) >= 1


def test_map_references_are_relocated_against_arr(reference_elf: bytes) -> None:
    e = elf_of(reference_elf)
    rel = e.get_section_by_name(".reliouring")
    assert isinstance(rel, RelocationSection)
    symtab = e.get_section(rel["sh_link"])
    relocs = [(r["r_offset"], r["r_info_type"], symtab.get_symbol(r["r_info_sym"]).name)
              for r in rel.iter_relocations()]
    code = e.get_section_by_name("iouring").data()
    insns = isa.decode(code)
    lddw_offsets = {8 * pc for pc, i in enumerate(insns) if isa.is_ld_imm64(i)
                    and not isa.is_ld_imm64_second_slot(insns, pc)}
    lookups = sum(i.imm == 1 for i in insns if isa.is_helper_call(i))
    assert relocs and all(typ == R_BPF_64_64 and sym == "arr" and off in lddw_offsets
                          for off, typ, sym in relocs)
    assert len(relocs) == lookups  # one map address per lookup


def test_llvm_objdump_reads_the_object(reference_elf: bytes, tmp_path: Path) -> None:
    objdump = shutil.which("llvm-objdump") or shutil.which("llvm-objdump-14")
    if objdump is None:
        pytest.skip("llvm-objdump is not installed (apt-get install llvm)")
    path = tmp_path / "reference.o"
    path.write_bytes(reference_elf)
    out = subprocess.run([objdump, "-d", "-r", str(path)], capture_output=True, text=True, check=True).stdout
    assert "file format elf64-bpf" in out
    assert "<write_file>:" in out and "<pingpong>:" in out
    for helper in (164, 165, 166, 167, 148):
        assert f"call {helper}" in out
    assert "R_BPF_64_64\tarr" in out


def test_bpftool_dumps_the_btf(reference_elf: bytes, tmp_path: Path) -> None:
    bpftool = shutil.which("bpftool")
    if bpftool is None:
        pytest.skip("bpftool is not installed (apt-get install bpftool)")
    path = tmp_path / "reference.o"
    path.write_bytes(reference_elf)
    out = subprocess.run([bpftool, "btf", "dump", "file", str(path)], capture_output=True, text=True,
                         check=True).stdout
    assert "VAR 'arr'" in out
    assert "STRUCT 'io_uring_bpf_ctx' size=32 vlen=7" in out
    for prog in REFERENCE_HELPERS:
        assert f"FUNC '{prog}'" in out
    assert "DATASEC '.maps'" in out


def test_compile_imports_modules_beside_the_program(tmp_path: Path) -> None:
    """`pybpfuring compile prog.py` imports prog.py as `python prog.py` would: a module in the same
    folder (here a shared @bpf_function) is importable, from any working directory."""
    (tmp_path / "shared_helpers.py").write_text(
        "from pybpfuring import bpf_function, u64\n\n"
        "@bpf_function\n"
        "def twice(x: u64) -> u64:\n"
        "    return x * 2\n")
    (tmp_path / "prog.py").write_text(
        "from pybpfuring import iouring_program, Ctx, ArrayMap, u64, OK\n"
        "from shared_helpers import twice\n\n"
        "out = ArrayMap(u64, 1)\n\n"
        "@iouring_program\n"
        "def uses_neighbour(ctx: Ctx) -> int:\n"
        "    out[0] = twice(ctx.user_data)\n"
        "    return OK\n")
    obj = tmp_path / "prog.bpf.o"
    proc = subprocess.run([sys.executable, "-m", "pybpfuring", "compile", str(tmp_path / "prog.py"),
                           "-o", str(obj)], cwd="/", capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert obj.read_bytes()[:4] == b"\x7fELF"
    assert "shared_helpers" not in sys.modules   # the folder was on sys.path only during the import
