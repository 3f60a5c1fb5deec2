"""`pybpfuring bench usecases`: each use-case program beside what users would write instead.

Use cases (examples/): lookup (B+tree, dependent reads), fanout (broadcast to N files), tcp (echo
over loopback), splice (data-driven record splicing). Rows per use case:
  bpf/<backend>  the example's BPF program on a Ring of that backend (emulated on the host; emulated
                 and bpf_ops in the Linux 7.2 guest, one boot)
  python         plain blocking Python (os.pread / os.pwrite / selectors sockets)
  asyncio        Python asyncio (file I/O through a thread-pool executor, the usual way)
  uvloop         the same asyncio code on uvloop's event loop
  c-liburing     our C user-space loop with liburing for the same job (bench/c/usecase_*.c)
Lookup rows also give system calls per lookup, counted with perf (or strace) over a child process
at two lookup counts, so start-up cancels out (bench/syscalls.py): the BPF rows should need about
one io_uring_enter per batch of completions, not one per page read.

    python3 -m bench usecases [--only lookup,fanout,tcp,splice] [--where host|guest|both]
                              [--sizes full|quick|guest] [--runs N] [--backends emulated,bpf_ops]
                              [--no-syscalls] [--out docs/results] [--no-write]
Each figure is the median of --runs timed runs (default 5) with its spread; ratios are to the C
loop measured in the same process tree and the same boot. Under load, say so when quoting.
"""
from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import os
import shutil
import statistics
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
import tcp_proxy as X  # noqa: E402

from bench import cbuild, datafile, guest, snapshot, usecases_c  # noqa: E402
from bench import usecases_out as out  # noqa: E402
from bench.syscalls import choose_counter, slope  # noqa: E402
from pybpfuring.errors import PyBpfUringError  # noqa: E402
from pybpfuring.outputs import write_atomic  # noqa: E402

try:
    import uvloop
except ImportError:      # the uvloop rows then say so
    uvloop = None

CASES = ("lookup", "fanout", "tcp", "splice")
C_SOURCES = ("c/usecase_lookup.c", "c/usecase_fanout.c", "c/usecase_tcp_echo.c",
             "c/usecase_splice.c")
QDS = (1, 16, 256)
# Sizes per preset. "guest" fits the kernel backend's 256 KiB of user memory per ring where a row
# can fit at all (lookup qd256 cannot: its row says so) and keeps a TCG guest run to minutes.
SIZES: dict[str, dict[str, int]] = {
    "full": dict(keys=200_000, lookups=8192, files=16, size=65536, rounds=200, clients=1000,
                 requests=20, records=10000, runs=5),
    "quick": dict(keys=20_000, lookups=1024, files=16, size=65536, rounds=20, clients=100,
                  requests=10, records=300, runs=1),
    "guest": dict(keys=20_000, lookups=512, files=16, size=8192, rounds=50, clients=32,
                  requests=10, records=1000, runs=5),
}
# What a backend that cannot run a size raises (the examples' own "cannot run on backend" cases).
DOES_NOT_FIT = (ValueError, PyBpfUringError)


class Unavailable(Exception):
    """A row cannot run here; the message says why (it becomes the row's reason)."""


def event_loops() -> dict[str, Callable[[], asyncio.AbstractEventLoop] | None]:
    """The asyncio rows' loop factories: asyncio's own, and uvloop's where it is installed."""
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop if uvloop else None}


def loop_factory(kind: str) -> Callable[[], asyncio.AbstractEventLoop]:
    factory = event_loops()[kind]
    if factory is None:
        raise Unavailable("uvloop is not installed (pip install uvloop, or the bench extra)")
    return factory


def not_run(name: str, e: Exception) -> dict[str, Any]:
    """The row of a job that cannot run here, with why (kept in the table, never dropped)."""
    return {"row": name, "unavailable": str(e) if isinstance(e, Unavailable)
            else f"{type(e).__name__}: {e}"}


def measured(name: str, runs: int, one: Callable[[], float], units: int) -> dict[str, Any]:
    """Run `one` (which returns the seconds of its measured part) `runs` times: the row's median
    rate and spread, or the row with the reason it could not run."""
    try:
        one()       # warm-up, not counted: first-touch costs (page cache, file blocks, compiles)
        secs = [one() for _ in range(runs)]
    except (Unavailable, *DOES_NOT_FIT) as e:
        return not_run(name, e)
    med = statistics.median(secs)
    return {"row": name, "per_s": units / med,
            "spread_pct": round((max(secs) - min(secs)) / med * 100, 1)}


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# --- lookup ----------------------------------------------------------------------------------------
def _executor_lookups(fd: int, keys: list[int], inflight: int, kind: str) -> list[int]:
    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        sem = asyncio.Semaphore(inflight)
        with concurrent.futures.ThreadPoolExecutor(inflight) as pool:
            async def one(k: int) -> int:
                async with sem:
                    return await loop.run_in_executor(pool, L.python_lookup, fd, k)
            return list(await asyncio.gather(*(one(k) for k in keys)))
    with asyncio.Runner(loop_factory=loop_factory(kind)) as runner:
        return runner.run(main())


def _c_lookups(path: str, keys: list[int], inflight: int, work: str) -> tuple[list[int], float]:
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


def lookup_row(row: str, path: str, keys: list[int], work: str) -> tuple[list[int], float]:
    """Run one row's lookups once; (results, seconds of the lookups alone). The row names its
    kind, backend and queue depth: python-qd1, uvloop-qd16, c-liburing-qd256, bpf/bpf_ops-qd16."""
    kind, _, qd = row.rpartition("-qd")
    inflight = int(qd)
    if kind == "c-liburing":
        return _c_lookups(path, keys, inflight, work)
    fd = os.open(path, os.O_RDONLY)
    try:
        t0 = time.perf_counter()
        if kind == "python":
            res = [L.python_lookup(fd, k) for k in keys]
        elif kind in ("asyncio", "uvloop"):
            res = _executor_lookups(fd, keys, inflight, kind)
        else:
            with L.open_ring(inflight, kind.removeprefix("bpf/")) as ring:
                t0 = time.perf_counter()
                res = L.bpf_lookups(ring, fd, keys, inflight)
                return res, time.perf_counter() - t0
        return res, time.perf_counter() - t0
    finally:
        os.close(fd)


def lookup_rows(backends: list[str]) -> list[str]:
    return (["python-qd1"] + [f"{k}-qd{q}" for k in ("asyncio", "uvloop") for q in QDS[1:]]
            + [f"c-liburing-qd{q}" for q in QDS] + [f"bpf/{b}-qd{q}" for b in backends for q in QDS])


def bench_lookup(o: argparse.Namespace, work: str, counter: Any) -> dict:
    path = os.path.join(work, "index")
    items = L.build_tree(path, o.keys)
    keys = L.query_keys(items, o.lookups, 0.1)
    want = [items.get(k, -2) for k in keys]
    rows = []
    for row in lookup_rows(o.backends):
        def one(row: str = row) -> float:
            res, s = lookup_row(row, path, keys, work)
            if res != want:
                raise SystemExit(f"lookup row {row}: results differ from the dict")
            return s
        r = measured(row, o.runs, one, len(keys))
        if "per_s" in r:
            r["us_per_lookup"] = 1e6 / r["per_s"]
            if counter is not None:
                def argv_at(n: int, row: str = row) -> list[str]:
                    return [sys.executable, "-m", "bench.usecases", "--child-lookup", row, str(n),
                            "--keys", str(o.keys), "--child-dir", work]
                r["syscalls_per_lookup"] = slope(counter, argv_at, o.lookups // 4, o.lookups)
        rows.append(r)
    return {"case": "lookup", "what": f"{o.lookups} lookups, B+tree of {o.keys} keys "
            f"(depth {L.tree_depth(path)}), page-cached", "rows": rows}


def child_lookup(row: str, n: int, keys_n: int, parent: str) -> None:
    work = tempfile.mkdtemp(prefix="child-", dir=parent)
    try:
        path = os.path.join(work, "index")
        items = L.build_tree(path, keys_n)
        lookup_row(row, path, L.query_keys(items, n, 0.1), work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --- fan-out ---------------------------------------------------------------------------------------
def bench_fanout(o: argparse.Namespace, work: str) -> dict:
    n, size, rounds = o.files, o.size, o.rounds
    fds = [os.open(os.path.join(work, f"fan{i}"), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
           for i in range(n)]
    data = os.urandom(size)

    def python() -> float:
        t0 = time.perf_counter()
        for r in range(rounds):
            assert F.python_broadcast(fds, data, r * size) == n * size
        return time.perf_counter() - t0

    def executor(kind: str) -> float:
        async def main() -> None:
            loop = asyncio.get_running_loop()
            for r in range(rounds):
                got = await asyncio.gather(*(loop.run_in_executor(None, os.pwrite, fd, data,
                                                                  r * size) for fd in fds))
                assert sum(got) == n * size
        with asyncio.Runner(loop_factory=loop_factory(kind)) as runner:
            return timed(lambda: runner.run(main()))

    def c_liburing() -> float:
        binary = cbuild.build("c/usecase_fanout.c")
        proc = subprocess.run([str(binary), work, str(n), str(size), str(rounds)],
                              capture_output=True, text=True, timeout=600, check=True)
        return int(proc.stdout) / 1e9

    def bpf(backend: str) -> dict[str, Any]:
        try:
            fan = F.open_fan(size, backend, files=n)
        except DOES_NOT_FIT as e:
            return not_run(f"bpf/{backend}", e)

        def one() -> float:
            t0 = time.perf_counter()
            for r in range(rounds):
                assert fan.broadcast(fds, data, r * size) == n * size
            return time.perf_counter() - t0
        with fan.ring:
            return measured(f"bpf/{backend}", o.runs, one, rounds)

    try:
        # python's warm-up (measured()) allocates the files' blocks: every run then overwrites them
        rows = [measured("python", o.runs, python, rounds)]
        rows += [measured(k, o.runs, lambda k=k: executor(k), rounds) for k in ("asyncio", "uvloop")]
        rows.append(measured("c-liburing", o.runs, c_liburing, rounds))
        rows += [bpf(b) for b in o.backends]
    finally:
        for fd in fds:
            os.close(fd)
    return {"case": "fanout", "what": f"{rounds} broadcasts of {size} B to {n} files (rounds/s)",
            "rows": rows}


# --- tcp -------------------------------------------------------------------------------------------
def tcp_row(name: str, runs: int, go: Callable[[], dict]) -> dict[str, Any]:
    """A TCP row: the median run by requests/s, with its p50/p99 latencies."""
    try:
        figures = []
        for _ in range(runs):
            f = go()
            if f["requests"] != f["expected"] or f["bad"] or f.get("errors"):
                raise SystemExit(f"tcp row {name}: {f}")
            figures.append(f)
    except (Unavailable, *DOES_NOT_FIT) as e:
        return not_run(name, e)
    figures.sort(key=lambda f: f["rps"])
    mid = figures[len(figures) // 2]
    rps = [f["rps"] for f in figures]
    return {"row": name, "per_s": mid["rps"], "spread_pct": round((rps[-1] - rps[0]) / mid["rps"] * 100, 1),
            "p50_us": mid["p50_us"], "p99_us": mid["p99_us"]}


def bench_tcp(o: argparse.Namespace) -> dict:
    c, q, size, limit = o.clients, o.requests, 64, 120.0
    proxied = min(c, X.MAX_CLIENTS)
    rows = [tcp_row("selectors", o.runs, lambda: T.run("selectors", c, q, size, limit))]
    rows += [tcp_row(k, o.runs, lambda k=k: T.run("asyncio", c, q, size, limit,
                                                  loop_factory=loop_factory(k)))
             for k in ("asyncio", "uvloop")]
    rows.append(tcp_row("c-liburing", o.runs, lambda: usecases_c.c_tcp_echo(c, q, size, limit)))
    for b in o.backends:
        rows += [tcp_row(f"asyncio-bpf/{b}", o.runs, lambda b=b: T.run("asyncio-bpf", c, q, size,
                                                                       limit, b)),
                 tcp_row(f"uvloop-bpf/{b}", o.runs, lambda b=b: T.run(
                     "asyncio-bpf", c, q, size, limit, b, loop_factory=loop_factory("uvloop"))),
                 tcp_row(f"bpf/{b}", o.runs, lambda b=b: T.run("bpf", c, q, size, limit, b)),
                 tcp_row(f"bpf-proxy/{b} ({proxied} clients)", o.runs,
                         lambda b=b: X.run(proxied, q, size, limit, b))]
    return {"case": "tcp", "what": f"echo, {c} loopback clients x {q} requests of {size} B "
            "(requests/s; the load generator is one Python process)", "rows": rows}


# --- splice ----------------------------------------------------------------------------------------
def bench_splice(o: argparse.Namespace, work: str) -> dict:
    src = os.path.join(work, "records")
    S.build_records(src, o.records)
    mask = 0b1001
    want = len(S.python_select(src, mask))
    dst = os.path.join(work, "sel")
    mb = os.path.getsize(src) / 1e6

    def python() -> float:
        t0 = time.perf_counter()
        with open(dst, "wb") as f:
            f.write(S.python_select(src, mask))
        return time.perf_counter() - t0

    def c_liburing() -> float:
        got, secs = usecases_c.c_splice(src, dst, mask)
        assert got == want, (got, want)
        return secs

    def bpf(backend: str) -> dict[str, Any]:
        try:
            sp = S.Splicer(backend)
        except DOES_NOT_FIT as e:
            return not_run(f"bpf/{backend}", e)
        fd_in = os.open(src, os.O_RDONLY)

        def one() -> float:
            fd_out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                t0 = time.perf_counter()
                assert sp.run(fd_in, fd_out, mask, stream=False) == want
                return time.perf_counter() - t0
            finally:
                os.close(fd_out)
        try:
            return measured(f"bpf/{backend}", o.runs, one, 1)
        finally:
            os.close(fd_in)
            sp.close()

    rows = [measured("python", o.runs, python, 1), measured("c-liburing", o.runs, c_liburing, 1)]
    rows += [bpf(b) for b in o.backends]
    for r in rows:
        if "per_s" in r:
            r["per_s"] *= mb        # MB of input per second
    return {"case": "splice", "what": f"{o.records} records ({os.path.getsize(src) >> 20} MiB), "
            f"2 of 8 types kept ({want >> 20} MiB); MB of input per s", "rows": rows}


# --- where it runs ---------------------------------------------------------------------------------
def measure_here(o: argparse.Namespace, work: str) -> dict[str, Any]:
    """Every asked case on this machine (the host, or the guest when run there)."""
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())   # before our own processes run
    counter, how = None, "not counted (--no-syscalls)"
    if not o.no_syscalls and "lookup" in o.cases:
        # In the TCG guest perf's tracepoints patch kernel text (int3) while the other vCPU may
        # run it, which oopsed the guest once (pybpfuring/vm/cli.py ALONE); strace patches nothing.
        counter, how = choose_counter("strace" if os.environ.get("PYBPFURING_IN_GUEST") else "auto")
    tables = []
    for case in o.cases:
        print(f"[bench usecases] {case} ({', '.join(o.backends)})", file=sys.stderr, flush=True)
        if case == "lookup":
            tables.append(bench_lookup(o, work, counter))
        elif case == "fanout":
            tables.append(bench_fanout(o, work))
        elif case == "tcp":
            tables.append(bench_tcp(o))
        else:
            tables.append(bench_splice(o, work))
    for t in tables:
        out.add_ratios(t)
    return {"environment": "guest" if os.environ.get("PYBPFURING_IN_GUEST") else "host",
            "info": {"kernel": os.uname().release, "backends": o.backends, "syscalls": how,
                     "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                     "load": load_before,
                     "load_after": " ".join(f"{x:.2f}" for x in os.getloadavg())},
            "tables": tables}


def guest_argv(argv: list[str]) -> list[str]:
    """This command for the guest: its sizes and both backends unless the user chose, JSON out."""
    kept, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in ("--where", "--out"):
            skip = True
        elif not a.startswith(("--where=", "--out=")) and a != "--no-write":
            kept.append(a)
    return [sys.executable, "-m", "bench", "usecases", "--sizes", "guest", "--backends",
            "emulated,bpf_ops", *kept, "--where", "here", "--json-only", guest.GUEST_OUT]


def measure_guest(argv: list[str], work: Path) -> dict[str, Any]:
    """The same benchmark in the Linux 7.x QEMU guest, one boot, from a snapshot of the code."""
    print("[bench usecases] measuring in the Linux 7.x QEMU guest (TCG; slow)", file=sys.stderr)
    tree = snapshot.take(work)
    env = guest.run_guest(guest_argv(argv), tree,
                          lambda s: print(s, file=sys.stderr, flush=True), C_SOURCES)
    env.setdefault("environment", "guest")
    return env


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pybpfuring bench usecases", description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default=",".join(CASES), help="comma-separated use cases")
    p.add_argument("--where", choices=["host", "guest", "both", "here"], default="host",
                   help="this machine (default), the Linux 7.x guest, or both")
    p.add_argument("--sizes", choices=sorted(SIZES), default="full",
                   help="full (default), quick (shows the bench works), guest (the guest's default)")
    p.add_argument("--quick", action="store_const", const="quick", dest="sizes", help="--sizes quick")
    p.add_argument("--backends", default="emulated",
                   help="comma-separated backends of the bpf rows (default emulated; the guest: "
                   "emulated,bpf_ops)")
    for name in SIZES["full"]:
        p.add_argument(f"--{name}", type=int, help=f"override the preset's {name}")
    p.add_argument("--no-syscalls", action="store_true")
    p.add_argument("--out", type=Path, default=REPO / "docs" / "results")
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--json-only", type=Path, help=argparse.SUPPRESS)   # the guest's half
    p.add_argument("--child-lookup", nargs=2, metavar=("ROW", "N"), help=argparse.SUPPRESS)
    p.add_argument("--child-dir", help=argparse.SUPPRESS)
    return p


def options(argv: list[str]) -> argparse.Namespace:
    p = parser()
    o = p.parse_args(argv)
    for name, value in SIZES[o.sizes].items():
        if getattr(o, name) is None:
            setattr(o, name, value)
    o.cases = [c for c in o.only.split(",") if c]
    o.backends = [b for b in o.backends.split(",") if b]
    if not set(o.cases) <= set(CASES):
        p.error(f"--only takes {', '.join(CASES)}")
    if not set(o.backends) <= {"emulated", "bpf_ops"}:
        p.error("--backends takes emulated, bpf_ops")
    if o.runs < 1:
        p.error("--runs must be >= 1")
    return o


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    o = options(argv)
    if o.child_lookup:
        child_lookup(o.child_lookup[0], int(o.child_lookup[1]), o.keys, o.child_dir)
        return 0
    for source in C_SOURCES:
        cbuild.build(source)          # before any timing, and before a guest boots (it reads them)
    envs = []
    in_guest = datafile.guest_dir()
    if o.where in ("host", "both", "here"):
        if in_guest is not None:
            in_guest.mkdir(parents=True, exist_ok=True)
            envs.append(measure_here(o, tempfile.mkdtemp(prefix="uc-", dir=in_guest)))
        else:
            with datafile.private_run_dir() as work:
                data = work / "data"
                datafile.prepare_dir(data)       # refuses tmpfs
                envs.append(measure_here(o, str(data)))
    if o.json_only:
        write_atomic(o.json_only, json.dumps(envs[0], indent=1))
        return 0
    if o.where in ("guest", "both"):
        with datafile.private_run_dir() as work:
            envs.append(measure_guest(argv, work))
    doc = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "command": ["pybpfuring", "bench", "usecases", *argv], "environments": envs}
    text = out.markdown(doc)
    print(text)
    if not o.no_write:
        o.out.mkdir(parents=True, exist_ok=True)
        written = [write_atomic(o.out / "usecases.json", json.dumps(doc, indent=1)),
                   write_atomic(o.out / "usecases.md", text)] + out.plot(doc, o.out)
        for path in written:
            print(f"[bench usecases] wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
