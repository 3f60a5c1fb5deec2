"""The typed IR: what the frontend produces and the lowering (and the reference evaluator) consume.

Every node carries its source location and, for expressions, its language type; every implicit C
conversion is an explicit `Cast`, so later stages never re-derive types. Scalars are values; structs and
arrays are reached through references (`RefType`), as Python objects are.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from ..errors import SourceLocation
from ..lang.maps import MapDef
from ..lang.types import ArrayType, BoolType, IntType, StructType, ValueType

Scalar = Union[IntType, BoolType]
Aggregate = Union[StructType, ArrayType]


@dataclass(frozen=True)
class RefType:
    """A reference to a struct or array (a pointer the verifier can follow)."""

    pointee: ValueType

    @property
    def name(self) -> str:
        return f"ref {self.pointee.name}"


IRType = Union[IntType, BoolType, RefType, StructType, ArrayType, None]


# ---- places (lvalues) ------------------------------------------------------------------------------
@dataclass(eq=False)
class Local:
    name: str
    type: IRType
    loc: SourceLocation
    is_param: bool = False


@dataclass(eq=False)
class VarPlace:
    local: Local
    loc: SourceLocation

    @property
    def type(self) -> IRType:
        return self.local.type


@dataclass(eq=False)
class DerefPlace:
    ref: "Expr"  # of RefType
    loc: SourceLocation

    @property
    def type(self) -> IRType:
        return self.ref.type.pointee  # type: ignore[union-attr]


@dataclass(eq=False)
class FieldPlace:
    base: "Place"  # of StructType
    name: str
    offset: int
    type: ValueType
    loc: SourceLocation


@dataclass(eq=False)
class IndexPlace:
    """`base[index]`; an index past the end reads 0 and drops writes (checked at run time)."""

    base: "Place"  # of ArrayType
    index: "Expr"
    type: ValueType
    loc: SourceLocation


Place = Union[VarPlace, DerefPlace, FieldPlace, IndexPlace]


# ---- expressions -----------------------------------------------------------------------------------
@dataclass(eq=False)
class Const:
    value: int
    type: Scalar
    loc: SourceLocation


@dataclass(eq=False)
class Load:
    place: Place
    type: IRType
    loc: SourceLocation


@dataclass(eq=False)
class Cast:
    value: "Expr"
    type: Scalar
    loc: SourceLocation


@dataclass(eq=False)
class Binary:
    op: str  # + - * / % & | ^ << >>   (/ and % are C's truncating ones, x/0 == 0, x%0 == x)
    left: "Expr"
    right: "Expr"
    type: IntType
    loc: SourceLocation


@dataclass(eq=False)
class Unary:
    op: str  # neg, invert
    operand: "Expr"
    type: IntType
    loc: SourceLocation


@dataclass(eq=False)
class Compare:
    op: str  # == != < <= > >=, signedness from the operands' (common) type
    left: "Expr"
    right: "Expr"
    loc: SourceLocation
    type: BoolType = field(default=None)  # type: ignore[assignment]


@dataclass(eq=False)
class Logical:
    op: str  # and, or (short-circuit); operands are bool
    left: "Expr"
    right: "Expr"
    loc: SourceLocation
    type: BoolType = field(default=None)  # type: ignore[assignment]


@dataclass(eq=False)
class Not:
    operand: "Expr"  # bool
    loc: SourceLocation
    type: BoolType = field(default=None)  # type: ignore[assignment]


@dataclass(eq=False)
class Truth:
    """An integer used as a condition: value != 0."""

    operand: "Expr"
    loc: SourceLocation
    type: BoolType = field(default=None)  # type: ignore[assignment]


@dataclass(eq=False)
class Select:
    cond: "Expr"
    then: "Expr"
    orelse: "Expr"
    type: IRType
    loc: SourceLocation


@dataclass(eq=False)
class RefOf:
    """A reference to an aggregate place."""

    place: Place
    type: RefType
    loc: SourceLocation


@dataclass(eq=False)
class NewAggregate:
    """A fresh zeroed stack object (`Sqe()`); `slot` numbers its stack slot within the function."""

    slot: int
    type: RefType
    loc: SourceLocation


@dataclass(eq=False)
class MapRef:
    """A reference to the value of `key` in `map`; a missing key yields a zeroed scratch object."""

    map: "MapInfo"
    key: "Expr | Place"
    type: RefType
    loc: SourceLocation
    # Set where the key cannot miss (a checked array index): a miss returns this from the
    # function instead of using a zeroed scratch object, which would take the value's size of
    # stack (the kernel backend's programs have about 220 bytes).
    miss_returns: int | None = None


@dataclass(eq=False)
class MapGet:
    """`m.get(k, default)` for scalar values, and `k in m` (`default` None, type bool)."""

    map: "MapInfo"
    key: "Expr | Place"
    default: "Expr | None"
    type: Scalar
    loc: SourceLocation


@dataclass(eq=False)
class MapUpdate:
    """`m[k] = v` on a hash map (`bpf_map_update_elem(BPF_ANY)`), `del m[k]` when value is None."""

    map: "MapInfo"
    key: "Expr | Place"
    value: "Expr | Place | None"
    loc: SourceLocation
    type: IntType = field(default=None)  # type: ignore[assignment]


@dataclass(eq=False)
class Call:
    func: "TypedFunction"
    args: list["Expr"]
    type: IRType
    loc: SourceLocation


@dataclass(eq=False)
class HelperCall:
    """A helper or kfunc; `args` are scalar Exprs or Places (passed by address)."""

    name: str
    args: list["Expr | Place"]
    type: IntType
    loc: SourceLocation
    # Byte string for printk's format (emitted on the stack).
    data: bytes | None = None


# ---- the Linux >= 7.1 loop target (bpf_ops): globals, kfuncs, regions -----------------------------
@dataclass(eq=False)
class GlobalInfo:
    """A module-level `ReadOnly`/`Global` variable (`decl` is the lang.globals.GlobalDecl)."""

    name: str
    decl: object
    loc: SourceLocation


@dataclass(eq=False)
class GlobalRef:
    """The address of a global variable (a `DerefPlace` of it is the variable)."""

    info: GlobalInfo
    type: RefType
    loc: SourceLocation


@dataclass(eq=False)
class KfuncCall:
    """A call of a kernel function (kfunc) by name; `type` is IntType or lang.loop.RegionType."""

    name: str
    args: list["Expr"]
    type: object
    loc: SourceLocation


@dataclass(eq=False)
class RegionView:
    """A reference to a `type.pointee` at byte `offset` of a region, checked against the region's
    size; outside it (or on a NULL region) a zeroed scratch object (reads 0, writes dropped)."""

    region: "Expr"
    offset: "Expr"
    type: RefType
    loc: SourceLocation


@dataclass(eq=False)
class RegionValid:
    """`bool(region)`: the kernel gave the region (not NULL)."""

    region: "Expr"
    loc: SourceLocation
    type: BoolType = field(default=None)  # type: ignore[assignment]


@dataclass(eq=False)
class ByteRef:
    """A reference to the `type.pointee` at byte `offset` of a place (its bytes read as an int)."""

    place: "Place"
    offset: int
    type: RefType
    loc: SourceLocation


@dataclass(eq=False)
class StoreExpr:
    """A store used as a call statement (`r.store_u32(off, v)`); it has no value."""

    place: "Place"
    value: "Expr"
    loc: SourceLocation
    type: None = None


Expr = Union[Const, Load, Cast, Binary, Unary, Compare, Logical, Not, Truth, Select, RefOf,
             NewAggregate, MapRef, MapGet, MapUpdate, Call, HelperCall,
             GlobalRef, KfuncCall, RegionView, RegionValid, StoreExpr, ByteRef]


# ---- statements ------------------------------------------------------------------------------------
@dataclass(eq=False)
class Assign:
    """`place = value`: scalar store, or aggregate copy when `value` is a Place (or None: zero it)."""

    place: Place
    value: "Expr | Place | None"
    loc: SourceLocation


@dataclass(eq=False)
class ExprStmt:
    expr: Expr
    loc: SourceLocation


@dataclass(eq=False)
class If:
    cond: Expr
    then: list["Stmt"]
    orelse: list["Stmt"]
    loc: SourceLocation


@dataclass(eq=False)
class Loop:
    """`while cond: body` with `step` run before each re-test (a `for` loop's increment)."""

    cond: Expr
    body: list["Stmt"]
    step: list["Stmt"]
    bound: int  # the largest trip count the compiler proved
    loc: SourceLocation


@dataclass(eq=False)
class Break:
    loc: SourceLocation


@dataclass(eq=False)
class Continue:
    loc: SourceLocation


@dataclass(eq=False)
class Return:
    value: Expr | None
    loc: SourceLocation


@dataclass(eq=False)
class Yield:
    """A generator program's `yield`: store the live locals in the request's frame (`save`, which
    also records `index` as the resume point), set the wait and return WAIT (`suspend`, ending in a
    Return); the statements after it run when the request is resumed at `index`."""

    index: int
    save: list["Stmt"]
    suspend: list["Stmt"]
    loc: SourceLocation


@dataclass(eq=False)
class Resume:
    """A generator program's dispatch, after its prologue: when `state` (the frame's resume point)
    is k, run `restore[k]` (the locals back from the frame) and go on right after Yield k."""

    state: Expr
    restore: dict[int, list["Stmt"]]
    loc: SourceLocation


Stmt = Union[Assign, ExprStmt, If, Loop, Break, Continue, Return, Yield, Resume]


# ---- functions and modules -------------------------------------------------------------------------
@dataclass(eq=False)
class MapInfo:
    name: str
    defn: MapDef
    loc: SourceLocation


@dataclass(eq=False)
class TypedFunction:
    name: str
    kind: str  # iouring, function, loop_step
    params: list[Local]
    return_type: IRType
    body: list[Stmt]
    loc: SourceLocation
    source_file: str
    inline: bool = True
    verified_alone: bool = False  # a global BPF function (BTF linkage global)
    # Reads or writes ctx fields past the 2021 struct: it then also records its return lines.
    ctx_ext: bool = False
    program_body: bool = False   # an @iouring_program (or its body compiled as a function)
    locals: list[Local] = field(default_factory=list)
    # Stack objects made by `S()`, by slot number.
    slots: list[ValueType] = field(default_factory=list)
    callees: list["TypedFunction"] = field(default_factory=list)
    maps: list[MapInfo] = field(default_factory=list)
    end_line: int = 0
    # Bytes of stack the function's objects need, its inlined callees' included.
    stack_size: int = 0


@dataclass(eq=False)
class TypedModule:
    functions: list[TypedFunction]  # programs first, then callees in call order
    maps: list[MapInfo]
    target: str
    license: str = "GPL"
    globals: list[GlobalInfo] = field(default_factory=list)

    @property
    def programs(self) -> list[TypedFunction]:
        return [f for f in self.functions if f.kind != "function"]
