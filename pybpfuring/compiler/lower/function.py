"""Lowering: typed IR -> LLVM IR (llvmlite), with a debug location on every instruction.

Locals live in allocas that LLVM's mem2reg/SROA turn into registers; structs and arrays are byte
buffers addressed with constant offsets. Everything the C standard leaves undefined is made defined
here, as the language promises: shift counts are masked, x/0 == 0 and x%0 == x, signed division is done
on magnitudes (BPF cpu v3 has no signed divide), signed overflow wraps.

Module layering (no import cycle; each imports only those above it, FunctionLowering is a parameter
typed under TYPE_CHECKING): lower_types, ir_walk <- lowering_guard, lowering_bulk, local_bounds,
lowering_lookup <- lowering_maps, target_bpf_ops <- lowering_expr <- lowering (this module).
"""
from __future__ import annotations

from typing import Callable, Union

import llvmlite.ir as ll

from pybpfuring.errors import CompileError, InternalCompilerError, SourceLocation
from pybpfuring.lang.types import ArrayType, BoolType, StructType
from pybpfuring.compiler.lower import bulk as lowering_bulk
from pybpfuring.compiler.targets import bpf_ops as target_bpf_ops
from pybpfuring.compiler import typed_ir as ir
from pybpfuring.compiler.lower.debuginfo import DebugInfo
from pybpfuring.compiler.lower.walk import walk
from pybpfuring.compiler.lower.local_bounds import local_bounds
from pybpfuring.compiler.lower.types import CTX_STRUCT, I8, I32, I64, MAP_STRUCT, PTR, llty, memty
from pybpfuring.compiler.lower.expr import lower_expr
from pybpfuring.compiler.lower.guard import guarded_address
from pybpfuring.compiler.lower.lookup import hoist_const_lookups, is_found, lookup
from pybpfuring.compiler.lower.maps import lookup_reused_by, store
from pybpfuring.compiler.ranges import always_below
from pybpfuring.compiler.targets import Target
from pybpfuring.abi.bpf2021 import STACK_SIZE

DATA_LAYOUT = "e-m:e-p:64:64-i64:64-i128:128-n32:64-S128"
# One side of FunctionLowering.merge: computed in a block of its own, or a value already at hand.
Arm = Union[Callable[[], ll.Value], ll.Value]


def opaque(v: ll.Instruction) -> ll.Instruction:
    """llvmlite still types the pointers allocas return; LLVM 22 has only opaque `ptr`s, and
    llvmlite's builder checks stores against typed ones. Make ours opaque."""
    v.type = PTR
    return v


class ModuleLowering:
    def __init__(self, tmod: ir.TypedModule, target: Target, module_name: str = "pybpfuring"):
        self.tmod = tmod
        self.target = target
        self.m = ll.Module(module_name)
        self.m.triple = "bpfel"
        self.m.data_layout = DATA_LAYOUT
        self.di = DebugInfo(self.m, "pybpfuring")
        self.maps: dict[int, ll.GlobalVariable] = {}
        self.funcs: dict[int, ll.Function] = {}
        self.globals: dict[int, ll.GlobalVariable] = {}

    def lower(self) -> ll.Module:
        for info in self.tmod.maps:
            gv = ll.GlobalVariable(self.m, MAP_STRUCT, info.name)
            gv.initializer = ll.Constant(MAP_STRUCT, None)
            gv.section = ".maps"
            gv.align = 8
            self.di.map_variable(gv, info)
            self.maps[id(info)] = gv
        lic = (self.tmod.license + "\0").encode()
        lic_t = ll.ArrayType(I8, len(lic))
        gl = ll.GlobalVariable(self.m, lic_t, "_license")
        gl.initializer = ll.Constant(lic_t, bytearray(lic))
        gl.section = "license"
        target_bpf_ops.lower_globals(self)
        for fn in self.tmod.functions:
            self.declare(fn)
        for fn in self.tmod.functions:
            FunctionLowering(self, fn).lower()
        target_bpf_ops.emit_struct_ops(self)
        self.di.finish()
        return self.m

    def declare(self, fn: ir.TypedFunction) -> None:
        fty = target_bpf_ops.program_type(fn) or \
            ll.FunctionType(llty(fn.return_type), [llty(p.type) for p in fn.params])
        f = ll.Function(self.m, fty, fn.name)
        program = fn.kind != "function"
        if program:
            f.section = self.program_section(fn)
        elif fn.verified_alone:
            f.section = ".text"          # external linkage: BTF FUNC linkage global
            f.attributes.add("noinline")
        else:
            f.linkage = "internal"
            f.section = ".text"
            f.attributes.add("alwaysinline" if fn.inline else "noinline")
        f.attributes.add("nounwind")
        f.set_metadata("dbg", self.di.subprogram(fn, local_to_unit=not (program or fn.verified_alone)))
        self.funcs[id(fn)] = f

    def program_section(self, fn: ir.TypedFunction) -> str:
        return target_bpf_ops.program_section(fn, self.target.program_section)


# Helpers that write every byte of their object argument, also when they fail (the kernel's
# ARG_PTR_TO_UNINIT_MEM contract: copy_from_user and reap_cqe zero it then), and which argument it is.
_FILLING_HELPERS = {"copy_from_user": 0, "reap_cqe": 2}


def _first_call(s: ir.Stmt | None) -> object:
    """The call a statement evaluates before anything else (`if reap_cqe(...) != 0:`), if any."""
    e: object = None
    if isinstance(s, ir.ExprStmt):
        e = s.expr
    elif isinstance(s, ir.If):
        e = s.cond
    elif isinstance(s, ir.Assign) and isinstance(s.place, ir.VarPlace):
        e = s.value
    while isinstance(e, (ir.Compare, ir.Binary, ir.Cast, ir.Truth)):
        e = e.left if isinstance(e, (ir.Compare, ir.Binary)) else \
            e.operand if isinstance(e, ir.Truth) else e.value
    return e


def _names_local(node: object, local: ir.Local) -> bool:
    return any(isinstance(n, ir.VarPlace) and n.local is local for n in walk(node))


def filled_by_next(s: ir.Stmt, after: ir.Stmt | None) -> bool:
    """`x = T()` directly followed by `copy_from_user(x, ...)` or `if reap_cqe(ctx, q, x) ...`: the
    helper writes every byte of x (and zeroes it when it fails), so zeroing x first would be dead
    work (three instructions of cp_qd1 for its Cqe)."""
    if not (isinstance(s, ir.Assign) and isinstance(s.place, ir.VarPlace)
            and isinstance(s.value, ir.NewAggregate)):
        return False
    call = _first_call(after)
    if not (isinstance(call, ir.HelperCall) and call.name in _FILLING_HELPERS):
        return False
    pos = _FILLING_HELPERS[call.name]
    if len(call.args) <= pos:
        return False
    dst = call.args[pos]
    others = call.args[:pos] + call.args[pos + 1:]
    return (isinstance(dst, ir.DerefPlace) and isinstance(dst.ref, ir.Load)
            and isinstance(dst.ref.place, ir.VarPlace) and dst.ref.place.local is s.place.local
            and not _names_local(others, s.place.local))


def reads_place(e: object, place: ir.Place) -> bool:
    """Whether expression `e` loads from this very place object (`a[i] += v` shares it)."""
    if isinstance(e, ir.Load):
        return e.place is place
    if isinstance(e, (ir.Binary, ir.Compare, ir.Logical)):
        return reads_place(e.left, place) or reads_place(e.right, place)
    if isinstance(e, (ir.Cast,)):
        return reads_place(e.value, place)
    if isinstance(e, ir.Unary):
        return reads_place(e.operand, place)
    return False


class FunctionLowering:
    def __init__(self, ml: ModuleLowering, fn: ir.TypedFunction):
        self.ml = ml
        self.fn = fn
        self.f = ml.funcs[id(fn)]
        self.sp = self.f.metadata["dbg"]  # type: ignore[index]
        self.b = ll.IRBuilder()
        self.vars: dict[int, ll.Value] = {}
        self.slots: dict[int, ll.Value] = {}
        self.loops: list[tuple[ll.Block, ll.Block]] = []  # (continue target, break target)
        self._scratch: ll.Value | None = None
        self._temps: dict[str, ll.Value] = {}
        self.unzeroed: set[int] = set()  # NewAggregates whose zeroing would be overwritten at once
        self.place_addr: dict[int, ll.Value] = {}  # the place an augmented assignment updates
        self.hits: dict[int, ll.Value] = {}
        self.const_lookups: dict[tuple[int, int | None], ll.Value] = {}  # (map, key): hoisted lookup  # MapRefs whose lookup an enclosing `k in m` did

    # ---- set-up -------------------------------------------------------------------------------------
    def lower(self) -> None:
        entry = self.f.append_basic_block("entry")
        self.b.position_at_end(entry)
        self.at(self.fn.loc)
        self.entry_builder = ll.IRBuilder(entry)
        for local in self.fn.locals:
            # Each local in its own 8-byte stack slot: the verifier tracks a value spilled to the
            # stack per 8-byte slot, and a helper writing a 1-byte local (copy_from_user) would
            # otherwise turn a counter LLVM spilled into the same slot into unknown bytes, so two
            # trips of a loop look the same ("infinite loop detected"; found by the differential
            # tier). Locals that stay in registers are unaffected.
            slot = opaque(self.b.alloca(memty(local.type), name=local.name))
            slot.align = 8
            self.vars[id(local)] = slot
        for i, p in enumerate(self.fn.params):
            self.b.store(self.to_mem(target_bpf_ops.param_value(self, i), p.type), self.vars[id(p)])
            if i < len(self.f.args):
                self.f.args[i].name = p.name if self.fn.kind != "loop_step" else "ctx"
        for local in self.fn.locals:
            if not local.is_param:  # the verifier rejects reads of uninitialised stack
                self.b.store(ll.Constant(memty(local.type), None), self.vars[id(local)])
        for n, t in enumerate(self.fn.slots):
            a = opaque(self.b.alloca(ll.ArrayType(I8, t.size), name=f"obj{n}"))
            a.align = 8
            self.slots[n] = a
        if self.fn.verified_alone:     # after every alloca: they must stay in the entry block
            self.null_params_fail()
        hoist_const_lookups(self, self.fn.body)
        self.body(self.fn.body)
        if not self.b.block.is_terminated:
            self.at(SourceLocation(self.fn.source_file, self.fn.end_line))
            if self.fn.return_type is None:
                self.b.ret_void()
            else:
                self.b.ret(self.returned(ll.Constant(llty(self.fn.return_type), 0)))

    def null_params_fail(self) -> None:
        """The verifier checks a global function against its BTF argument types alone: a pointer
        argument may be NULL there, so a NULL struct argument returns -EFAULT before any use."""
        for i, p in enumerate(self.fn.params):
            if not isinstance(p.type, ir.RefType):
                continue
            arg = self.f.args[i]
            bad, ok = self.f.append_basic_block(f"{p.name}.null"), self.f.append_basic_block(f"{p.name}.ok")
            self.b.cbranch(self.b.icmp_unsigned("==", arg, ll.Constant(PTR, None)), bad, ok)
            self.b.position_at_end(bad)
            self.b.ret(self.returned(ll.Constant(llty(self.fn.return_type), -14)))  # -EFAULT
            self.b.position_at_end(ok)

    def at(self, loc: SourceLocation) -> None:
        self.loc = loc
        self.b.debug_metadata = self.ml.di.location(loc, self.sp)

    def temp(self, name: str, size: int, zero_at_entry: bool = False) -> ll.Value:
        """A stack temporary (map keys, values), shared by all uses in the function."""
        t = self._temps.get(name)
        if t is None or t.allocated_type.count < size:  # type: ignore[attr-defined]
            with self.b.goto_entry_block():
                self.b.position_at_start(self.f.entry_basic_block)
                t = opaque(self.b.alloca(ll.ArrayType(I8, max(size, 8)), name=name))
                t.align = 8
                if zero_at_entry and lowering_bulk.inline_ok(max(size, 8), 8):
                    # (a bigger one cannot be promoted to registers; its users zero it first)
                    self.b.position_after(t)
                    self.b.store(ll.Constant(ll.ArrayType(I8, max(size, 8)), None), t).align = 8
            self._temps[name] = t
        return t

    def scratch(self, size: int) -> ll.Value:
        # Zeroed at entry too: LLVM may promote the scratch object to registers, and an undefined first
        # value then becomes a register the verifier sees read before any write ("R8 !read_ok").
        # Keys and values need not be: they are always written before a helper reads them.
        return self.temp("scratch", size, zero_at_entry=True)

    # ---- conversions --------------------------------------------------------------------------------
    def to_mem(self, v: ll.Value, t: ir.IRType) -> ll.Value:
        return self.b.zext(v, I8) if isinstance(t, BoolType) else v

    def from_mem(self, v: ll.Value, t: ir.IRType) -> ll.Value:
        return self.b.icmp_unsigned("!=", v, ll.Constant(I8, 0)) if isinstance(t, BoolType) else v

    # ---- places -------------------------------------------------------------------------------------
    def addr(self, p: ir.Place) -> ll.Value:
        known = self.place_addr.get(id(p))
        if known is not None:
            return known
        if isinstance(p, ir.VarPlace):
            return self.vars[id(p.local)]
        if isinstance(p, ir.DerefPlace):
            return self.expr(p.ref)
        if isinstance(p, ir.FieldPlace):
            base = self.addr(p.base)
            if p.base.type is CTX_STRUCT:
                base = self.static_offset(base)
            return self.b.gep(base, [ll.Constant(I64, p.offset)], source_etype=I8) if p.offset else base
        if isinstance(p, ir.IndexPlace):
            return self.index_addr(p)
        raise InternalCompilerError(f"cannot address {p!r}", p.loc)

    def static_offset(self, ctx: ll.Value) -> ll.Value:
        """Mark a ctx pointer so LLVM keeps every access as `*(ctx + constant)`: the verifier rejects
        a load through a ctx pointer that was moved (`ctx + (c ? 8 : 12)`, which LLVM otherwise
        makes of `ctx.wait_nr if c else ctx.wait_idx`). The BPF backend's PreserveStaticOffset pass
        turns marked accesses into intrinsics that optimisations leave alone, as clang does for
        `__attribute__((preserve_static_offset))` structs."""
        m = self.ml.m
        fn = m.globals.get("llvm.preserve.static.offset")
        if fn is None:
            fn = ll.Function(m, ll.FunctionType(PTR, [PTR]), "llvm.preserve.static.offset")
        return self.b.call(fn, [ctx])

    def index_addr(self, p: ir.IndexPlace) -> ll.Value:
        base = self.addr(p.base)
        arr = p.base.type
        assert isinstance(arr, ArrayType)
        size = p.type.size
        if isinstance(p.index, ir.Const):
            return self.b.gep(base, [ll.Constant(I64, p.index.value * size)], source_etype=I8)
        if always_below(p.index, arr.length, self.local_bounds(), verifier=True):
            # Always inside (`a[i & 7]` on 8 elements, a counter below a loop's bound: ranges.py,
            # lower/local_bounds.py), by operations the verifier follows too: no check, so no barrier
            # either, and LLVM may strength-reduce the address in a loop, as clang does for C.
            # The barrier on the base hides its alignment: knowing an 8-aligned stack slot, LLVM may
            # add a small offset with `|`, which the verifier refuses on a pointer (found by the
            # differential tier: "bitwise operator |= on pointer prohibited").
            offset = self.b.mul(self.expr(p.index), ll.Constant(I64, size))
            return self.b.gep(self.barrier(base), [offset], source_etype=I8)
        # The barrier before the check too: else LLVM may test a narrower value idx was extended
        # from (`w6 < 5` for idx = sext(w6)) in another register than the address uses (found by
        # the differential tier: "math between fp pointer and register with unbounded min value").
        idx = self.barrier(self.expr(p.index))
        inside = self.b.icmp_unsigned("<", idx, ll.Constant(I64, arr.length))
        # The verifier learns the bound on idx from the branch, but only for the register it tested:
        # an address LLVM computed before the branch (hoisting the gep) would be unbounded. An empty
        # volatile asm on idx (libbpf's barrier_var) keeps the arithmetic below the check.
        return guarded_address(
            self, [inside],
            lambda: self.b.gep(base, [self.b.mul(self.barrier(idx), ll.Constant(I64, size))], source_etype=I8),
            size, "idx")

    def local_bounds(self) -> dict[int, int]:
        """Upper bounds of integer locals (lower/local_bounds.py), computed on first use."""
        if not hasattr(self, "_local_bounds"):
            self._local_bounds = local_bounds(self.fn)
        return self._local_bounds

    def returned(self, v: ll.Value) -> ll.Value:
        """A BPF-to-BPF callee's result, opaque: when LLVM can tell what it returns it drops the
        value (`ret undef`) and R0 keeps whatever it held, e.g. a stack address, which the verifier
        refuses ("cannot return stack pointer to the caller"; found by the differential tier)."""
        if self.fn.kind == "function" and not self.fn.inline:
            return self.barrier(v)
        return v

    def merge(self, checks: ll.Value | list[ll.Value], then: Arm, orelse: Arm,
              names: tuple[str, str, str]) -> ll.Value:
        """`then` where the i1 `checks` hold (a list: every one, tested in order), else `orelse`,
        joined by a phi; `names` label the then, else and join blocks. An arm given as a function is
        computed in a block of its own, so only the path that takes it runs it (it may call a
        helper, or zero the scratch object); one given as a value is already computed, and the test
        branches straight to the join."""
        b, f = self.b, self.f
        tests = checks if isinstance(checks, list) else [checks]
        made: dict[int, ll.Block] = {}

        def block(i: int) -> ll.Block:
            # Appended on first use (else before then, the join after the then arm): the layout the
            # guarded addresses always had, which LLVM's block placement follows.
            if i not in made:
                made[i] = f.append_basic_block(names[i])
            return made[i]

        reaching: tuple[list, list] = ([], [])      # (value, block) pairs from then / else to the join
        failed = block(1) if callable(orelse) else None
        for n, test in enumerate(tests):
            if n < len(tests) - 1:
                passed = f.append_basic_block(f"{names[0]}.check")
            else:
                passed = block(0) if callable(then) else block(2)
            b.cbranch(test, passed, failed or block(2))
            if failed is None:
                reaching[1].append((orelse, b.block))
            if passed is made.get(2):
                reaching[0].append((then, b.block))
            else:
                b.position_at_end(passed)
        for side, arm in enumerate((then, orelse)):
            if callable(arm):
                if side == 1:
                    b.position_at_end(block(1))
                value = arm()
                reaching[side].append((value, b.block))
                b.branch(block(2))
        b.position_at_end(block(2))
        phi = b.phi(reaching[0][0][0].type)
        for value, pred in reaching[0] + reaching[1]:
            phi.add_incoming(value, pred)
        return phi

    def barrier(self, v: ll.Value) -> ll.Value:
        """An empty volatile asm on `v` (libbpf's barrier_var): LLVM cannot hoist the arithmetic that
        uses it above a bounds or NULL check, where the verifier would see an unchecked offset or a
        pointer that may still be NULL."""
        asm = ll.InlineAsm(ll.FunctionType(v.type, [v.type]), "", "=r,0", side_effect=True)
        return self.b.call(asm, [v])

    def zeroed_scratch(self, size: int) -> ll.Value:
        if size >= STACK_SIZE:
            raise CompileError(
                f"a missing element here reads as a zeroed {size}-byte object, which needs a stack "
                f"scratch copy, and the BPF stack is {STACK_SIZE} bytes",
                getattr(self, "loc", None),
                "test the key first (`if k in m: v = m[k]` looks it up once and has no scratch "
                "copy), or keep such big values in an ArrayMap indexed by a key known in range")
        s = self.scratch(size)
        lowering_bulk.zero(self, s, size, 8)
        return s

    # ---- statements ---------------------------------------------------------------------------------
    def body(self, stmts: list[ir.Stmt]) -> None:
        for s, after in zip(stmts, stmts[1:] + [None]):
            if filled_by_next(s, after):
                self.unzeroed.add(id(s.value))  # type: ignore[union-attr]
            if self.b.block.is_terminated:
                self.b.position_at_end(self.f.append_basic_block("dead"))
            self.at(s.loc)
            try:
                self.stmt(s)
            except CompileError:
                raise
            except Exception as e:  # a bug of ours: report it at the Python statement being lowered
                raise InternalCompilerError(f"{type(e).__name__}: {e}", s.loc) from e

    def stmt(self, s: ir.Stmt) -> None:
        if isinstance(s, ir.Assign):
            self.assign(s)
        elif isinstance(s, ir.ExprStmt):
            self.expr(s.expr)
        elif isinstance(s, ir.If):
            self.if_stmt(s)
        elif isinstance(s, ir.Loop):
            self.loop(s)
        elif isinstance(s, ir.Break):
            self.b.branch(self.loops[-1][1])
        elif isinstance(s, ir.Continue):
            self.b.branch(self.loops[-1][0])
        elif isinstance(s, ir.Return):
            if s.value is None:
                self.b.ret_void()
            else:
                value = self.returned(self.expr(s.value))
                self.note_return_line(s)
                self.b.ret(value)
        elif isinstance(s, ir.Yield):
            self.yield_stmt(s)
        elif isinstance(s, ir.Resume):
            self.resume(s)
        else:
            raise InternalCompilerError(f"unknown statement {s!r}", s.loc)

    def assign(self, s: ir.Assign) -> None:
        if store(self, s):  # into a map value: one lookup, the write skipped for a missing key
            return
        t = s.place.type
        if isinstance(t, (StructType, ArrayType)):
            dst = self.addr(s.place)
            if s.value is None:
                self.zero(dst, t)
            else:
                src = self.addr(s.value)  # type: ignore[arg-type]
                self.memcpy(dst, src, t.size, t.align)
            return
        if isinstance(s.place, (ir.IndexPlace, ir.FieldPlace)) and reads_place(s.value, s.place):
            # `a[i] op= v`: the element's address once (as Python evaluates the subscript once), not
            # once for the load and again for the store, each with its own bounds check and scratch
            # path that the verifier walks.
            addr = self.addr(s.place)
            self.place_addr[id(s.place)] = addr
            try:
                value = self.expr(s.value)  # type: ignore[arg-type]
            finally:
                del self.place_addr[id(s.place)]
            self.b.store(self.to_mem(value, t), addr)
            return
        value = self.expr(s.value)  # type: ignore[arg-type]
        self.b.store(self.to_mem(value, t), self.addr(s.place))

    def memcpy(self, dst: ll.Value, src: ll.Value, size: int, align: int) -> None:
        """Copy `size` bytes between objects of a type aligned to `align`. The alignment matters:
        without it LLVM's BPF backend copies byte by byte (64 one-byte stores for an SQE into a map
        value, where clang, which knows the struct's alignment, does eight 8-byte ones). Every object
        is placed at its type's C alignment (structs.py lays fields out so, and stack slots, map
        values and the scratch slot are 8-aligned). Big objects are copied by a loop (lowering_bulk)."""
        lowering_bulk.copy(self, dst, src, size, align)

    def zero(self, dst: ll.Value, t: ir.IRType) -> None:
        """Zero an aggregate in place, with its alignment (wide stores, as for memcpy)."""
        lowering_bulk.zero(self, dst, t.size, t.align)  # type: ignore[union-attr]

    def if_stmt(self, s: ir.If) -> None:
        reused = lookup_reused_by(s)
        then = self.f.append_basic_block("if.then")
        orelse = self.f.append_basic_block("if.else") if s.orelse else None
        done = self.f.append_basic_block("if.end")
        if reused is not None:
            # `if k in m: x = m[k]`: one lookup, its pointer taken in the branch where it is not NULL.
            # Two lookups leave the verifier three kinds of x (the element, the scratch object the
            # second lookup's miss gives, the old x) to walk every later instruction with.
            p = lookup(self, s.cond.map, s.cond.key)  # type: ignore[attr-defined]
            self.b.cbranch(is_found(self, p), then, orelse or done)
            self.hits[id(reused)] = p
        else:
            self.b.cbranch(self.expr(s.cond), then, orelse or done)
        self.b.position_at_end(then)
        self.body(s.then)
        if not self.b.block.is_terminated:
            self.b.branch(done)
        if orelse is not None:
            self.b.position_at_end(orelse)
            self.body(s.orelse)
            if not self.b.block.is_terminated:
                self.b.branch(done)
        self.b.position_at_end(done)

    def loop(self, s: ir.Loop) -> None:
        head, body, step, done = (self.f.append_basic_block(n) for n in
                                  ("loop.head", "loop.body", "loop.step", "loop.end"))
        self.b.branch(head)
        self.b.position_at_end(head)
        self.at(s.loc)
        self.b.cbranch(self.expr(s.cond), body, done)
        self.b.position_at_end(body)
        self.loops.append((step, done))
        self.body(s.body)
        self.loops.pop()
        if not self.b.block.is_terminated:
            self.b.branch(step)
        self.b.position_at_end(step)
        self.body(s.step)
        self.at(s.loc)
        self.b.branch(head)
        self.b.position_at_end(done)

    def note_return_line(self, s: ir.Return) -> None:
        """An @iouring_program records the line of the return that ends its run in ctx.__line, so
        the runtime can locate an error it makes of the result (a bad WAIT, a bad return value)."""
        # Only where the program uses the extended ctx already: a 2021 ctx is 16 bytes, and a
        # kernel (or a test harness) that passes 16 bytes must keep accepting the others.
        if not self.fn.program_body or not self.fn.params or not self.fn.ctx_ext:
            return
        f = CTX_STRUCT.fields["__line"]
        ctx = self.static_offset(self.b.load(self.vars[id(self.fn.params[0])], typ=PTR))
        addr = self.b.gep(ctx, [ll.Constant(I64, f.offset)], source_etype=I8)
        self.b.store(ll.Constant(I32, s.loc.line), addr)

    # ---- generator programs (frontend/generators.py) -------------------------------------------------------
    def resume_block(self, index: int) -> ll.Block:
        blocks = self.__dict__.setdefault("_resume_blocks", {})
        if index not in blocks:
            blocks[index] = self.f.append_basic_block(f"resume.{index}")
        return blocks[index]

    def resume(self, s: ir.Resume) -> None:
        """Dispatch on the frame's resume point: 0 starts the body, k restores the locals yield k
        saved and jumps to right after it (into a loop body, if that is where it was)."""
        state = self.expr(s.state)
        start = self.f.append_basic_block("gen.start")
        switch = self.b.switch(state, start)
        for index, restore in sorted(s.restore.items()):
            block = self.f.append_basic_block(f"restore.{index}")
            switch.add_case(ll.Constant(state.type, index), block)
            self.b.position_at_end(block)
            self.body(restore)
            self.b.branch(self.resume_block(index))
        self.b.position_at_end(start)

    def yield_stmt(self, s: ir.Yield) -> None:
        self.body(s.save)
        self.body(s.suspend)          # sets the wait and returns WAIT
        self.b.position_at_end(self.resume_block(s.index))

    # ---- expressions --------------------------------------------------------------------------------
    def expr(self, e: ir.Expr) -> ll.Value:
        # The modules lowering_expr imports (lowering_lookup, lowering_maps, target_bpf_ops) lower
        # their sub-expressions through this method, so none of them imports lowering_expr back.
        return lower_expr(self, e)
