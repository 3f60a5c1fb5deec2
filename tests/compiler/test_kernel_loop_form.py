"""The kernel-loop form an object from `pybpfuring compile` carries (docs/kernel.md, "Objects
without their source"): every program's body as bitcode, linked into the kernel backend's scheduler
as the same functions, of the same sizes, that a compile from source gives; every loader still
reads the object; a damaged form, one from another compiler or a missing program is a clear error,
never a guess."""
from __future__ import annotations

import ctypes
import io
import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from pybpfuring.compiler import kernel_loop
from pybpfuring.compiler.driver import compile_functions, compile_object, load_module, programs_in
from pybpfuring.runtime import Ring
from pybpfuring.loader import BpfObject
from pybpfuring.runtime.backends.bpf_ops_scheduler import compile_scheduler

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def reference():
    module = load_module(ROOT / "examples" / "reference.py")
    return programs_in(module)


@pytest.fixture(scope="module")
def obj(reference) -> bytes:
    return compile_object(reference)


def test_the_object_carries_every_programs_body_in_order(obj, reference):
    bodies = kernel_loop.read(obj, None)
    assert [b.name for b in bodies] == ["test", "counting", "pingpong", "write_file"]
    assert [b.name for b in kernel_loop.read(obj, ["pingpong", "test"])] == ["pingpong", "test"]
    assert all(b.bitcode.startswith(b"BC\xc0\xde") for b in bodies)     # LLVM bitcode


def test_loaders_still_read_the_object_as_before(obj, reference):
    plain = compile_functions(reference)
    assert obj.startswith(plain[:16]) and len(obj) > len(plain)
    assert kernel_loop.read(plain, None) is None            # compile_functions makes no form
    with BpfObject.open(obj) as a, BpfObject.open(plain) as b:
        assert list(a.programs) == list(b.programs)
        assert {n: a.programs[n].insns for n in a.programs} == {n: b.programs[n].insns for n in b.programs}
        assert set(a.maps) == set(b.maps)


def test_the_emulated_backend_runs_the_object(tmp_path, obj):
    path = tmp_path / "reference.bpf.o"
    path.write_bytes(obj)
    with Ring(8, cqs=[128, 128], backend="emulated") as ring:
        assert ring.register_programs(str(path)) == ["test", "counting", "pingpong", "write_file"]
        secret = ring.user_memory(ctypes.c_uint64)
        secret.value = 29
        ring.prep_bpf("test", user_data=ctypes.addressof(secret))
        ring.submit_and_wait(3)
        assert secret.value == 31


def _functions(elf: bytes) -> dict[str, int]:
    """Each BPF function of an object, with its size in instructions."""
    symtab = ELFFile(io.BytesIO(elf)).get_section_by_name(".symtab")
    return {s.name: s["st_size"] // 8 for s in symtab.iter_symbols() if s["st_info"]["type"] == "STT_FUNC"}


def test_linking_the_bodies_gives_the_scheduler_compiled_from_source(obj, reference):
    """The same functions, each of the same size (LLVM may lay out a function's blocks in another
    order: the bodies are optimised in another module before they meet the scheduler)."""
    _, from_source = compile_scheduler(reference)
    _, linked = compile_scheduler(kernel_loop.read(obj, None))
    source_functions = _functions(from_source)
    assert {"model_step", "test", "counting", "pingpong", "write_file"} <= set(source_functions)
    assert sum(source_functions.values()) > 1000
    assert _functions(linked) == source_functions


def test_a_subset_in_another_order_links_too(obj, reference):
    _, linked = compile_scheduler(kernel_loop.read(obj, ["write_file", "test"]))
    with BpfObject.open(linked) as o:
        assert "model_step" in o.programs


def _rewrite(obj: bytes, edit) -> bytes:
    """The object with its form's header or blobs changed by `edit(header, blobs)`."""
    data = kernel_loop._section_data(obj)
    (size,) = struct.unpack_from("<I", data, 8)
    header = json.loads(data[12:12 + size])
    header, blobs = edit(header, bytearray(data[12 + size:]))
    text = json.dumps(header).encode()
    form = kernel_loop.MAGIC + struct.pack("<I", len(text)) + text + bytes(blobs)
    return kernel_loop.add_section(_strip_form_name(obj), kernel_loop.SECTION, form)


def _strip_form_name(obj: bytes) -> bytes:
    # Rename the existing section so the rewritten one is the only one under SECTION.
    name = kernel_loop.SECTION.encode()
    i = obj.rfind(name + b"\0")
    return obj[:i] + b".x" + name[2:] + obj[i + len(name):]


def test_a_damaged_body_is_refused(obj):
    def flip(header, blobs):
        blobs[len(blobs) // 2] ^= 0xFF
        return header, blobs
    bad = _rewrite(obj, flip)
    with pytest.raises(kernel_loop.KernelLoopFormError, match="damaged"):
        kernel_loop.read(bad, None)


def test_a_form_from_another_compiler_is_refused(obj):
    bad = _rewrite(obj, lambda h, b: ({**h, "compiler": "0" * 64}, b))
    with pytest.raises(kernel_loop.KernelLoopFormError, match="another version of pybpfuring"):
        kernel_loop.read(bad, None)


def test_a_missing_program_is_named(obj):
    with pytest.raises(kernel_loop.KernelLoopFormError, match="no program 'nope'.*test, counting"):
        kernel_loop.read(obj, ["nope"])


def test_a_program_without_a_body_says_why(obj):
    def drop(header, blobs):
        header["programs"][1] = {"name": "counting", "error": "uses a thing bpf_ops lacks"}
        return header, blobs
    bad = _rewrite(obj, drop)
    assert [b.name for b in kernel_loop.read(bad, ["test"])] == ["test"]
    with pytest.raises(kernel_loop.KernelLoopFormError, match="counting.*uses a thing bpf_ops lacks"):
        kernel_loop.read(bad, None)


def test_garbage_in_the_section_is_a_clear_error(obj):
    bad = kernel_loop.add_section(_strip_form_name(obj), kernel_loop.SECTION, b"PBUKLP01\xff\xff")
    with pytest.raises(kernel_loop.KernelLoopFormError, match="damaged"):
        kernel_loop.read(bad, None)


def test_the_command_line_writes_the_form(tmp_path):
    out = tmp_path / "ref.bpf.o"
    subprocess.run([sys.executable, "-m", "pybpfuring", "compile", str(ROOT / "examples" / "reference.py"),
                    "-o", str(out)], check=True, capture_output=True)
    bodies = kernel_loop.read(out.read_bytes(), None)
    assert bodies is not None and bodies[0].name == "test"
