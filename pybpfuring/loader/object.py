"""`BpfObject`: open a libbpf-convention BPF ELF, load its BTF, maps and programs, run them.

    with BpfObject.open("prog.o") as obj:
        obj.rodata["scale"] = 3          # read-only data is set before load
        obj.load()
        retval, ctx_out = obj.programs["add"].test_run(ctx_bytes)
        print(obj.maps["counters"][0])

What happens before the kernel sees anything (as libbpf does):
- DATASEC sizes and variable offsets in BTF are filled in from the ELF (compilers leave them 0),
  extern variables/functions are made acceptable to the kernel, then BTF is loaded;
- each program gets the `.text` (and same-section) functions it calls appended, call offsets fixed;
- ld_imm64 of maps / global data get the map fd (BPF_PSEUDO_MAP_FD / BPF_PSEUDO_MAP_VALUE);
- func_info/line_info are rebased from section byte offsets to program instruction indices.
"""
from __future__ import annotations

import errno as errno_mod
import os
from dataclasses import dataclass
from typing import Any

from . import syscalls as sc
from .btf import DATASEC, Btf, BtfError, BtfExt
from .btf_fixup import fixup_btf
from .elf import ElfImage, ElfObjectError, read_elf
from .link import (INSN_SIZE, PSEUDO_MAP_FD, PSEUDO_MAP_VALUE, LinkedProgram, Linker,
                   core_relo_bytes, func_info_bytes, line_info_bytes, set_src_imm)
from .maps import MAP_TYPE_ARRAY, GlobalData, GlobalVar, Map, MapDef, MapError, map_def_from_btf
from .sections import PROG_TYPE_SYSCALL, UnsupportedSection, describe_table, section_type
from .verifier import SourceLine, verifier_error
from . import externs, structops
from pybpfuring.lang.maps import map_limits_problem

DATA_PREFIXES = (".rodata", ".data", ".bss")


@dataclass
class Program:
    """One program of the object. `insns` is the linked code (map fds patched in after load)."""

    name: str
    section: str
    linked: LinkedProgram
    license: str
    line_info: dict[int, SourceLine]
    prog_type: int = 0
    sleepable: bool = False
    expected_attach_type: int = 0
    attach_btf_id: int = 0
    attach_btf_obj_fd: int = 0
    fd: int = -1
    verifier_log: str = ""

    @property
    def insns(self) -> bytes:
        return bytes(self.linked.insns)

    @property
    def insn_count(self) -> int:
        return len(self.linked.insns) // INSN_SIZE

    def test_run(self, ctx: bytes | bytearray = b"", repeat: int = 1,
                 data: bytes | None = None) -> tuple[int, bytes]:
        """BPF_PROG_TEST_RUN: returns (retval, ctx_out). A bytearray ctx is updated in place."""
        if self.fd < 0:
            raise sc.syscall_error(errno_mod.EBADF, f"program {self.name!r} is not loaded "
                                  "(call load() first) or its object was closed")
        if repeat < 1:
            raise ValueError(f"repeat must be at least 1, not {repeat}")
        ctx = ctx if isinstance(ctx, (bytes, bytearray)) else bytes(ctx)
        if self.prog_type == PROG_TYPE_SYSCALL:
            # The kernel runs SYSCALL programs once per call and writes ctx back into ctx_in.
            cur = bytes(ctx)
            for _ in range(repeat):
                res = sc.prog_test_run(self.fd, ctx_in=cur or None, ctx_in_place=True)
                cur = res.ctx_out
        else:
            res = sc.prog_test_run(self.fd, ctx_in=bytes(ctx) or None, ctx_out_size=len(ctx),
                                   data_in=data, repeat=repeat)
        if isinstance(ctx, bytearray) and res.ctx_out:
            ctx[:len(res.ctx_out)] = res.ctx_out
        return res.retval, res.ctx_out


class BpfObject:
    """A BPF ELF object: `programs` and `maps` by name, global data by section."""

    def __init__(self, image: ElfImage, label: str):
        self.label = label
        self.name = os.path.splitext(os.path.basename(label))[0] or "obj"
        self._image = image
        self.btf: Btf | None = None
        self.btf_ext: BtfExt | None = None
        self.btf_fd = -1
        self.links: list[int] = []
        self._fds: list[int] = []
        self.loaded = False
        self.global_data: dict[str, GlobalData] = {}
        self.maps: dict[str, Map] = {}
        self.programs: dict[str, Program] = {}
        self.struct_ops: dict[str, structops.StructOps] = {}
        try:
            self._read_btf()
            self.license = self._license()
            self._collect_maps()
            self._collect_programs()
            self.struct_ops = structops.collect(self, image)
        except (BtfError, MapError, structops.StructOpsError, ElfObjectError) as exc:
            # Whatever part of the file is malformed, the user gets one error class naming it.
            text = str(exc)
            raise ElfObjectError(text if text.startswith(label) else f"{label}: {text}") from None

    # ---- opening ----
    @classmethod
    def open(cls, source: str | os.PathLike | bytes | bytearray) -> "BpfObject":
        """Read an ELF object from a path or from bytes (nothing is created in the kernel yet)."""
        if isinstance(source, os.PathLike):
            source = os.fspath(source)
        image = read_elf(source)
        return cls(image, source if isinstance(source, str) else "<bytes>")

    def _read_btf(self) -> None:
        sec = self._image.section(".BTF")
        if sec is None:
            return
        self.btf = Btf.parse(sec.data)
        ext = self._image.section(".BTF.ext")
        self.btf_ext = BtfExt.parse(ext.data, self.btf) if ext is not None else None

    def _license(self) -> str:
        sec = self._image.section("license")
        if sec is None:
            return "GPL"
        try:
            return sec.data.split(b"\0", 1)[0].decode("ascii")
        except UnicodeDecodeError:
            raise ElfObjectError("the license section is not ASCII text") from None

    def _collect_maps(self) -> None:
        maps_sec = self._image.section(".maps")
        if maps_sec is not None:
            if self.btf is None:
                raise ElfObjectError(f"{self.label}: .maps needs BTF (compile with -g)")
            for name, var_type in self._datasec_vars(".maps"):
                self.maps[name] = Map(map_def_from_btf(self.btf, name, var_type), self.btf)
        for sec in self._image.sections.values():
            if sec.allocated and not sec.executable and sec.name.startswith(DATA_PREFIXES):
                self._add_data_map(sec)

    def _datasec_vars(self, sec_name: str) -> list[tuple[str, int]]:
        ids = self.btf.find(sec_name, DATASEC)
        if not ids:
            return []
        return [(self.btf.name(vtype), self.btf[vtype].size_or_type)
                for vtype, _off, _size in self.btf[ids[0]].members]

    def _add_data_map(self, sec) -> None:
        value_type = 0
        variables = []
        shndx = sec.index
        syms = {s.name: s for s in self._image.symbols_in(shndx) if s.type == "STT_OBJECT"}
        if self.btf is not None:
            ids = self.btf.find(sec.name, DATASEC)
            if ids:
                value_type = ids[0]
                for vtype, _off, size in self.btf[ids[0]].members:
                    vname = self.btf.name(vtype)
                    if vname in syms:
                        variables.append(GlobalVar(vname, syms[vname].value, size,
                                                   self.btf[vtype].size_or_type))
        if not variables:   # no BTF: fall back to the symbol table
            variables = [GlobalVar(s.name, s.value, s.size, 0) for s in syms.values()]
        problem = map_limits_problem(MAP_TYPE_ARRAY, 4, max(sec.size, 1), 1)
        if problem is not None:
            raise ElfObjectError(f"section {sec.name!r} cannot become a global-data map: {problem}")
        flags = sc.BPF_F_RDONLY_PROG if sec.name.startswith(".rodata") else 0
        mdef = MapDef(sec.name, MAP_TYPE_ARRAY, 4, max(sec.size, 1), 1, flags,
                      0, value_type, data_section=sec.name)
        self.maps[sec.name] = Map(mdef, self.btf)
        gd = GlobalData(sec.name, sec.data or bytes(sec.size), variables, self.btf)
        gd.map = self.maps[sec.name]
        self.global_data[sec.name] = gd

    @property
    def rodata(self) -> GlobalData:
        return self._data(".rodata")

    @property
    def data(self) -> GlobalData:
        return self._data(".data")

    @property
    def bss(self) -> GlobalData:
        return self._data(".bss")

    def _data(self, name: str) -> GlobalData:
        try:
            return self.global_data[name]
        except KeyError:
            raise MapError(f"{self.label} has no {name} section") from None

    def _collect_programs(self) -> None:
        maps_sec = self._image.section(".maps")
        data = {s.index: s.name for s in self._image.sections.values() if s.name in self.global_data}
        self._linker = Linker(self._image, self.btf_ext, maps_sec.index if maps_sec else None, data)
        for func in self._linker.entry_points():
            linked = self._linker.link(func)
            for ref in linked.map_refs:
                if ref.map_name not in self.maps:
                    raise ElfObjectError(f"program {func.name!r} instruction {ref.insn} refers to "
                                         f"map {ref.map_name!r}, which the object does not define")
            entry = section_type(func.section.name)
            prog = Program(func.name, func.section.name, linked, self.license,
                           self._line_table(linked))
            if entry is not None:
                prog.prog_type = entry.prog_type
                prog.sleepable = entry.sleepable
                prog.expected_attach_type = entry.expected_attach_type
            self.programs[func.name] = prog

    def _line_table(self, linked: LinkedProgram) -> dict[int, SourceLine]:
        if self.btf is None:
            return {}
        return {insn: SourceLine(self.btf.str_at(r.file_name_off), r.line, r.col,
                                 self.btf.str_at(r.line_off).strip())
                for insn, r in linked.line_info}

    # ---- loading ----
    def load(self, prog_type: int | None = None, sleepable: bool | None = None,
             expected_attach_type: int | None = None, log_level: int = 0) -> "BpfObject":
        """Create maps, load BTF and every program. Arguments override the section table for all
        programs; `log_level` > 0 keeps the verifier log of successful loads in `verifier_log`."""
        if self.loaded:
            raise sc.syscall_error(errno_mod.EALREADY, f"{self.label} is already loaded")
        try:
            self._load_btf()
            for ops in self.struct_ops.values():
                self.maps[ops.name] = structops.prepare(self, ops)
            for m in self.maps.values():
                self._create_map(m)
            for prog in self.programs.values():
                self._load_program(prog, prog_type, sleepable, expected_attach_type, log_level)
            for ops in self.struct_ops.values():
                structops.update_map(self, ops)
        except BaseException:
            self.close()
            raise
        self.loaded = True
        return self

    def _load_btf(self) -> None:
        if self.btf is None:
            return
        fixed = fixup_btf(self.btf, self._image)
        res = sc.btf_load(fixed.encode())
        if res.fd < 0:
            res = sc.btf_load(fixed.encode(), log_level=1)
            raise sc.syscall_error(res.errno, f"BPF_BTF_LOAD rejected the BTF of {self.label}: "
                                  f"{errno_mod.errorcode.get(res.errno, res.errno)}\n{res.log}")
        self.btf_fd = self._own(res.fd)
        self.btf = fixed
        for gd in self.global_data.values():   # sizes/offsets may have been fixed up
            gd._btf = fixed
        for m in self.maps.values():           # same type ids, real DATASEC layouts
            m._btf = fixed

    def _create_map(self, m: Map) -> None:
        d = m.definition
        # A struct_ops map names a kernel type, yet the kernel wants the object's BTF fd too.
        use_btf = self.btf_fd >= 0 and bool(d.btf_value_type_id or d.btf_key_type_id
                                            or d.btf_vmlinux_value_type_id)
        m.fd = self._own(sc.map_create(
            d.map_type, d.key_size, d.value_size, d.max_entries, map_flags=d.map_flags,
            name=d.name, btf_fd=self.btf_fd if use_btf else 0,
            btf_key_type_id=d.btf_key_type_id if use_btf else 0,
            btf_value_type_id=d.btf_value_type_id if use_btf else 0,
            btf_vmlinux_value_type_id=d.btf_vmlinux_value_type_id))
        gd = self.global_data.get(d.name)
        if gd is not None:
            sc.map_update(m.fd, (0).to_bytes(4, "little"), bytes(gd.image))
            if gd.read_only:
                sc.map_freeze(m.fd)

    def _load_program(self, prog: Program, prog_type, sleepable, attach_type, log_level) -> None:
        entry = section_type(prog.section)
        if prog_type is None and entry is not None and entry.unavailable:
            raise UnsupportedSection(entry.unavailable.format(section=prog.section))
        prog.prog_type = prog.prog_type if prog_type is None else prog_type
        prog.sleepable = prog.sleepable if sleepable is None else sleepable
        if attach_type is not None:
            prog.expected_attach_type = attach_type
        if not prog.prog_type:
            raise UnsupportedSection(
                f"program {prog.name!r}: section {prog.section!r} names no program type known "
                f"to the loader (known: {describe_table()}); pass load(prog_type=...)")
        req = self._load_request(prog)
        res = sc.prog_load(req, log_level=log_level)
        if res.fd < 0 and not log_level:
            res = sc.prog_load(req, log_level=1)   # again, this time to get the reason
        if res.fd < 0:
            if not res.log:
                raise sc.syscall_error(res.errno, f"BPF_PROG_LOAD of {prog.name!r} failed: "
                                      f"{errno_mod.errorcode.get(res.errno, res.errno)} "
                                      f"({os.strerror(res.errno)}), and the kernel gave no log")
            raise verifier_error(prog.name, res.log, res.errno, prog.line_info)
        prog.fd = self._own(res.fd)
        prog.verifier_log = res.log

    def _load_request(self, prog: Program) -> sc.ProgLoadRequest:
        insns = bytearray(prog.linked.insns)
        for ref in prog.linked.map_refs:
            m = self.maps[ref.map_name]
            if ref.offset is None:
                set_src_imm(insns, ref.insn, src_reg=PSEUDO_MAP_FD, imm=m.fd)
            else:
                set_src_imm(insns, ref.insn, src_reg=PSEUDO_MAP_VALUE, imm=m.fd)
                set_src_imm(insns, ref.insn + 1, imm=ref.offset)
        fd_array = externs.resolve(prog, insns, self)
        with_btf = self.btf_fd >= 0 and prog.linked.func_info
        # CO-RE relocations are applied by the kernel (BPF_PROG_LOAD core_relos, Linux >= 5.17).
        with_relos = self.btf_fd >= 0 and bool(prog.linked.core_relos)
        return sc.ProgLoadRequest(
            prog_type=prog.prog_type, insns=bytes(insns), license=prog.license, name=prog.name,
            prog_flags=sc.BPF_F_SLEEPABLE if prog.sleepable else 0,
            expected_attach_type=prog.expected_attach_type,
            prog_btf_fd=self.btf_fd if with_btf else 0,
            func_info=func_info_bytes(prog.linked.func_info) if with_btf else b"",
            func_info_cnt=len(prog.linked.func_info) if with_btf else 0,
            line_info=line_info_bytes(prog.linked.line_info) if with_btf else b"",
            line_info_cnt=len(prog.linked.line_info) if with_btf else 0,
            attach_btf_id=prog.attach_btf_id, attach_btf_obj_fd=prog.attach_btf_obj_fd,
            fd_array=fd_array,
            core_relos=core_relo_bytes(prog.linked.core_relos) if with_relos else b"",
            core_relo_cnt=len(prog.linked.core_relos) if with_relos else 0)

    # ---- fds ----
    def _own(self, fd: int) -> int:
        self._fds.append(fd)
        return fd

    def close(self) -> None:
        """Close every fd this object opened (links, programs, maps, BTF); idempotent."""
        for ops in getattr(self, "struct_ops", {}).values():
            try:
                ops.detach()
            except OSError:
                pass   # already gone with its map; the fd is closed either way
        for link_fd in self.links:
            sc.close_fd(link_fd)
        self.links.clear()
        for fd in reversed(self._fds):
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds.clear()
        for prog in self.programs.values():
            prog.fd = -1
        for m in self.maps.values():
            m.fd = -1
        self.btf_fd = -1
        self.loaded = False

    def __enter__(self) -> "BpfObject":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_fds", None):
            self.close()

    def __repr__(self) -> str:
        return (f"<BpfObject {self.label} programs={sorted(self.programs)} "
                f"maps={sorted(self.maps)} loaded={self.loaded}>")
