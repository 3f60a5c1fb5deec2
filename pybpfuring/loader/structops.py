"""struct_ops maps: a kernel "ops" struct whose function pointers are BPF programs.

Convention (libbpf's): a variable of type `struct T` in section `.struct_ops` or
`.struct_ops.link`, whose function-pointer members are initialised with programs from
`struct_ops[.s]/<name>` sections (an R_BPF_64_ABS64 relocation per member). At load:
- the kernel's `struct T` and its map value wrapper `struct bpf_struct_ops_T` are found in vmlinux
  BTF; the map is BPF_MAP_TYPE_STRUCT_OPS with btf_vmlinux_value_type_id = bpf_struct_ops_T;
- each program is loaded with attach_btf_id = T and expected_attach_type = the member's index in
  the kernel's T (members are matched by name, so the local struct may declare only some);
- the value (data members copied, function pointers set to program fds) is written with
  MAP_UPDATE_ELEM; a `.struct_ops.link` map is registered by `attach()` (BPF_LINK_CREATE), a
  `.struct_ops` map by the update itself.
The io_uring loop of Linux >= 7.1 (`io_uring_bpf_ops`, with `ring_fd` set before load) is one such T.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pybpfuring.errors import PyBpfUringError
from . import syscalls as sc
from .btf import DATASEC, FUNC_PROTO, PTR, STRUCT, Btf, BtfError, vmlinux_btf
from .elf import R_BPF_64_ABS64, ElfImage
from .maps import MAP_TYPE_STRUCT_OPS, Map, MapDef
from .sections import PROG_TYPE_STRUCT_OPS

if TYPE_CHECKING:
    from .object import BpfObject

STRUCT_OPS_SECTIONS = (".struct_ops", ".struct_ops.link")
BPF_F_LINK = 1 << 13
VALUE_PREFIX = "bpf_struct_ops_"


class StructOpsError(PyBpfUringError):
    """A struct_ops map cannot be built for this kernel (missing type, mismatched member...)."""


@dataclass
class StructOps:
    """One struct_ops variable: its local layout, initial data and the programs in its members."""

    name: str
    section: str
    type_name: str                     # T, as in `struct T`
    local_type_id: int
    data: bytearray                    # the variable's bytes as compiled (data members)
    programs: dict[str, str]           # member name -> program name
    btf: Btf
    map: Map | None = None
    link_fd: int = -1
    _kernel: tuple[int, int, int] | None = field(default=None, repr=False)  # T id, vT id, data off

    @property
    def uses_link(self) -> bool:
        return self.section == ".struct_ops.link"

    # Data members (e.g. io_uring_bpf_ops.ring_fd) are set by name before load.
    def __setitem__(self, member: str, value: int | bytes) -> None:
        m = self.btf.member(self.local_type_id, member)
        size = self.btf.size_of(m.type_id)
        if member in self.programs:
            raise StructOpsError(f"{self.name}.{member} is a program, not data")
        raw = value.to_bytes(size, "little", signed=value < 0) if isinstance(value, int) \
            else bytes(value).ljust(size, b"\0")
        if len(raw) != size:
            raise StructOpsError(f"{self.name}.{member} is {size} bytes, got {len(raw)}")
        self.data[m.byte_offset:m.byte_offset + size] = raw

    def __getitem__(self, member: str) -> int | bytes:
        m = self.btf.member(self.local_type_id, member)
        raw = bytes(self.data[m.byte_offset:m.byte_offset + self.btf.size_of(m.type_id)])
        return int.from_bytes(raw, "little") if self.btf.int_info(m.type_id) else raw

    def attach(self) -> int:
        """Register the ops with the kernel through a link (`.struct_ops.link`); returns its fd."""
        if self.map is None or self.map.fd < 0:
            raise StructOpsError(f"struct_ops {self.name!r} is not loaded (call load() first)")
        if not self.uses_link:
            raise StructOpsError(f"struct_ops {self.name!r} is in section {self.section!r}: "
                                 "the kernel registered it at load; there is no link to create")
        if self.link_fd >= 0:
            raise StructOpsError(f"struct_ops {self.name!r} is already attached")
        self.link_fd = sc.link_create(self.map.fd, sc.BPF_STRUCT_OPS)
        return self.link_fd

    def detach(self) -> None:
        """Unregister: detach and close the link."""
        if self.link_fd >= 0:
            try:
                sc.link_detach(self.link_fd)
            finally:
                sc.close_fd(self.link_fd)
                self.link_fd = -1


def collect(obj: "BpfObject", image: ElfImage) -> dict[str, StructOps]:
    """Find struct_ops variables and mark their programs as STRUCT_OPS programs."""
    out: dict[str, StructOps] = {}
    btf = obj.btf
    for sec_name in STRUCT_OPS_SECTIONS:
        sec = image.section(sec_name)
        if sec is None:
            continue
        if btf is None or not btf.find(sec_name, DATASEC):
            raise StructOpsError(f"{obj.label}: section {sec_name} needs BTF (compile with -g)")
        relocs = {r.offset: r for r in image.relocations.get(sec.index, [])}
        syms = {s.name: s for s in image.symbols_in(sec.index, "STT_OBJECT")}
        for vtype, _off, _size in btf[btf.find_one(sec_name, DATASEC)].members:
            name = btf.name(vtype)
            sym = syms.get(name)
            if sym is None:
                raise StructOpsError(f"{obj.label}: no symbol for struct_ops variable {name!r}")
            out[name] = _one(obj, btf, sec_name, sec.data, sym.value, name,
                             btf[vtype].size_or_type, relocs)
    return out


def _one(obj, btf: Btf, sec_name: str, sec_data: bytes, base: int, name: str, type_id: int,
         relocs) -> StructOps:
    sid = btf.resolve(type_id)
    if btf[sid].kind != STRUCT:
        raise StructOpsError(f"struct_ops variable {name!r} must be a struct")
    size = btf.size_of(sid)
    ops = StructOps(name, sec_name, btf.name(sid), sid, bytearray(sec_data[base:base + size]), {},
                    btf)
    for m in btf.members(sid):
        rel = relocs.get(base + m.byte_offset)
        if rel is None:
            continue
        if rel.type != R_BPF_64_ABS64 or rel.symbol.type != "STT_FUNC":
            raise StructOpsError(f"{name}.{m.name}: expected a function (program) reference")
        prog = obj.programs.get(rel.symbol.name)
        if prog is None:
            raise StructOpsError(f"{name}.{m.name} refers to {rel.symbol.name!r}, which is not a "
                                 "program (put it in a struct_ops/ section)")
        ops.programs[m.name] = prog.name
        ops.data[m.byte_offset:m.byte_offset + 8] = bytes(8)
        prog.prog_type = PROG_TYPE_STRUCT_OPS
    return ops


def prepare(obj: "BpfObject", ops: StructOps) -> Map:
    """Resolve the kernel types; set the programs' attach ids; return the map to create."""
    kbtf = vmlinux_btf()
    ktype_ids = kbtf.find(ops.type_name, STRUCT)
    vtype_ids = kbtf.find(VALUE_PREFIX + ops.type_name, STRUCT)
    if not ktype_ids or not vtype_ids:
        raise StructOpsError(f"struct_ops {ops.name!r}: the running kernel has no struct_ops type "
                             f"'struct {ops.type_name}' (it is not built in, or needs a newer kernel)")
    ktype, vtype = ktype_ids[0], vtype_ids[0]
    data_off = kbtf.member(vtype, "data").byte_offset
    ops._kernel = (ktype, vtype, data_off)
    kmembers = kbtf.members(ktype)
    index = {m.name: i for i, m in enumerate(kmembers)}
    for member, prog_name in ops.programs.items():
        if member not in index:
            raise StructOpsError(f"struct_ops {ops.name!r}: the kernel's struct {ops.type_name} "
                                 f"has no member {member!r}")
        kmember = kmembers[index[member]]
        if not _is_func_ptr(kbtf, kmember.type_id):
            raise StructOpsError(f"{ops.name}.{member} is not a function pointer in the kernel")
        prog = obj.programs[prog_name]
        prog.attach_btf_id = ktype
        prog.expected_attach_type = index[member]
    mdef = MapDef(ops.name, MAP_TYPE_STRUCT_OPS, 4, kbtf.size_of(vtype), 1,
                  BPF_F_LINK if ops.uses_link else 0, btf_vmlinux_value_type_id=vtype)
    ops.map = Map(mdef, None)
    return ops.map


def _is_func_ptr(btf: Btf, type_id: int) -> bool:
    t = btf[btf.resolve(type_id)]
    if t.kind != PTR or t.size_or_type == 0:      # `void *` (io_uring_bpf_ops.priv) is data
        return False
    return btf[btf.resolve(t.size_or_type)].kind == FUNC_PROTO


def kernel_value(obj: "BpfObject", ops: StructOps) -> bytes:
    """The map value: the kernel's `struct bpf_struct_ops_T` with our data and program fds."""
    kbtf = vmlinux_btf()
    assert ops._kernel is not None and ops.map is not None
    ktype, vtype, data_off = ops._kernel
    value = bytearray(kbtf.size_of(vtype))
    kmembers = {m.name: m for m in kbtf.members(ktype)}
    for m in ops.btf.members(ops.local_type_id):
        km = kmembers.get(m.name)
        if m.name in ops.programs:
            fd = obj.programs[ops.programs[m.name]].fd
            value[data_off + km.byte_offset:data_off + km.byte_offset + 8] = fd.to_bytes(8, "little")
            continue
        _copy_member(ops, kbtf, m, km, value, data_off)
    return bytes(value)


def _copy_member(ops: StructOps, kbtf: Btf, m, km, value: bytearray, data_off: int) -> None:
    size = ops.btf.size_of(m.type_id)
    raw = ops.data[m.byte_offset:m.byte_offset + size]
    if km is None:
        if any(raw):
            raise StructOpsError(f"{ops.name}.{m.name} is set, but the kernel's struct "
                                 f"{ops.type_name} has no such member")
        return
    if _is_func_ptr(ops.btf, m.type_id):
        return                                       # a NULL callback: left 0
    try:
        ksize = kbtf.size_of(km.type_id)
    except BtfError:
        ksize = -1
    if ksize != size:
        raise StructOpsError(f"{ops.name}.{m.name} is {size} bytes here but {ksize} in the "
                             f"kernel's struct {ops.type_name}")
    value[data_off + km.byte_offset:data_off + km.byte_offset + size] = raw


def update_map(obj: "BpfObject", ops: StructOps) -> None:
    sc.map_update(ops.map.fd, bytes(4), kernel_value(obj, ops))


def describe(ops: StructOps) -> dict[str, Any]:
    return {"name": ops.name, "type": ops.type_name, "programs": dict(ops.programs)}
