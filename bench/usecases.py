"""`pybpfuring bench usecases`: each use-case program beside what users would write instead.

Use cases (examples/): lookup (B+tree, dependent reads), fanout (broadcast to N files), tcp (echo
over loopback), splice (data-driven record splicing). Rows per use case:
  bpf-*          the example's BPF program on the Ring (emulated backend on the host by default)
  python         plain blocking Python (os.pread / os.pwrite / selectors sockets)
  asyncio        Python asyncio (file I/O through its default thread-pool executor, the usual way;
                 uvloop too where it is installed)
  c-liburing     our C user-space loop with liburing (lookup, fanout: bench/c/usecase_*.c)
Lookup rows also give system calls per lookup, counted with perf (or strace) over a child process
at two lookup counts, so start-up cancels out (bench/syscalls.py): the BPF rows should need about
one io_uring_enter per batch of completions, not one per page read.

    python3 -m bench usecases [--only lookup,fanout,tcp,splice] [--quick] [--no-syscalls]
                              [--backend emulated|bpf_ops|auto] [--out docs/results] [--no-write]
Times are wall clock of the measured loop (best of --runs); under load, say so when quoting.
"""
from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "examples"))

import fanout_collect as F  # noqa: E402
import lookup as L  # noqa: E402
import splice_records as S  # noqa: E402
import tcp_echo as T  # noqa: E402

CASES = ("lookup", "fanout", "tcp", "splice")


def best(fn: Callable[[], Any], runs: int) -> float:
    """The fastest of `runs` timed calls of `fn` (seconds)."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


# --- lookup ----------------------------------------------------------------------------------------
def _asyncio_lookups(fd: int, keys: list[int], inflight: int) -> list[int]:
    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        sem = asyncio.Semaphore(inflight)
        with concurrent.futures.ThreadPoolExecutor(inflight) as pool:
            async def one(k: int) -> int:
                async with sem:
                    return await loop.run_in_executor(pool, L.python_lookup, fd, k)
            return list(await asyncio.gather(*(one(k) for k in keys)))
    return asyncio.run(main())


def _c_lookups(path: str, keys: list[int], inflight: int, work: str) -> tuple[list[int], float]:
    from bench import cbuild
    binary = cbuild.build("c/usecase_lookup.c")
    kpath, opath = os.path.join(work, f"keys{inflight}"), os.path.join(work, f"out{inflight}")
    with open(kpath, "wb") as f:
        f.write(b"".join(k.to_bytes(8, "little") for k in keys))
    proc = subprocess.run([str(binary), path, kpath, opath, str(inflight)], capture_output=True,
                          text=True, timeout=600, check=True)
    with open(opath, "rb") as f:
        raw = f.read()
    os.unlink(kpath)
    os.unlink(opath)
    res = [int.from_bytes(raw[i:i + 4], "little", signed=True) for i in range(0, len(raw), 4)]
    return res, int(proc.stdout) / 1e9


def lookup_row(row: str, path: str, keys: list[int], work: str, backend: str) -> tuple[list[int], float]:
    """Run one row's lookups once; (results, seconds of the lookups alone)."""
    kind, _, qd = row.rpartition("-qd")
    inflight = int(qd)
    if kind == "c-liburing":
        return _c_lookups(path, keys, inflight, work)
    fd = os.open(path, os.O_RDONLY)
    try:
        t0 = time.perf_counter()
        if kind == "python":
            res = [L.python_lookup(fd, k) for k in keys]
        elif kind == "asyncio":
            res = _asyncio_lookups(fd, keys, inflight)
        else:
            with L.open_ring(inflight, backend) as ring:
                t0 = time.perf_counter()
                res = L.bpf_lookups(ring, fd, keys, inflight)
                return res, time.perf_counter() - t0
        return res, time.perf_counter() - t0
    finally:
        os.close(fd)


LOOKUP_ROWS = ["python-qd1", "asyncio-qd16", "asyncio-qd256", "c-liburing-qd1", "c-liburing-qd16",
               "c-liburing-qd256", "bpf-qd1", "bpf-qd16", "bpf-qd256"]


def bench_lookup(o: argparse.Namespace, work: str, counter: Any) -> dict:
    path = os.path.join(work, "index")
    items = L.build_tree(path, o.keys)
    keys = L.query_keys(items, o.lookups, 0.1)
    want = [items.get(k, -2) for k in keys]
    rows = []
    for row in LOOKUP_ROWS:
        secs = []
        for _ in range(o.runs):
            res, s = lookup_row(row, path, keys, work, o.backend)
            if res != want:
                raise SystemExit(f"lookup row {row}: results differ from the dict")
            secs.append(s)
        r = {"row": row, "per_s": len(keys) / min(secs), "us_per_lookup": min(secs) / len(keys) * 1e6}
        if counter is not None:
            def argv_at(n: int, row: str = row) -> list[str]:
                return [sys.executable, "-m", "bench.usecases", "--child-lookup", row, str(n),
                        "--keys", str(o.keys), "--backend", o.backend]
            from bench.syscalls import slope
            r["syscalls_per_lookup"] = slope(counter, argv_at, o.lookups // 4, o.lookups)
        rows.append(r)
    base = {r["row"].rpartition("-qd")[2]: r["us_per_lookup"] for r in rows
            if r["row"].startswith("c-liburing")}
    for r in rows:
        qd = r["row"].rpartition("-qd")[2]
        r["ratio_to_c"] = r["us_per_lookup"] / base[qd] if qd in base else None
    return {"case": "lookup", "what": f"{o.lookups} lookups, B+tree of {o.keys} keys "
            f"(depth {L.tree_depth(path)}), page-cached", "rows": rows}


def child_lookup(row: str, n: int, keys_n: int, backend: str) -> None:
    work = tempfile.mkdtemp(prefix="pybpfuring-bench-uc-")
    try:
        path = os.path.join(work, "index")
        items = L.build_tree(path, keys_n)
        lookup_row(row, path, L.query_keys(items, n, 0.1), work, backend)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --- fan-out ---------------------------------------------------------------------------------------
def bench_fanout(o: argparse.Namespace, work: str) -> dict:
    n, size, rounds = o.files, o.size, o.rounds
    fds = [os.open(os.path.join(work, f"fan{i}"), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
           for i in range(n)]
    data = os.urandom(size)
    try:
        fan = F.open_fan(size, o.backend, files=n)

        def bpf() -> None:
            for r in range(rounds):
                assert fan.broadcast(fds, data, r * size) == n * size

        def python() -> None:
            for r in range(rounds):
                assert F.python_broadcast(fds, data, r * size) == n * size

        def aio() -> None:
            async def main() -> None:
                loop = asyncio.get_running_loop()
                for r in range(rounds):
                    got = await asyncio.gather(*(loop.run_in_executor(None, os.pwrite, fd, data,
                                                                      r * size) for fd in fds))
                    assert sum(got) == n * size
            asyncio.run(main())
        def c_liburing() -> float:
            from bench import cbuild
            binary = cbuild.build("c/usecase_fanout.c")
            times = []
            for _ in range(o.runs):
                proc = subprocess.run([str(binary), work, str(n), str(size), str(rounds)],
                                      capture_output=True, text=True, timeout=600, check=True)
                times.append(int(proc.stdout) / 1e9)
            return min(times)
        python()        # every row then overwrites blocks already allocated
        with fan.ring:
            rows = [{"row": name, "per_s": rounds / best(fn, o.runs)}
                    for name, fn in (("python", python), ("asyncio", aio), ("bpf", bpf))]
        rows.insert(2, {"row": "c-liburing", "per_s": rounds / c_liburing()})
    finally:
        for fd in fds:
            os.close(fd)
    for r in rows:     # time per round relative to the C loop's
        r["ratio_to_c"] = rows[2]["per_s"] / r["per_s"]
    return {"case": "fanout", "what": f"{rounds} broadcasts of {size} B to {n} files (rounds/s)",
            "rows": rows}


# --- tcp -------------------------------------------------------------------------------------------
def bench_tcp(o: argparse.Namespace) -> dict:
    rows = []
    for server in ("selectors", "asyncio", "asyncio-bpf", "bpf"):
        f = T.run(server, o.clients, o.requests, 64, 120.0, o.backend)
        if f["requests"] != f["expected"] or f["bad"]:
            raise SystemExit(f"tcp row {server}: {f}")
        rows.append({"row": server, "per_s": f["rps"], "p50_us": f["p50_us"], "p99_us": f["p99_us"]})
    import tcp_proxy as X
    f = X.run(min(o.clients, X.MAX_CLIENTS), o.requests, 64, 120.0, o.backend)
    if f["requests"] != f["expected"] or f["bad"] or f["errors"]:
        raise SystemExit(f"tcp proxy row: {f}")
    rows.append({"row": f"bpf-proxy ({min(o.clients, X.MAX_CLIENTS)} clients)", "per_s": f["rps"],
                 "p50_us": f["p50_us"], "p99_us": f["p99_us"]})
    return {"case": "tcp", "what": f"echo, {o.clients} loopback clients x {o.requests} requests "
            "of 64 B (requests/s; the load generator is one Python process)", "rows": rows}


# --- splice ----------------------------------------------------------------------------------------
def bench_splice(o: argparse.Namespace, work: str) -> dict:
    src = os.path.join(work, "records")
    S.build_records(src, o.records)
    mask = 0b1001
    want = len(S.python_select(src, mask))
    out = os.path.join(work, "sel")

    def python() -> None:
        with open(out, "wb") as f:
            f.write(S.python_select(src, mask))

    sp = S.Splicer(o.backend)
    fd_in = os.open(src, os.O_RDONLY)

    def bpf() -> None:
        fd_out = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            assert sp.run(fd_in, fd_out, mask, stream=False) == want
        finally:
            os.close(fd_out)
    try:
        rows = [{"row": name, "per_s": os.path.getsize(src) / best(fn, o.runs) / 1e6}
                for name, fn in (("python", python), ("bpf", bpf))]
    finally:
        os.close(fd_in)
        sp.close()
    return {"case": "splice", "what": f"{o.records} records ({os.path.getsize(src) >> 20} MiB), "
            f"2 of 8 types kept ({want >> 20} MiB); MB of input per s", "rows": rows}


# --- output ----------------------------------------------------------------------------------------
def markdown(doc: dict) -> str:
    lines = [f"# bench usecases ({doc['when']}, load {doc['load']}, backend {doc['backend']})", ""]
    for t in doc["tables"]:
        cols = [k for k in t["rows"][0] if k != "row"]
        for r in t["rows"][1:]:
            cols += [k for k in r if k not in cols and k != "row"]
        lines += [f"## {t['case']}: {t['what']}", "", "| row | " + " | ".join(cols) + " |",
                  "|---|" + "---|" * len(cols)]
        for r in t["rows"]:
            cells = [r.get(c) for c in cols]
            lines.append(f"| {r['row']} | " + " | ".join(
                "" if v is None else f"{v:,.3g}" if isinstance(v, float) else str(v)
                for v in cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="pybpfuring bench usecases", description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default=",".join(CASES), help="comma-separated use cases")
    p.add_argument("--quick", action="store_true", help="small sizes: shows the bench works")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--backend", default="emulated", choices=["emulated", "bpf_ops", "auto"])
    p.add_argument("--keys", type=int, default=200_000)
    p.add_argument("--lookups", type=int, default=8192)
    p.add_argument("--files", type=int, default=16)
    p.add_argument("--size", type=int, default=65536)
    p.add_argument("--rounds", type=int, default=200)
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--requests", type=int, default=20)
    p.add_argument("--records", type=int, default=2000)
    p.add_argument("--no-syscalls", action="store_true")
    p.add_argument("--out", type=Path, default=REPO / "docs" / "results")
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--child-lookup", nargs=2, metavar=("ROW", "N"), help=argparse.SUPPRESS)
    o = p.parse_args(argv)
    if o.child_lookup:
        child_lookup(o.child_lookup[0], int(o.child_lookup[1]), o.keys, o.backend)
        return 0
    if o.quick:
        o.keys, o.lookups, o.rounds, o.clients, o.requests, o.records, o.runs = \
            20_000, 1024, 20, 100, 10, 300, 1
    cases = [c for c in o.only.split(",") if c]
    if not set(cases) <= set(CASES):
        p.error(f"--only takes {', '.join(CASES)}")
    counter, how = None, "not counted (--no-syscalls)"
    if not o.no_syscalls and "lookup" in cases:
        from bench.syscalls import choose_counter
        counter, how = choose_counter()
    tables = []
    work = tempfile.mkdtemp(prefix="pybpfuring-bench-uc-", dir="/var/tmp")   # not tmpfs
    try:
        for case in cases:
            print(f"[bench usecases] {case}", file=sys.stderr)
            if case == "lookup":
                tables.append(bench_lookup(o, work, counter))
            elif case == "fanout":
                tables.append(bench_fanout(o, work))
            elif case == "tcp":
                tables.append(bench_tcp(o))
            else:
                tables.append(bench_splice(o, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    doc = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "load": " ".join(f"{x:.2f}" for x in os.getloadavg()), "backend": o.backend,
           "syscalls": how, "tables": tables}
    text = markdown(doc) + f"\nsyscalls counted by: {how}\n"
    print(text)
    if not o.no_write:
        o.out.mkdir(parents=True, exist_ok=True)
        from pybpfuring.outputs import write_atomic
        write_atomic(o.out / "usecases.json", json.dumps(doc, indent=1))
        write_atomic(o.out / "usecases.md", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
