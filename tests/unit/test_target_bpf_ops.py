"""Target bpf_ops (Linux >= 7.1 io_uring loop) on the host: the ELF follows libbpf's conventions
(program section, struct_ops variable with the kernel's layout, kfunc relocations, .rodata/.bss
with BTF), the loader reads it as a struct_ops object, compile errors are located, and module
globals really behave as declared in the host kernel (generic target, BPF_PROG_TEST_RUN).
The programs themselves run in the 7.x guest: tests/guest/test_bpf_ops.py."""
from __future__ import annotations

import errno
import importlib.util
import io
import struct
import sys
import textwrap
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from elftools.elf.relocation import RelocationSection

from pybpfuring.compiler.driver import compile_full
from pybpfuring.errors import BpfSyscallError, CompileError
from pybpfuring.loader import BpfObject
from pybpfuring.loader.btf import DATASEC, FUNC, FUNC_PROTO, INT, PTR, STRUCT, VAR, Btf
from pybpfuring.loader.elf import R_BPF_64_32, R_BPF_64_ABS64
from pybpfuring.loader.sections import PROG_TYPE_STRUCT_OPS

ROOT = Path(__file__).resolve().parents[2]


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def nops():
    return _load(ROOT / "examples" / "bpf_nops.py", "pybpfuring_example_bpf_nops")


@pytest.fixture(scope="module")
def cp():
    return _load(ROOT / "examples" / "bpf_cp.py", "pybpfuring_example_bpf_cp")


@pytest.fixture(scope="module")
def nops_elf(nops) -> bytes:
    return compile_full([nops.nops_step], "bpf_ops").elf


def _elf(raw: bytes) -> ELFFile:
    return ELFFile(io.BytesIO(raw))


def _btf(raw: bytes) -> Btf:
    return Btf.parse(_elf(raw).get_section_by_name(".BTF").data())


def _relocs(raw: bytes, section: str) -> list[tuple[int, int, str]]:
    elf = _elf(raw)
    symtab = elf.get_section_by_name(".symtab")
    target = next(i for i, s in enumerate(elf.iter_sections()) if s.name == section)
    out = []
    for sec in elf.iter_sections():
        if isinstance(sec, RelocationSection) and sec["sh_info"] == target:
            for r in sec.iter_relocations():
                out.append((r["r_offset"], r["r_info_type"], symtab.get_symbol(r["r_info_sym"]).name))
    return out


def _compile_source(tmp_path: Path, source: str, target: str = "bpf_ops", name: str = "step"):
    path = tmp_path / f"prog_{abs(hash(source))}.py"
    path.write_text(textwrap.dedent(source))
    mod = _load(path, f"pybpfuring_test_{path.stem}")
    return compile_full([getattr(mod, name)], target).elf, path


# ---- ELF structure --------------------------------------------------------------------------------
def test_program_is_sleepable_struct_ops_section(nops_elf):
    names = [s.name for s in _elf(nops_elf).iter_sections()]
    assert "struct_ops.s/nops_step" in names
    assert ".struct_ops.link" in names and ".rodata" in names and ".bss" in names


def test_struct_ops_variable_has_the_kernel_layout(nops_elf):
    btf = _btf(nops_elf)
    sec = btf[btf.find_one(".struct_ops.link", DATASEC)]
    (var_id, _off, size), = sec.members
    assert btf.name(var_id) == "nops_step_ops" and size == 24
    sid = btf.resolve(btf[var_id].size_or_type)
    assert btf.name(sid) == "io_uring_bpf_ops" and btf[sid].kind == STRUCT
    members = {m.name: m for m in btf.members(sid)}
    assert [(m.name, m.byte_offset) for m in btf.members(sid)] == \
        [("loop_step", 0), ("ring_fd", 8), ("priv", 16)]
    fp = btf[btf.resolve(members["loop_step"].type_id)]
    proto = btf[btf.resolve(fp.size_or_type)]
    assert fp.kind == PTR and proto.kind == FUNC_PROTO and proto.vlen == 2
    params = [btf.name(btf.resolve(btf[btf.resolve(t)].size_or_type)) for _n, t in proto.members]
    assert params == ["io_ring_ctx", "iou_loop_params"]
    assert btf[btf.resolve(members["ring_fd"].type_id)].kind == INT and btf.size_of(members["ring_fd"].type_id) == 4
    priv = btf[btf.resolve(members["priv"].type_id)]
    assert priv.kind == PTR and priv.size_or_type == 0       # void *


def test_loop_step_member_is_relocated_to_the_program(nops_elf):
    assert _relocs(nops_elf, ".struct_ops.link") == [(0, R_BPF_64_ABS64, "nops_step")]


def test_kfunc_calls_are_extern_calls_into_ksyms(nops_elf):
    calls = {name for _off, rtype, name in _relocs(nops_elf, "struct_ops.s/nops_step")
             if rtype == R_BPF_64_32}
    assert calls == {"bpf_io_uring_get_region", "bpf_io_uring_submit_sqes"}
    symtab = _elf(nops_elf).get_section_by_name(".symtab")
    for name in calls:
        (sym,) = symtab.get_symbol_by_name(name)
        assert sym["st_shndx"] == "SHN_UNDEF" and sym["st_info"]["bind"] == "STB_GLOBAL"
    btf = _btf(nops_elf)
    ksyms = btf[btf.find_one(".ksyms", DATASEC)]
    assert {btf.name(t) for t, _o, _s in ksyms.members} == calls
    for t, _o, _s in ksyms.members:
        assert btf[t].kind == FUNC and btf[t].vlen == 2       # BTF_FUNC_EXTERN linkage
    proto = btf[btf[btf.find_one("bpf_io_uring_get_region", FUNC)].size_or_type]
    assert [btf.size_of(t) for _n, t in proto.members] == [8, 4, 8]


def test_program_btf_is_the_bpf_prog_ctx_signature(nops_elf):
    btf = _btf(nops_elf)
    func = btf[btf.find_one("nops_step", FUNC)]
    proto = btf[func.size_or_type]
    (param,) = proto.members
    assert btf.str_at(param[0]) == "ctx"
    ptr = btf[btf.resolve(param[1])]
    assert ptr.kind == PTR and btf.size_of(ptr.size_or_type) == 8      # unsigned long long *ctx


def test_read_only_and_mutable_globals_have_btf(nops_elf):
    btf = _btf(nops_elf)
    rodata = {btf.name(t) for t, _o, _s in btf[btf.find_one(".rodata", DATASEC)].members}
    assert rodata == {"cq_head_offset", "cq_tail_offset", "cqes_offset", "cq_entries", "sq_entries", "depth"}
    bss = {btf.name(t) for t, _o, _s in btf[btf.find_one(".bss", DATASEC)].members}
    assert bss == {"reqs_to_run", "reqs_inflight"}
    for t, _o, _s in btf[btf.find_one(".rodata", DATASEC)].members:
        assert btf[t].kind == VAR


def test_loader_sees_a_struct_ops_object(nops_elf):
    obj = BpfObject.open(nops_elf)
    ops = obj.struct_ops["nops_step_ops"]
    assert ops.type_name == "io_uring_bpf_ops" and ops.uses_link
    assert ops.programs == {"loop_step": "nops_step"}
    prog = obj.programs["nops_step"]
    assert prog.prog_type == PROG_TYPE_STRUCT_OPS and prog.sleepable
    assert sorted(r.name for r in prog.linked.extern_refs) == \
        ["bpf_io_uring_get_region", "bpf_io_uring_get_region", "bpf_io_uring_submit_sqes"]
    ops["ring_fd"] = 7
    obj.rodata["sq_entries"] = 8
    obj.bss["reqs_to_run"] = 1000
    assert (ops["ring_fd"], obj.rodata["sq_entries"], obj.bss["reqs_to_run"]) == (7, 8, 1000)
    obj.close()


def test_cp_has_data_with_initial_value_and_one_program(cp):
    raw = compile_full([cp.cp_step], "bpf_ops").elf
    obj = BpfObject.open(raw)
    assert list(obj.programs) == ["cp_step"]          # issue() was inlined
    assert obj.data["cp_result"] == -16               # Global(i32, -16) lives in .data
    assert obj.bss["cur_offset"] == 0
    obj.close()


# ---- compile errors --------------------------------------------------------------------------------
HEADER = """\
from pybpfuring.lang import *
from pybpfuring.lang import IoRingCtx, LoopParams, get_region, submit_sqes, ReadOnly, Global
size = ReadOnly(u32)
count = Global(u32)
"""


@pytest.mark.parametrize("body, message", [
    ("def step(ctx: IoRingCtx) -> int:\n    return 0", "takes (ctx: IoRingCtx, lp: LoopParams)"),
    ("def step(ctx: IoRingCtx, lp: LoopParams) -> int:\n    global size\n    size = 1\n    return 0",
     "ReadOnly global: programs cannot write it"),
    ("def step(ctx: IoRingCtx, lp: LoopParams) -> int:\n    count = 1\n    return 0",
     "write `global count` first"),
    ("def step(ctx: IoRingCtx, lp: LoopParams) -> int:\n    r = get_region(ctx, 2, 64)\n"
     "    return r.load_f32(0)", "a Region has no method 'load_f32'"),
    ("def step(ctx: IoRingCtx, lp: LoopParams) -> int:\n    r = get_region(ctx, 2, 0)\n    return 0",
     "a region of size 0"),
    ("def step(ctx: IoRingCtx, lp: LoopParams) -> int:\n    return submit_sqes(lp, 1)",
     "first argument of submit_sqes() is the loop's ctx"),
])
def test_loop_step_errors_are_located(tmp_path, body, message):
    src = HEADER + "\n\n@loop_step\n" + body + "\n"
    with pytest.raises(CompileError) as info:
        _compile_source(tmp_path, src)
    assert message in str(info.value)
    assert info.value.loc is not None and info.value.loc.line > HEADER.count("\n")


def test_kfuncs_and_loop_step_need_the_bpf_ops_target(tmp_path):
    src = HEADER + textwrap.dedent("""
        @iouring_program
        def prog(ctx: Ctx) -> int:
            return submit_sqes(ctx, 1)
        """)
    with pytest.raises(CompileError, match="available on target 'bpf_ops' only"):
        _compile_source(tmp_path, src, target="op_bpf", name="prog")
    src = HEADER + "\n\n@loop_step\ndef step(ctx: IoRingCtx, lp: LoopParams) -> int:\n    return 1\n"
    with pytest.raises(CompileError, match="compile them for target 'bpf_ops'"):
        _compile_source(tmp_path, src, target="generic")


# ---- globals in the host kernel ----------------------------------------------------------------------
def _bpf_permitted() -> None:
    from pybpfuring.loader import syscalls
    try:
        syscalls.close_fd(syscalls.map_create(2, 4, 8, 1, name="probe"))
    except BpfSyscallError as exc:
        if exc.errno in (errno.EPERM, errno.EACCES, errno.ENOSYS):
            pytest.skip(f"bpf() is not available here: {exc}")
        raise


GLOBALS_PROGRAM = """\
from pybpfuring.lang import *
from pybpfuring.lang import ReadOnly, Global

scale = ReadOnly(u32, 3)
total = Global(u64)
runs = Global(u32, 100)


@iouring_program
def prog(ctx: Ctx) -> int:
    global total, runs
    total += ctx.user_data * scale
    runs = runs + 1
    return OK
"""


def test_globals_behave_as_declared_in_the_kernel(tmp_path):
    _bpf_permitted()
    raw, _path = _compile_source(tmp_path, GLOBALS_PROGRAM, target="generic", name="prog")
    ctx = struct.pack("<QII", 5, 0, 0)
    with BpfObject.open(raw) as obj:
        assert obj.rodata["scale"] == 3 and obj.data["runs"] == 100
        obj.rodata["scale"] = 7                      # set before load: the program sees 7
        obj.load()
        prog = obj.programs["prog"]
        assert prog.test_run(ctx)[0] == 0
        assert prog.test_run(ctx)[0] == 0
        assert obj.bss["total"] == 2 * 5 * 7 and obj.data["runs"] == 102
        obj.bss["total"] = 1                          # user space writes the live variable
        prog.test_run(ctx)
        assert obj.bss["total"] == 1 + 35


# ---- step 2: the generated scheduler ---------------------------------------------------------------
MODEL_PROGRAM = """\
from pybpfuring.lang import *

hits = ArrayMap(u64, 2)


@iouring_program
def prog(ctx: Ctx) -> int:
    sqe = Sqe()
    prep_nop(sqe)
    sqe.cq_idx = 1
    submit(ctx, sqe)
    hits[0] += 1
    return OK
"""


def test_scheduler_calls_programs_as_global_functions(tmp_path):
    """Each program is a global BPF function the verifier checks on its own (BTF linkage global)."""
    from pybpfuring.runtime.backends.bpf_ops_scheduler import build_scheduler, scheduler_source
    assert scheduler_source(3).count("return i64(_program_") == 3
    path = tmp_path / "model_prog.py"
    path.write_text(MODEL_PROGRAM)
    mod = _load(path, "pybpfuring_test_model_prog")
    step = build_scheduler([mod.prog])
    raw = compile_full([step], "bpf_ops").elf
    obj = BpfObject.open(raw)
    assert list(obj.programs) == ["model_step"]
    assert obj.struct_ops["model_step_ops"].programs == {"loop_step": "model_step"}
    assert {"model_cq", "model_cqes", "model_reqs", "model_staged", "model_insts", "model_starts",
            "model_ctl", "hits"} <= set(obj.maps)
    funcs = {obj.btf.str_at(t.name_off): t.vlen for t in obj.btf.types
             if t is not None and t.kind_name == "FUNC"}
    assert funcs["prog"] == 1 and funcs["model_post"] == 1     # BTF_FUNC_GLOBAL
    calls = {r.name for r in obj.programs["model_step"].linked.extern_refs}
    assert calls == {"bpf_io_uring_get_region", "bpf_io_uring_submit_sqes"}
    obj.close()


def test_scheduler_takes_iouring_programs_only(nops):
    from pybpfuring.runtime.backends.bpf_ops_scheduler import build_scheduler
    with pytest.raises(TypeError, match="runs @iouring_program functions"):
        build_scheduler([nops.nops_step])
    with pytest.raises(ValueError, match="1 to 100 programs"):
        build_scheduler([])


def test_ring_backend_bpf_ops_says_why_it_cannot_run_here():
    from pybpfuring.runtime import Ring
    from pybpfuring.runtime.backends.bpf_ops import kernel_has_loop_ops
    if kernel_has_loop_ops():
        pytest.skip("this kernel has io_uring_bpf_ops: tests/guest/test_bpf_ops.py runs the backend")
    with pytest.raises(ValueError, match="backend 'bpf_ops' cannot run here: the kernel has no "
                                         "io_uring_bpf_ops"):
        Ring(8, backend="bpf_ops")
    with Ring(8) as ring:                      # "auto" keeps the emulated backend
        assert ring.backend == "emulated"


def test_stock_bpftool_generates_a_skeleton_for_our_object(cp, tmp_path):
    """bpftool (Debian sid's 7.8, from the guest cache) reads our ELF as a libbpf object: the
    skeleton has the struct_ops with ring_fd, the program and the .rodata/.bss/.data variables."""
    import subprocess

    from pybpfuring.vm import sid_command
    from pybpfuring.vm.cache import cache_dir
    sid = cache_dir() / "sid"
    if not (sid / "usr" / "sbin" / "bpftool").is_file():
        pytest.skip("sid's bpftool is not in the pybpfuring cache (run `python3 -m pybpfuring.vm fetch`)")
    obj = tmp_path / "bpf_cp.o"
    obj.write_bytes(compile_full([cp.cp_step], "bpf_ops").elf)
    proc = subprocess.run([*sid_command(sid, "usr/sbin/bpftool"), "gen", "skeleton", str(obj),
                           "name", "bpf_cp"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    skel = proc.stdout
    assert "struct bpf_cp__cp_step_ops__io_uring_bpf_ops {" in skel
    assert "unsigned int ring_fd;" in skel and "struct bpf_program *loop_step;" in skel
    assert "struct bpf_program *cp_step;" in skel
    for decl in ("u32 cq_head_offset;", "u32 sq_entries;", "i32 input_fd;", "u64 cur_offset;",
                 "i32 cp_result;"):
        assert decl in skel, decl
