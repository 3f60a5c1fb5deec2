"""Debug metadata for the LLVM module. The BPF backend turns it into BTF: types of maps (libbpf's
BTF-defined `.maps`), FUNC records with named parameters (the kernel rejects unnamed ones), and
line_info carrying the Python file, line, column and source text (embedded, so BTF has it even when
the object is built elsewhere). That is what makes verifier logs point at Python lines."""
from __future__ import annotations

from pathlib import Path

import llvmlite.ir as ll

from pybpfuring.errors import SourceLocation
from pybpfuring.lang.loop import LoopParams, RegionType
from pybpfuring.lang.maps import MapDef
from pybpfuring.lang.types import ArrayType, BoolType, IntType, StructType, ValueType
from pybpfuring.compiler import typed_ir as ir
from pybpfuring.compiler.lower.types import I32


def _tok(name: str) -> ll.DIToken:
    return ll.DIToken(name)


class _DistinctDI(ll.DIValue):
    """A distinct node hashes by identity: we complete some (subprogram, CU) after creating nodes
    that point back at them, which would make llvmlite's structural hash recurse forever."""

    __hash__ = object.__hash__

    def __eq__(self, other: object) -> bool:
        return self is other


def _distinct(node: ll.DIValue) -> ll.DIValue:
    node.__class__ = _DistinctDI
    return node


class DebugInfo:
    def __init__(self, module: ll.Module, producer: str):
        self.m = module
        self._files: dict[str, ll.DIValue] = {}
        self._types: dict[object, ll.DIValue] = {}
        self._locs: dict[tuple[int, int, int], ll.DIValue] = {}
        self.globals: list[ll.DIValue] = []
        first = self.file("<pybpfuring>")
        self.cu = module.add_debug_info("DICompileUnit", {
            "language": _tok("DW_LANG_C99"), "file": first, "producer": producer,
            "isOptimized": True, "runtimeVersion": 0, "emissionKind": _tok("FullDebug"),
        }, is_distinct=True)
        _distinct(self.cu)
        self._cu_globals = self.globals

    def finish(self) -> None:
        """Attach the CU (with its globals) and the module flags the backend requires."""
        if self.globals:
            # llvmlite has no API to add globals after creation: rebuild the CU operand list.
            self.cu.operands = tuple(list(self.cu.operands) + [("globals", self.m.add_metadata(self.globals))])
        self.m.add_named_metadata("llvm.dbg.cu", self.cu)
        self.m.add_named_metadata("llvm.module.flags", self.m.add_metadata(
            [ll.Constant(I32, 7), "Dwarf Version", ll.Constant(I32, 5)]))
        self.m.add_named_metadata("llvm.module.flags", self.m.add_metadata(
            [ll.Constant(I32, 2), "Debug Info Version", ll.Constant(I32, 3)]))

    def file(self, path: str) -> ll.DIValue:
        if path not in self._files:
            p = Path(path)
            ops: dict[str, object] = {"filename": p.name, "directory": str(p.parent) if p.parent != Path(".") else ""}
            if p.is_file():
                ops["source"] = p.read_text(encoding="utf-8", errors="replace")
            self._files[path] = self.m.add_debug_info("DIFile", ops)
        return self._files[path]

    # ---- types -------------------------------------------------------------------------------------
    def type(self, t: ir.IRType | ValueType | None) -> ll.DIValue | None:
        if t is None:
            return None
        key: object = t if not isinstance(t, (StructType,)) else id(t)
        if key in self._types:
            return self._types[key]
        di: ll.DIValue
        if isinstance(t, BoolType):
            di = self.basic("bool", 8, "DW_ATE_boolean")
        elif isinstance(t, IntType):
            di = self.basic(t.name, t.bits, "DW_ATE_signed" if t.signed else "DW_ATE_unsigned")
        elif isinstance(t, ir.RefType):
            di = self.pointer(self.type(t.pointee))
        elif isinstance(t, RegionType):
            di = self.struct("Region", 128, [
                self.member("addr", self.pointer(self.basic("u8", 8, "DW_ATE_unsigned")), 64, 0),
                self.member("size", self.basic("u64", 64, "DW_ATE_unsigned"), 64, 64)])
        elif isinstance(t, ArrayType):
            di = self.array(self.type(t.elem), t.size, t.length)
        elif isinstance(t, StructType):
            members = []
            seen: set[int] = set()
            for f in sorted(t.fields.values(), key=lambda f: f.offset):
                # Union aliases share an offset with the field they name; BTF gets the field only.
                if f.offset in seen or f.name.startswith("__pad"):
                    continue
                seen.add(f.offset)
                members.append(self.member(f.name, self.type(f.type), f.type.size * 8, f.offset * 8))
            di = self.m.add_debug_info("DICompositeType", {
                "tag": _tok("DW_TAG_structure_type"), "name": t.name, "size": t.size * 8,
                "elements": self.m.add_metadata(members)})
        else:
            raise TypeError(f"no debug type for {t!r}")
        self._types[key] = di
        return di

    def struct(self, name: str, bits: int, members: list[ll.DIValue]) -> ll.DIValue:
        return self.m.add_debug_info("DICompositeType", {
            "tag": _tok("DW_TAG_structure_type"), "name": name, "size": bits,
            "elements": self.m.add_metadata(members)})

    def basic(self, name: str, bits: int, encoding: str) -> ll.DIValue:
        key = ("basic", name)
        if key not in self._types:
            self._types[key] = self.m.add_debug_info("DIBasicType", {
                "name": name, "size": bits, "encoding": _tok(encoding)})
        return self._types[key]

    def pointer(self, base: ll.DIValue | None) -> ll.DIValue:
        ops: dict[str, object] = {"tag": _tok("DW_TAG_pointer_type"), "size": 64}
        if base is not None:
            ops["baseType"] = base
        return self.m.add_debug_info("DIDerivedType", ops)

    def array(self, elem: ll.DIValue | None, size_bytes: int, count: int) -> ll.DIValue:
        sub = self.m.add_debug_info("DISubrange", {"count": count})
        return self.m.add_debug_info("DICompositeType", {
            "tag": _tok("DW_TAG_array_type"), "baseType": elem, "size": size_bytes * 8,
            "elements": self.m.add_metadata([sub])})

    def member(self, name: str, base: ll.DIValue | None, bits: int, offset_bits: int) -> ll.DIValue:
        return self.m.add_debug_info("DIDerivedType", {
            "tag": _tok("DW_TAG_member"), "name": name, "baseType": base, "size": bits,
            "offset": offset_bits})

    # ---- maps --------------------------------------------------------------------------------------
    def map_variable(self, gv: ll.GlobalVariable, info: ir.MapInfo) -> None:
        """libbpf's BTF-defined map: struct { int (*type)[T]; int (*max_entries)[N]; K *key; V *value; }"""
        d: MapDef = info.defn
        int_t = self.basic("int", 32, "DW_ATE_signed")

        def int_array_ptr(n: int) -> ll.DIValue:
            return self.pointer(self.array(int_t, 4 * n, n))
        members = [
            self.member("type", int_array_ptr(d.map_type), 64, 0),
            self.member("max_entries", int_array_ptr(d.max_entries), 64, 64),
            self.member("key", self.pointer(self.type(d.key_type)), 64, 128),
            self.member("value", self.pointer(self.type(d.value_type)), 64, 192),
        ]
        struct = self.m.add_debug_info("DICompositeType", {
            "tag": _tok("DW_TAG_structure_type"), "size": 256, "elements": self.m.add_metadata(members)})
        self.global_variable(gv, info.name, struct, info.loc)

    def global_variable(self, gv: ll.GlobalVariable, name: str, ditype: ll.DIValue,
                        loc: SourceLocation | None) -> None:
        f = self.file(loc.file) if loc else self.file("<pybpfuring>")
        var = self.m.add_debug_info("DIGlobalVariable", {
            "name": name, "scope": self.cu, "file": f, "line": loc.line if loc else 0, "type": ditype,
            "isLocal": False, "isDefinition": True}, is_distinct=True)
        gve = self.m.add_debug_info("DIGlobalVariableExpression", {
            "var": var, "expr": self.m.add_debug_info("DIExpression", {})})
        gv.set_metadata("dbg", gve)
        self.globals.append(gve)

    # ---- functions ---------------------------------------------------------------------------------
    def subprogram(self, fn: ir.TypedFunction, local_to_unit: bool) -> ll.DIValue:
        if fn.kind == "loop_step":
            return self.ctx_program(fn)
        f = self.file(fn.source_file)
        ret = self.type(fn.return_type)
        types = self.m.add_metadata([ret] + [self.type(p.type) for p in fn.params])
        sptype = self.m.add_debug_info("DISubroutineType", {"types": types})
        flags = "DISPFlagDefinition | DISPFlagOptimized" + (" | DISPFlagLocalToUnit" if local_to_unit else "")
        sp = self.m.add_debug_info("DISubprogram", {
            "name": fn.name, "scope": f, "file": f, "line": fn.loc.line, "type": sptype,
            "scopeLine": fn.loc.line, "spFlags": _tok(flags), "unit": self.cu}, is_distinct=True)
        _distinct(sp)
        args = [self.m.add_debug_info("DILocalVariable", {
            "name": p.name, "arg": i + 1, "scope": sp, "file": f, "line": p.loc.line,
            "type": self.type(p.type)}) for i, p in enumerate(fn.params)]
        # retainedNodes keeps parameter names in BTF even when the optimizer drops them.
        sp.operands = tuple(list(sp.operands) + [("retainedNodes", self.m.add_metadata(args))])
        return sp

    def location(self, loc: SourceLocation, scope: ll.DIValue) -> ll.DIValue:
        key = (loc.line, loc.col + 1, id(scope))
        if key not in self._locs:
            self._locs[key] = self.m.add_debug_info("DILocation", {
                "line": loc.line, "column": loc.col + 1, "scope": scope})
        return self._locs[key]

    # ---- the Linux >= 7.1 loop target ----------------------------------------------------------------
    def c_int(self, name: str, bits: int, signed: bool) -> ll.DIValue:
        return self.basic(name, bits, "DW_ATE_signed" if signed else "DW_ATE_unsigned")

    def ctx_program(self, fn: ir.TypedFunction) -> ll.DIValue:
        """`int name(unsigned long long *ctx)`: a struct_ops program as libbpf's BPF_PROG() makes
        it (its arguments are read from the ctx array)."""
        f = self.file(fn.source_file)
        ctx_t = self.pointer(self.c_int("unsigned long long", 64, False))
        int_t = self.c_int("int", 32, True)
        sptype = self.m.add_debug_info("DISubroutineType", {"types": self.m.add_metadata([int_t, ctx_t])})
        sp = self.m.add_debug_info("DISubprogram", {
            "name": fn.name, "scope": f, "file": f, "line": fn.loc.line, "type": sptype,
            "scopeLine": fn.loc.line, "spFlags": _tok("DISPFlagDefinition | DISPFlagOptimized"),
            "unit": self.cu}, is_distinct=True)
        _distinct(sp)
        arg = self.m.add_debug_info("DILocalVariable", {
            "name": "ctx", "arg": 1, "scope": sp, "file": f, "line": fn.loc.line, "type": ctx_t})
        sp.operands = tuple(list(sp.operands) + [("retainedNodes", self.m.add_metadata([arg]))])
        return sp

    def kernel_struct(self, name: str) -> ll.DIValue:
        """An opaque kernel struct (`struct io_ring_ctx {}`): only its name matters."""
        key = ("kstruct", name)
        if key not in self._types:
            self._types[key] = self.struct(name, 0, [])
        return self._types[key]

    def loop_step_proto(self) -> ll.DIValue:
        """int (*)(struct io_ring_ctx *, struct iou_loop_params *)"""
        params = self.type(LoopParams.__bpf_struct__)  # type: ignore[attr-defined]
        types = [self.c_int("int", 32, True), self.pointer(self.kernel_struct("io_ring_ctx")),
                 self.pointer(params)]
        return self.m.add_debug_info("DISubroutineType", {"types": self.m.add_metadata(types)})

    def bpf_ops_struct(self) -> ll.DIValue:
        """struct io_uring_bpf_ops { int (*loop_step)(...); __u32 ring_fd; void *priv; } (24 bytes)"""
        key = ("kstruct", "io_uring_bpf_ops")
        if key not in self._types:
            self._types[key] = self.struct("io_uring_bpf_ops", 192, [
                self.member("loop_step", self.pointer(self.loop_step_proto()), 64, 0),
                self.member("ring_fd", self.c_int("unsigned int", 32, False), 32, 64),
                self.member("priv", self.m.add_debug_info("DIDerivedType", {  # void *
                    "tag": _tok("DW_TAG_pointer_type"), "baseType": None, "size": 64}), 64, 128)])
        return self._types[key]

    def kfunc_declaration(self, name: str) -> ll.DIValue:
        """The DISubprogram declaration (no definition, no unit) of an `extern ... __ksym` kfunc,
        with the kernel's C prototype: the BPF backend turns it into an extern BTF FUNC."""
        f = self.file("<pybpfuring>")
        ctx = self.pointer(self.kernel_struct("io_ring_ctx"))
        u32 = self.c_int("unsigned int", 32, False)
        if name == "bpf_io_uring_get_region":
            types = [self.pointer(self.c_int("unsigned char", 8, False)), ctx, u32,
                     self.c_int("unsigned long", 64, False)]
        elif name == "bpf_io_uring_submit_sqes":
            types = [self.c_int("int", 32, True), ctx, u32]
        else:
            raise KeyError(f"no C prototype for kfunc {name!r}")
        sptype = self.m.add_debug_info("DISubroutineType", {"types": self.m.add_metadata(types)})
        return self.m.add_debug_info("DISubprogram", {
            "name": name, "scope": f, "file": f, "type": sptype,
            "flags": _tok("DIFlagPrototyped"), "spFlags": _tok("DISPFlagOptimized")})
