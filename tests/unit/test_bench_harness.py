"""The benchmark harness runs end to end on a tiny size and produces a well-formed table, JSON and PNG.

No timing is asserted (machines are noisy): only that every row ran or says why not, that the numbers
are consistent with each other, and that the files a user reads are complete.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench import datafile, report, syscalls  # noqa: E402
from bench.__main__ import main, parse_size  # noqa: E402

needs_cc = pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler for the C baselines")


@pytest.fixture()
def bench_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data dir on a real file system (never tmpfs) and a private binary cache."""
    data = tmp_path / "data"
    if datafile.fs_type(tmp_path) in datafile.REFUSED_FS:
        if datafile.fs_type(Path("/var/tmp")) in datafile.REFUSED_FS:
            pytest.skip("neither the pytest tmp dir nor /var/tmp is on a disk file system")
        data = Path(tempfile.mkdtemp(prefix="pbu-bench-test-", dir="/var/tmp"))  # private, never fixed
    monkeypatch.setenv("PYBPFURING_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("PYBPFURING_IN_GUEST", raising=False)
    yield data
    if data.parent == Path("/var/tmp"):
        shutil.rmtree(data, ignore_errors=True)


@needs_cc
def test_cp_end_to_end_writes_table_json_and_png(bench_env: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results"
    rc = main(["cp", "--size", "1M", "--emulated-size", "256K", "--runs", "2", "--warmup", "0",
               "--where", "host",
               "--data-dir", str(bench_env), "--out", str(out)])
    assert rc == 0
    table_md = capsys.readouterr().out
    doc = json.loads((out / "cp.json").read_text())
    assert doc["benchmark"] == "cp" and len(doc["environments"]) == 1
    env = doc["environments"][0]
    assert env["info"]["environment"] == "host" and env["size"] == 1 << 20 and env["data"]["fs"] not in \
        datafile.REFUSED_FS
    rows = {r["id"]: r for r in env["rows"]}
    # The baselines always run; the rows that cannot run here say why.
    for rid in ("py_rw", "py_ring", "emulated_jit", "emulated_interp"):
        assert rows[rid]["status"] == "ok", rows[rid]
    for row in rows.values():
        if row["status"] == "ok":
            assert len(row["runs_s"]) == 2 and all(t > 0 for t in row["runs_s"])
            assert row["min_s"] <= row["median_s"] <= row["max_s"]
        else:
            assert row["status"] == "unavailable" and row["reason"], row
            assert row["reason"] in table_md
    # The slow engines copy less (--emulated-size) and the table says so; the native loop copies all.
    assert rows["emulated_interp"]["amount"] == rows["emulated_jit"]["amount"] == 256 << 10
    assert rows["emulated_native"]["amount"] == 1 << 20
    assert "copies 256 KiB, not 1 MiB" in table_md
    ratios = report.ratios(env)
    if rows["c_rw"]["status"] == "ok":
        assert ratios["c_rw"] == pytest.approx(1.0)
        assert set(ratios) == {rid for rid, r in rows.items() if r["status"] == "ok"}
    # Each 4 KiB block costs one read and one write syscall in these loops: 512 per MiB.
    if "perf" in env["syscall_method"] or "strace" in env["syscall_method"]:
        for rid in ("c_rw", "py_rw", "py_ring", "emulated_interp"):
            if rows[rid]["status"] == "ok":
                assert rows[rid]["syscalls_per_unit"] == pytest.approx(512, abs=8), rid
    assert (out / "cp.md").read_text() == report.markdown(doc)
    # The files can be re-rendered from the JSON alone (e.g. after editing a label).
    (out / "cp.md").unlink()
    assert main(["report", str(out / "cp.json")]) == 0
    assert (out / "cp.md").read_text() == report.markdown(doc)
    assert "| read/write loop (Python: os.pread+os.write) | 1 MiB | 2 |" in table_md
    assert "1630" in table_md  # the talk's numbers are printed beside ours
    pytest.importorskip("matplotlib")
    assert (out / "cp.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@needs_cc
def test_nops_end_to_end(tmp_path: Path, bench_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results"
    assert main(["nops", "--count", "300", "--emulated-count", "50", "--runs", "1", "--where", "host",
                 "--out", str(out)]) == 0
    doc = json.loads((out / "nops.json").read_text())
    rows = {r["id"]: r for r in doc["environments"][0]["rows"]}
    assert rows["py_nops"]["status"] == "ok" and rows["emulated_interp_nops"]["amount"] == 50
    assert rows["emulated_interp_nops"]["status"] == "ok", rows["emulated_interp_nops"]
    if doc["environments"][0]["syscall_method"].startswith(("perf", "strace")):
        # User space pays one io_uring_enter per NOP of the chain.
        assert rows["py_nops"]["syscalls_per_unit"] == pytest.approx(1.0, abs=0.05)
    assert "ns/request" in capsys.readouterr().out


def test_tmpfs_source_is_refused_with_a_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if datafile.fs_type(Path("/dev/shm")) != "tmpfs":
        pytest.skip("/dev/shm is not tmpfs here")
    shm = tempfile.mkdtemp(prefix="pbu-bench-", dir="/dev/shm")
    try:
        rc = main(["cp", "--size", "64K", "--runs", "1", "--where", "host", "--data-dir", shm,
                   "--out", str(tmp_path), "--no-syscalls"])
        err = capsys.readouterr().err
        assert rc == 2 and "is on tmpfs" in err and "Traceback" not in err
        assert os.listdir(shm) == []  # the run's private directory is gone again
    finally:
        shutil.rmtree(shm, ignore_errors=True)


def test_bad_sizes_are_user_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_size("1G") == 1 << 30 and parse_size("256M") == 256 << 20 and parse_size("8192") == 8192
    for bad in ("1000", "lots", "-4K"):
        with pytest.raises(SystemExit) as exc:
            main(["cp", "--size", bad, "--where", "host"])
        assert exc.value.code == 2
    assert "multiple of 4 KiB" in capsys.readouterr().err


def test_page_cache_residency_is_measured(bench_env: Path) -> None:
    datafile.prepare_dir(bench_env)
    path = datafile.source_file(bench_env, 256 << 10)
    assert path.stat().st_size == 256 << 10 and datafile.warm(path) == 1.0
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # clean pages: dropped at once
    finally:
        os.close(fd)
    assert datafile.cached_fraction(path) < 1.0


def test_syscall_counter_counts_a_known_command() -> None:
    counter, note = syscalls.choose_counter()
    if counter is None:
        pytest.skip(f"no syscall counter works here: {note}")
    # `head -c N /dev/zero` reads and writes in fixed-size chunks: the count grows with N.
    per = syscalls.slope(counter, lambda n: ["head", "-c", str(n), "/dev/zero"], 1 << 20, 4 << 20, 1 << 20)
    assert per > 1
