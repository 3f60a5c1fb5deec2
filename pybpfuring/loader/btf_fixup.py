"""Making a compiler's BTF loadable: what libbpf does to `.BTF` between open and BTF_LOAD.

- DATASEC sizes and VAR offsets: compilers write 0 (the final layout is the linker's business), the
  kernel insists on the real ones, sorted and non-overlapping. We take them from the ELF section
  sizes and symbol values.
- Externs (`.ksyms` kfuncs and `__ksym` variables, `.kconfig`): have no ELF section. The kernel
  rejects extern linkage on VARs and FUNCs inside a DATASEC, so each extern becomes an allocated
  int-sized VAR laid out back to back (its real address comes from the kernel's BTF at load),
  extern FUNCs become global ones, with their unnamed parameters named.
"""
from __future__ import annotations

from .btf import (DATASEC, FUNC, FUNC_EXTERN, FUNC_GLOBAL, FUNC_PROTO, INT, VAR,
                  VAR_GLOBAL_ALLOCATED, VAR_GLOBAL_EXTERN, Btf, BtfError, BtfType)
from .elf import ElfImage


def fixup_btf(btf: Btf, image: ElfImage) -> Btf:
    """A fixed-up copy of `btf` (the original stays as the compiler wrote it)."""
    fixed = Btf.parse(btf.encode())
    dummy_int: list[int] = []   # created on first need
    for tid in range(1, len(fixed.types)):
        t = fixed.types[tid]
        if t.kind == DATASEC:
            sec = image.section(fixed.str_at(t.name_off))
            if sec is not None:
                _fix_datasec_layout(fixed, t, image, sec.index, sec.size)
            else:
                _fix_extern_datasec(fixed, t, dummy_int)
        elif t.kind == VAR and t.extra[0] == VAR_GLOBAL_EXTERN:
            t.extra = (VAR_GLOBAL_ALLOCATED,)
        elif t.kind == FUNC and t.vlen == FUNC_EXTERN:
            t.vlen = FUNC_GLOBAL
            _name_params(fixed, t.size_or_type)
    return fixed


def _name_params(btf: Btf, proto_id: int) -> None:
    """The kernel wants every FUNC's parameters named; extern declarations often leave them
    unnamed (`extern void f(struct task_struct *)`)."""
    proto = btf[proto_id]
    if proto.kind != FUNC_PROTO:
        raise BtfError(f"BTF FUNC {btf.name(proto_id)!r} points at a {proto.kind_name}, not a "
                       "FUNC_PROTO")
    proto.members = [(name_off or btf.add_string(f"arg{i}"), ptype) if ptype else (name_off, ptype)
                     for i, (name_off, ptype) in enumerate(proto.members)]


def _fix_datasec_layout(btf: Btf, t: BtfType, image: ElfImage, shndx: int, size: int) -> None:
    offsets = {s.name: s.value for s in image.symbols_in(shndx)
               if s.type in ("STT_OBJECT", "STT_NOTYPE") and s.name}
    members = []
    for vtype, off, vsize in t.members:
        name = btf.name(vtype)
        members.append((vtype, offsets.get(name, off), vsize))
    t.size_or_type = size
    t.members = sorted(members, key=lambda m: m[1])


def _fix_extern_datasec(btf: Btf, t: BtfType, dummy_int: list[int]) -> None:
    off = 0
    members = []
    for vtype, _off, vsize in t.members:
        vt = btf[vtype]
        if vt.kind == FUNC:
            # A kfunc declaration: keep the FUNC (the loader resolves it by name) but let the
            # section hold a plain int VAR in its place.
            if not dummy_int:
                dummy_int.append(btf.add_type(BtfType(INT, btf.add_string("int"), 0, 0, 4,
                                                      ((1 << 24) | 32,))))
            var = BtfType(VAR, vt.name_off, 0, 0, dummy_int[0], (VAR_GLOBAL_ALLOCATED,))
            vtype, vsize = btf.add_type(var), 4
        else:
            vsize = vsize or 8
        members.append((vtype, off, vsize))
        off += (vsize + 7) // 8 * 8
    t.members = members
    t.size_or_type = off or 8
