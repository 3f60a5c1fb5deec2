"""Code generation for the Linux >= 7.1 io_uring loop target (`bpf_ops`), and module globals.

What the ELF holds, as clang + libbpf lay it out for liburing's `test/bpf-progs/*.bpf.c`:
- each `@loop_step` program is `int name(unsigned long long *ctx)` in section
  `struct_ops.s/<name>` (sleepable: `bpf_io_uring_submit_sqes` is KF_SLEEPABLE); its two Python
  parameters are `ctx[0]` (struct io_ring_ctx *) and `ctx[1]` (struct iou_loop_params *), as
  libbpf's BPF_PROG() macro reads them;
- a global `struct io_uring_bpf_ops <name>_ops` in `.struct_ops.link` whose `loop_step` member is
  relocated (R_BPF_64_ABS64) to the program, with BTF describing the kernel's member layout
  (loop_step @0, ring_fd @8, priv @16; 24 bytes), so libbpf's bpf_map__attach_struct_ops and our
  loader both recognise it;
- kfuncs are calls to `extern` functions declared in section `.ksyms` with a DISubprogram
  declaration, which LLVM's BPF backend emits as calls with an R_BPF_64_32 relocation and BTF
  FUNC records of extern linkage in DATASEC `.ksyms` (the loader patches in
  BPF_PSEUDO_KFUNC_CALL and the kernel's BTF id);
- `ReadOnly` globals in `.rodata` (read-only to programs; the loader sets them before load and
  freezes the map, so the verifier reads them as constants), `Global`s in `.bss`/`.data`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import llvmlite.ir as ll

from pybpfuring.errors import InternalCompilerError
from pybpfuring.lang.loop import RegionType
from pybpfuring.compiler import typed_ir as ir
from pybpfuring.compiler.lower.types import I8, I32, I64, PTR, REGION_T, memty
from pybpfuring.compiler.lower.guard import guarded_address

if TYPE_CHECKING:
    from pybpfuring.compiler.lower.function import FunctionLowering, ModuleLowering

OPS_T = ll.LiteralStructType([PTR, I32, PTR])       # struct io_uring_bpf_ops
STRUCT_OPS_SECTION = ".struct_ops.link"
KSYMS_SECTION = ".ksyms"
LOOP_NODES = (ir.GlobalRef, ir.KfuncCall, ir.RegionView, ir.RegionValid, ir.StoreExpr, ir.ByteRef)

# kfunc name -> (LLVM return type, LLVM parameter types); the C prototypes are in lower/debuginfo.py.
KFUNCS: dict[str, tuple[ll.Type, tuple[ll.Type, ...]]] = {
    "bpf_io_uring_get_region": (PTR, (PTR, I32, I64)),
    "bpf_io_uring_submit_sqes": (I32, (PTR, I32)),
}


def program_section(fn: ir.TypedFunction, default: str) -> str:
    if fn.kind == "loop_step":
        return f"struct_ops.s/{fn.name}"
    return default


def struct_ops_name(program_name: str) -> str:
    """The struct_ops variable (and map) of a loop_step program."""
    return f"{program_name}_ops"


# ---- module level -------------------------------------------------------------------------------------
def lower_globals(ml: "ModuleLowering") -> None:
    """A global per ReadOnly/Global declaration, in the section libbpf expects, with BTF."""
    for info in ml.tmod.globals:
        decl = info.decl
        t = decl.type  # type: ignore[attr-defined]
        gv = ll.GlobalVariable(ml.m, memty(t), info.name)
        gv.initializer = ll.Constant(memty(t), decl.init)  # type: ignore[attr-defined]
        gv.section = decl.section  # type: ignore[attr-defined]
        gv.align = t.size
        ml.di.global_variable(gv, info.name, ml.di.type(t), info.loc)
        ml.globals[id(info)] = gv


def kfunc(ml: "ModuleLowering", name: str) -> ll.Function:
    """The extern declaration of a kfunc (declared once per module, on first use)."""
    existing = ml.m.globals.get(name)
    if existing is not None:
        return existing  # type: ignore[return-value]
    ret, params = KFUNCS[name]
    fn = _ExternFunction(ml.m, ll.FunctionType(ret, list(params)), name)
    fn.section = KSYMS_SECTION
    fn.set_metadata("dbg", ml.di.kfunc_declaration(name))
    return fn


class _ExternFunction(ll.Function):
    """A declaration printed as LLVM wants it: `declare !dbg !N ...` (llvmlite puts the metadata
    after the section, which LLVM's parser rejects for declarations)."""

    def descr_prototype(self, buf: list[str]) -> None:
        ret, name = self.return_value, self.get_reference()
        args = ", ".join(str(a.type) for a in self.args)
        meta = self._stringify_metadata()
        section = f' section "{self.section}"' if self.section else ""
        buf.append(f"declare {meta + ' ' if meta else ''}{ret} {name}({args}){section}\n")


def emit_struct_ops(ml: "ModuleLowering") -> None:
    """`struct io_uring_bpf_ops <prog>_ops = { .loop_step = prog }` per loop_step program."""
    for fn in ml.tmod.programs:
        if fn.kind != "loop_step":
            continue
        name = struct_ops_name(fn.name)
        gv = ll.GlobalVariable(ml.m, OPS_T, name)
        gv.initializer = ll.Constant(OPS_T, [ml.funcs[id(fn)], ll.Constant(I32, 0),
                                             ll.Constant(PTR, None)])
        gv.section = STRUCT_OPS_SECTION
        gv.align = 8
        ml.di.global_variable(gv, name, ml.di.bpf_ops_struct(), fn.loc)


def program_type(fn: ir.TypedFunction) -> ll.FunctionType | None:
    """A loop_step program takes one argument, the u64 array of its two arguments."""
    return ll.FunctionType(I32, [PTR]) if fn.kind == "loop_step" else None


def param_value(fl: "FunctionLowering", i: int) -> ll.Value:
    """The value of Python parameter i: ctx[i] for loop_step programs, else argument i."""
    if fl.fn.kind != "loop_step":
        return fl.f.args[i]
    slot = fl.b.gep(fl.f.args[0], [ll.Constant(I64, i)], source_etype=I64)
    return fl.b.inttoptr(fl.b.load(slot, typ=I64), PTR)


# ---- expressions --------------------------------------------------------------------------------------
def lower_loop_expr(fl: "FunctionLowering", e: ir.Expr) -> ll.Value | None:
    b = fl.b
    if isinstance(e, ir.GlobalRef):
        return fl.ml.globals[id(e.info)]
    if isinstance(e, ir.KfuncCall):
        return kfunc_call(fl, e)
    if isinstance(e, ir.RegionValid):
        ptr = b.extract_value(fl.expr(e.region), 0)
        return b.icmp_unsigned("!=", ptr, ll.Constant(PTR, None))
    if isinstance(e, ir.RegionView):
        return region_view(fl, e)
    if isinstance(e, ir.ByteRef):
        base = fl.addr(e.place)
        return b.gep(base, [ll.Constant(I64, e.offset)], source_etype=I8) if e.offset else base
    if isinstance(e, ir.StoreExpr):
        value = fl.expr(e.value)
        b.store(fl.to_mem(value, e.place.type), fl.addr(e.place))
        return None
    raise InternalCompilerError(f"cannot lower {type(e).__name__}", getattr(e, "loc", None))


def kfunc_call(fl: "FunctionLowering", e: ir.KfuncCall) -> ll.Value:
    args = [fl.expr(a) for a in e.args]
    result = fl.b.call(kfunc(fl.ml, e.name), args)
    if isinstance(e.type, RegionType):
        # The region carries the size it was asked for: every access is checked against it.
        region = fl.b.insert_value(ll.Constant(REGION_T, None), result, 0)
        return fl.b.insert_value(region, args[2], 1)
    return result


def region_view(fl: "FunctionLowering", e: ir.RegionView) -> ll.Value:
    """Address of `size` bytes at `offset` of the region if they lie inside it, else a zeroed
    scratch object. The check tests the offset register itself against the (verifier-constant)
    region size; the address is computed below the check only."""
    b = fl.b
    region = fl.expr(e.region)
    off = fl.expr(e.offset)
    ptr, size = b.extract_value(region, 0), b.extract_value(region, 1)
    need = ll.Constant(I64, e.type.pointee.size)
    present = b.icmp_unsigned("!=", ptr, ll.Constant(PTR, None))
    fits = b.icmp_unsigned(">=", size, need)
    inside = b.icmp_unsigned("<=", off, b.sub(size, need))
    return guarded_address(fl, [b.and_(present, fits), inside],
                           lambda: b.gep(fl.barrier(ptr), [fl.barrier(off)], source_etype=I8),
                           e.type.pointee.size, "rgn")


__all__ = ["LOOP_NODES", "REGION_T", "KFUNCS", "lower_globals", "emit_struct_ops", "program_type",
           "param_value", "lower_loop_expr", "program_section", "struct_ops_name", "kfunc"]
