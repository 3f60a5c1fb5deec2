"""Objects from our own compiler (Python source, `generic` target = SEC("syscall")) through the
loader into the host kernel: the end-to-end path, verifier errors mapped to Python lines."""
from __future__ import annotations

import importlib.util
import io
import struct
import textwrap

import pytest
from elftools.elf.elffile import ELFFile

from pybpfuring.errors import VerifierError
from pybpfuring.loader import BpfObject

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("bpf_available")]

SOURCE = textwrap.dedent("""\
    from pybpfuring import Ctx, ArrayMap, u64, iouring_program, OK
    from pybpfuring.lang import bpf_function

    arr = ArrayMap(u64, 4)


    @bpf_function(inline=False)
    def twice(x: u64) -> u64:
        return x * 2


    @iouring_program
    def prog(ctx: Ctx) -> int:
        arr[1] = twice(ctx.user_data) + 1
        return OK
    """)
CTX = struct.Struct("<QII")   # Ctx: user_data, wait_nr, wait_idx


@pytest.fixture
def compiled(tmp_path) -> tuple[bytes, str]:
    path = tmp_path / "doubler.py"
    path.write_text(SOURCE)
    spec = importlib.util.spec_from_file_location("pybpfuring_test_doubler", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.prog.compile(target="generic"), str(path)


def test_compiled_python_program_runs_in_the_kernel(compiled):
    elf, path = compiled
    with BpfObject.open(elf) as obj:
        prog = obj.programs["prog"]
        assert [f.name for f, _ in prog.linked.layout] == ["prog", "twice"]   # a real BPF call
        assert {sl.file for sl in prog.line_info.values()} == {path}
        obj.load()
        retval, _ = prog.test_run(CTX.pack(20, 0, 0))
        assert retval == 0 and obj.maps["arr"].items() == [(0, 0), (1, 41), (2, 0), (3, 0)]


def test_verifier_rejection_names_the_python_line(compiled):
    elf, path = compiled
    # Make the store into the map value go 8 bytes past it, as a compiler bug would.
    patched = _patch_first_store(elf, "syscall", new_off=8)
    obj = BpfObject.open(patched)
    with pytest.raises(VerifierError) as info:
        obj.load()
    err = info.value
    line = SOURCE.splitlines().index("    arr[1] = twice(ctx.user_data) + 1") + 1
    assert err.loc is not None and (err.loc.file, err.loc.line) == (path, line)
    assert err.loc.col == 4                                  # where the statement starts
    assert f"{path}:{line}:5" in str(err) and "arr[1] = twice(ctx.user_data) + 1" in str(err)
    assert "invalid" in err.summary and err.insn is not None


def _patch_first_store(elf: bytes, section: str, new_off: int) -> bytes:
    """Set `off` of the first 64-bit store through a register other than r10 in `section`."""
    sec = ELFFile(io.BytesIO(elf)).get_section_by_name(section)
    base, raw = sec["sh_offset"], bytearray(elf)
    for i in range(sec["sh_size"] // 8):
        code, regs, off, imm = struct.unpack_from("<BBhi", raw, base + 8 * i)
        if code == 0x7B and regs & 0xF != 10:
            struct.pack_into("<BBhi", raw, base + 8 * i, code, regs, new_off, imm)
            return bytes(raw)
    raise AssertionError("no 64-bit store to patch")
