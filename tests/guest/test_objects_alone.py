"""Objects without their source: an object made by `pybpfuring compile` runs on the kernel backend
with no Python source on the machine, and gives the results the emulated backend gives from the
same object (docs/kernel.md, "Objects without their source")."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from guest_tier import scratch_dir

pytestmark = pytest.mark.in_guest

ROOT = Path(__file__).resolve().parents[2]

# Runs in a fresh interpreter that never imported the programs' file (it is deleted by then):
# the 2021 reference programs from the object alone, on the backend named by argv[2].
RUN = r'''
import ctypes, json, sys
from pybpfuring.runtime import Ring, Timespec

obj, backend = sys.argv[1], sys.argv[2]
out = {}
with Ring(8, cqs=[128, 128], backend=backend) as ring:
    out["names"] = ring.register_programs(obj)
    out["backend"] = ring.backend
    secret = ring.user_memory(ctypes.c_uint64)
    secret.value = 29
    addr = ctypes.addressof(secret)
    ring.prep_bpf("test", user_data=addr)
    ring.submit_and_wait(3)
    out["test_cqes"] = sorted([c.user_data if c.user_data != addr else -1, c.res]
                              for c in (ring.wait_cqe(0) for _ in range(3)))
    out["secret"] = secret.value
    arr = ring.maps["arr"]
    out["arr"] = [int(arr[i]) for i in (0, 1, 2, 3, 5, 10)]
with Ring(8, cqs=[16, 16, 16], backend=backend) as ring:
    ring.register_programs(obj)
    ts = Timespec(tv_sec=0, tv_nsec=1_000_000)      # counting's timeouts: 1 ms
    ring.prep_bpf("counting", user_data=ctypes.addressof(ts), cq_idx=2)
    ring.submit()
    cqe = ring.wait_cqe(2)
    out["counting"] = [cqe.user_data == ctypes.addressof(ts), cqe.res, int(ring.maps["arr"][0]), ring.cq_ready(1)]
print(json.dumps(out))
'''


@pytest.fixture(scope="module")
def sourceless(tmp_path_factory):
    """(object, folder): examples/reference.py compiled by `pybpfuring compile` in a scratch folder,
    then the copy of the source deleted."""
    d = scratch_dir(tmp_path_factory.mktemp("alone"), "alone")
    src = d / "refprogs.py"
    shutil.copy(ROOT / "examples" / "reference.py", src)
    obj = d / "refprogs.bpf.o"
    subprocess.run([sys.executable, "-m", "pybpfuring", "compile", str(src), "-o", str(obj)],
                   check=True, capture_output=True, text=True, cwd=d)
    src.unlink()
    (d / "run.py").write_text(RUN)
    return obj, d


def _run(obj: Path, d: Path, backend: str) -> dict:
    r = subprocess.run([sys.executable, str(d / "run.py"), str(obj), backend], cwd=d,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.splitlines()[-1])


def test_an_object_runs_on_the_kernel_backend_without_its_source(sourceless):
    obj, d = sourceless
    kernel = _run(obj, d, "bpf_ops")
    assert kernel["backend"] == "bpf_ops"
    assert kernel["names"] == ["test", "counting", "pingpong", "write_file"]
    assert kernel["test_cqes"] == [[-1, 0], [2, 0], [3, 13]]
    assert kernel["secret"] == 31                       # copy_to_user, in the kernel
    assert kernel["arr"] == [11, 4, 5, 21, 29, 1]
    assert kernel["counting"][:3] == [True, 0, 11]      # ticked 11 times, completed with 0
    assert kernel == {**_run(obj, d, "emulated"), "backend": "bpf_ops"}


def test_an_object_without_the_kernel_loop_form_says_how_to_make_one(tmp_path):
    """An object from fn.compile() carries no bodies: with its source gone the kernel backend says
    what to do instead of failing somewhere inside."""
    d = scratch_dir(tmp_path, "bare")
    src = d / "bareprogs.py"
    shutil.copy(ROOT / "examples" / "reference.py", src)
    script = (f"import sys; sys.path.insert(0, {str(d)!r}); import bareprogs\n"
              f"open({str(d / 'bare.o')!r}, 'wb').write(bareprogs.pingpong.compile())\n")
    subprocess.run([sys.executable, "-c", script], check=True, cwd=d)
    src.unlink()
    code = ("import sys\nfrom pybpfuring.runtime import Ring\n"
            "with Ring(8, backend='bpf_ops') as ring:\n"
            f"    ring.register_programs({str(d / 'bare.o')!r})\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=d)
    assert r.returncode != 0
    assert "pybpfuring compile" in r.stderr and "Traceback" not in r.stderr.split("\n")[-2]
