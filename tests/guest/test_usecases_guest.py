"""The use-case programs (examples/lookup.py, fanout_collect.py, splice_records.py, tcp_echo.py)
on both backends of a Linux >= 7.1 machine: each example checks its own results against plain
Python and exits non-zero on any difference; the asyncio hand-off is awaited on both backends."""
from __future__ import annotations

import asyncio
import ctypes
import errno
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.in_guest

ROOT = Path(__file__).resolve().parents[2]
for sub in ("tests/runtime", "examples"):
    if str(ROOT / sub) not in sys.path:
        sys.path.insert(0, str(ROOT / sub))

BACKENDS = ["emulated", "bpf_ops"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.parametrize("example,args", [
    ("lookup.py", ["--keys", "20000", "--lookups", "300", "--inflight", "1"]),
    ("lookup.py", ["--keys", "20000", "--lookups", "300", "--inflight", "16"]),
    ("fanout_collect.py", ["--files", "8", "--size", "4096", "--rounds", "5"]),
    ("splice_records.py", ["--records", "200"]),
    ("splice_records.py", ["--records", "200", "--to", "socket"]),
    ("tcp_echo.py", ["--clients", "20", "--requests", "5", "--duration", "300"]),
    ("tcp_proxy.py", ["--clients", "10", "--requests", "3", "--duration", "300"]),
])
def test_usecases_examples(backend: str, example: str, args: list[str]) -> None:
    out = subprocess.run([sys.executable, str(ROOT / "examples" / example), "--backend", backend,
                          *args], capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout + out.stderr
    assert backend in out.stdout


def test_usecases_fanout_errors(backend: str) -> None:
    import fanout_collect as F
    d = tempfile.mkdtemp(prefix="pybpfuring-fan-guest-")
    fds = [os.open(os.path.join(d, f"f{i}"), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
           for i in range(4)]
    full = os.open("/dev/full", os.O_WRONLY)
    try:
        fan = F.open_fan(4096, backend, files=6)
        with fan.ring:
            assert fan.ring.backend == backend
            mixed = fds[:1] + [full] + fds[1:] + [99999]
            assert fan.broadcast(mixed, b"y" * 4096) == -errno.ENOSPC
            assert fan.ring.cq_ready(1) == 0 and fan.ring.in_flight() == 0
            assert fan.broadcast(fds, b"y" * 4096) == 4 * 4096
    finally:
        for fd in fds + [full]:
            os.close(fd)
        shutil.rmtree(d, ignore_errors=True)


def test_usecases_lookups_awaited_in_asyncio(backend: str) -> None:
    import lookup as L
    d = tempfile.mkdtemp(prefix="pybpfuring-aio-guest-")
    try:
        path = os.path.join(d, "index")
        items = L.build_tree(path, 3000)
        keys = L.query_keys(items, 8, 0.25)
        fd = os.open(path, os.O_RDONLY)

        async def main() -> dict[int, int]:
            with L.open_ring(len(keys), backend) as ring:
                assert ring.backend == backend
                slots = []
                for i, k in enumerate(keys):
                    buf = ring.user_memory(ctypes.c_uint8 * L.PAGE)
                    a = ring.user_memory(L.LookupArgs.ctype)
                    a.fd, a.cq, a.key, a.buf = fd, i + 1, k, ctypes.addressof(buf)
                    slots.append((a, buf))
                    ring.prep_bpf(L.btree_lookup, user_data=ctypes.addressof(a))
                ring.submit()
                got = {}
                while len(got) < len(keys):
                    cqe = await ring.wait_cqe_async(timeout=120)
                    got[cqe.user_data] = cqe.res
                return {int(a.key): got[ctypes.addressof(a)] for a, _ in slots}
        try:
            assert asyncio.run(main()) == {k: items.get(k, -errno.ENOENT) for k in keys}
        finally:
            os.close(fd)
    finally:
        shutil.rmtree(d, ignore_errors=True)
