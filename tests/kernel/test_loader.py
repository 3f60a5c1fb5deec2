"""The loader against the host kernel: clang-built objects, loaded and run with BPF_PROG_TEST_RUN
(sleepable BPF_PROG_TYPE_SYSCALL programs, whose ctx is any buffer we pass)."""
from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from pybpfuring.errors import BpfSyscallError, VerifierError
from pybpfuring.loader import BpfObject, ElfObjectError, MapError, UnsupportedSection
from pybpfuring.loader.sections import PROG_TYPE_SYSCALL

pytestmark = [pytest.mark.kernel, pytest.mark.usefixtures("bpf_available")]

PROGS = Path(__file__).parent / "progs"


def source_line_of(name: str, marker: str) -> int:
    """1-based line of progs/name.c that contains `marker`."""
    for i, line in enumerate((PROGS / f"{name}.c").read_text().splitlines(), 1):
        if marker in line:
            return i
    raise AssertionError(f"{marker!r} not in {name}.c")


ARGS = struct.Struct("<QQQII")   # struct args of syscall_basic.c: a, b, sum, counter_key, pad


def test_syscall_program_reads_and_writes_ctx(build):
    with BpfObject.open(build("syscall_basic")) as obj:
        obj.load()
        prog = obj.programs["add"]
        assert prog.prog_type == PROG_TYPE_SYSCALL and prog.sleepable and prog.fd >= 0
        ctx = bytearray(ARGS.pack(300, 45, 0, 2, 0))
        retval, ctx_out = prog.test_run(ctx)
        assert retval == 345 & 0xFF
        assert ARGS.unpack(ctx_out) == (300, 45, 345, 2, 1000)
        assert bytes(ctx) == ctx_out          # a bytearray ctx is updated in place


def test_array_and_hash_maps_before_and_after_a_run(build):
    with BpfObject.open(build("syscall_basic")) as obj:
        obj.load()
        counters, seen = obj.maps["counters"], obj.maps["seen"]
        assert len(counters) == 4 and counters.items() == [(0, 0), (1, 0), (2, 0), (3, 0)]
        assert len(seen) == 0 and 7 not in seen and seen.get(7, "none") == "none"
        counters[3] = 41
        seen[9] = 123
        obj.programs["add"].test_run(ARGS.pack(1, 2, 0, 3, 0))
        obj.programs["add"].test_run(ARGS.pack(10, 20, 0, 1, 0))
        assert counters[3] == 42 and counters[1] == 1 and counters[0] == 0
        assert dict(seen.items()) == {9: 123, 3: 3, 1: 30}
        assert sorted(seen) == [1, 3, 9] and len(seen) == 3
        del seen[9]
        assert 9 not in seen
        with pytest.raises(KeyError):
            seen[9]
        with pytest.raises(KeyError):
            del seen[9]
        with pytest.raises(MapError, match="array"):
            del counters[0]
        with pytest.raises(MapError, match="4 bytes"):
            counters[b"\x01"] = 1
        with pytest.raises(MapError, match="does not fit"):
            counters[0] = 1 << 64


def test_global_data_rodata_before_load_data_after(build):
    with BpfObject.open(build("syscall_basic")) as obj:
        assert obj.rodata["scale"] == 1 and obj.data["bias"] == 1000
        obj.rodata["scale"] = 3                     # read-only data: set before load
        obj.load()
        prog = obj.programs["add"]
        _, out = prog.test_run(ARGS.pack(2, 5, 0, 0, 0))
        assert ARGS.unpack(out)[2] == 21
        assert obj.bss["runs"] == 1 and obj.bss["last_sum"] == 21
        obj.data["bias"] = 77                       # writable data: changed between runs
        _, out = prog.test_run(ARGS.pack(1, 1, 0, 0, 0))
        assert ARGS.unpack(out) == (1, 1, 6, 0, 77)
        assert obj.bss["runs"] == 2
        with pytest.raises(MapError, match="frozen"):
            obj.rodata["scale"] = 4
        assert obj.rodata["scale"] == 3
        with pytest.raises(MapError, match="no variable"):
            obj.bss["nope"]


def test_bpf_to_bpf_calls_and_callbacks(build):
    with BpfObject.open(build("calls")) as obj:
        powers, triangle = obj.programs["powers"], obj.programs["triangle"]
        # Each program carries its own copy of the functions it calls, each appended once.
        assert [f.name for f, _ in powers.linked.layout] == ["powers", "square", "cube"]
        assert {f.name for f, _ in triangle.linked.layout} == {"triangle", "add_index", "cube",
                                                              "square"}
        obj.load()
        for x in (0, 3, 4):
            retval, out = powers.test_run(struct.pack("<QQ", x, 0))
            assert retval == 0 and struct.unpack("<QQ", out) == (x, x * x + x ** 3)
        retval, out = triangle.test_run(struct.pack("<QQ", 5, 0))   # bpf_loop callback
        assert retval == 1 and struct.unpack("<QQ", out)[1] == sum(range(5)) + 8
        assert obj.bss["calls_made"] == 3 * 2 + 1


def test_verifier_rejection_names_the_source_line(build):
    obj = BpfObject.open(build("oob"))
    with pytest.raises(VerifierError) as info:
        obj.load()
    err = info.value
    assert err.program == "overrun"
    assert err.summary == "invalid access to map value, value_size=8 off=8 size=8"
    line = source_line_of("oob", "v[1]")
    assert err.loc is not None and err.loc.file.endswith("progs/oob.c") and err.loc.line == line
    assert err.insn is not None and err.insn in obj.programs["overrun"].line_info
    assert obj.programs["overrun"].line_info[err.insn].line == line
    assert "processed" in err.log and err.log.count("\n") > 5
    text = str(err)
    assert f"oob.c:{line}:" in text and "return (int)v[1];" in text and "^" in text
    assert obj.programs["overrun"].fd == -1 and obj.maps["vals"].fd == -1   # all closed again


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_no_fd_leak_over_many_cycles(build):
    good, bad = build("syscall_basic"), build("oob")
    for path in (good, bad):      # warm up caches (vmlinux BTF, imports) before counting
        try:
            BpfObject.open(path).load().close()
        except VerifierError:
            pass
    before = _open_fds()
    for _ in range(25):
        with BpfObject.open(good) as obj:
            obj.load()
            obj.programs["add"].test_run(ARGS.pack(1, 1, 0, 0, 0))
        with pytest.raises(VerifierError):
            BpfObject.open(bad).load()
    assert _open_fds() == before


def test_object_from_bytes_and_double_load(build):
    with BpfObject.open(Path(build("calls")).read_bytes()) as obj:
        obj.load()
        with pytest.raises(BpfSyscallError, match="already loaded"):
            obj.load()
    with pytest.raises(BpfSyscallError, match="not loaded"):
        obj.programs["powers"].test_run(b"\0" * 16)
    with pytest.raises(MapError, match="not created"):
        obj.bss.map[0]


def test_2021_iouring_section_is_refused_clearly(build):
    obj = BpfObject.open(build("iouring_2021"))
    with pytest.raises(UnsupportedSection, match="2021 IORING_OP_BPF.*no released kernel"):
        obj.load()


def test_not_an_object():
    with pytest.raises(ElfObjectError, match="not for BPF"):
        BpfObject.open(sys.executable)
    with pytest.raises(ElfObjectError, match="not a valid ELF"):
        BpfObject.open(b"definitely not an ELF file")


def test_without_privileges_the_error_says_what_is_needed(build, tmp_path):
    """A real EPERM: the same load in a child process whose capabilities are all dropped."""
    setpriv = "/usr/bin/setpriv"
    if not os.path.exists(setpriv) or os.geteuid() != 0:
        pytest.skip("needs root and util-linux setpriv to drop capabilities in a child")
    script = ("import sys\n"
              "from pybpfuring.loader import BpfObject\n"
              "from pybpfuring.errors import BpfSyscallError\n"
              "try:\n"
              f"    BpfObject.open({str(build('syscall_basic'))!r}).load()\n"
              "except BpfSyscallError as e:\n"
              "    print(e); sys.exit(3)\n")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.run([setpriv, "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all",
                           sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "EPERM" in proc.stdout and "root or the CAP_BPF capability" in proc.stdout
    assert proc.stdout.count("\n") == 1    # one clear line, no traceback


def test_objects_from_llvmlite_load_and_run(build_llvmlite):
    """The same programs, code-generated by llvmlite's LLVM (the compiler's backend)."""
    with BpfObject.open(build_llvmlite("syscall_basic")) as obj:
        obj.rodata["scale"] = 2
        obj.load()
        retval, out = obj.programs["add"].test_run(ARGS.pack(4, 6, 0, 1, 0))
        assert retval == 20 and ARGS.unpack(out) == (4, 6, 20, 1, 1000)
        assert obj.maps["counters"][1] == 1 and obj.maps["seen"][1] == 20
    with BpfObject.open(build_llvmlite("calls")) as obj:
        obj.load()
        _, out = obj.programs["triangle"].test_run(struct.pack("<QQ", 4, 0))
        assert struct.unpack("<QQ", out)[1] == 6 + 8
    with pytest.raises(VerifierError) as info:
        BpfObject.open(build_llvmlite("oob")).load()
    assert info.value.loc.line == source_line_of("oob", "v[1]")


def test_percpu_map_values_are_per_cpu_lists(build):
    with BpfObject.open(build("percpu")) as obj:
        obj.load()
        hits = obj.maps["hits"]
        ncpus = len(hits[0])
        assert ncpus >= 1 and hits[0] == [0] * ncpus
        for _ in range(3):
            obj.programs["count"].test_run()
        assert sum(hits[1]) == 3                    # each run counted on the CPU it ran on
        hits[0] = 7                                 # one value: every CPU's copy
        assert hits[0] == [7] * ncpus
        hits[0] = list(range(ncpus))
        assert hits.items()[0] == (0, list(range(ncpus)))
        with pytest.raises(MapError, match="per-CPU"):
            hits[0] = [1] * (ncpus + 1)


TYPEGUARD_SCRIPT = """
import struct, sys
from typeguard import install_import_hook
with install_import_hook("pybpfuring.loader"):
    from pybpfuring.loader import BpfObject
    from pybpfuring.loader import btf as B
basic, calls = sys.argv[1:3]
with BpfObject.open(basic) as obj:
    obj.rodata["scale"] = 2
    obj.load()
    obj.programs["add"].test_run(bytearray(struct.pack("<QQQII", 1, 2, 0, 1, 0)))
    seen = obj.maps["seen"]
    seen[5] = 6
    assert dict(seen.items()) == {1: 6, 5: 6} and len(seen) == 2 and seen.get(9) is None
    assert obj.bss["runs"] == 1 and obj.data["bias"] == 1000 and 5 in seen
    del seen[5]
with BpfObject.open(calls) as obj:
    obj.load()
    obj.programs["triangle"].test_run(struct.pack("<QQ", 3, 0))
kbtf = B.vmlinux_btf()
task = kbtf.find_one("task_struct", B.STRUCT)
kbtf.size_of(task), kbtf.member(task, "pid"), kbtf.type_str(task)
print("typeguard ok")
"""


def test_public_api_types_hold_under_typeguard(build):
    """Every annotated loader function on these paths, checked by typeguard at run time."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.run([sys.executable, "-c", TYPEGUARD_SCRIPT, str(build("syscall_basic")),
                           str(build("calls"))], capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and "typeguard ok" in proc.stdout, proc.stderr[-3000:]


def test_overlong_verifier_log_keeps_its_end(build, monkeypatch):
    """A log beyond the cap: the kernel keeps its tail, which still names the reason and line."""
    from pybpfuring.loader import syscalls
    monkeypatch.setattr(syscalls, "MAX_LOG", 300)
    obj = BpfObject.open(build("oob"))
    with pytest.raises(VerifierError) as info:
        obj.load()
    err = info.value
    assert err.log.startswith("[verifier log longer than") and len(err.log) < 400
    assert err.summary == "invalid access to map value, value_size=8 off=8 size=8"
    assert err.loc is not None and err.loc.line == source_line_of("oob", "v[1]")


def test_struct_values_decoded_by_btf(build):
    with BpfObject.open(build("syscall_basic")) as obj:
        obj.load()
        totals = obj.maps["totals"]
        assert totals[0] == bytes(32)                      # a struct value is bytes by default
        for a in (5, 6, 7):
            obj.programs["add"].test_run(ARGS.pack(a, 0, 0, 2, 0))
        assert totals.fields(0) == {"calls": 3, "last_key": -2, "sums": [6, 5 + 7],
                                    "tag": b"ok\0\0"}
        with pytest.raises(KeyError):
            totals.fields(1)
        assert obj.maps["seen"].fields(2) == 7                      # plain integers stay ints
        assert obj.maps[".bss"].fields(0) == {"runs": 3, "last_sum": 7}   # a section's variables
