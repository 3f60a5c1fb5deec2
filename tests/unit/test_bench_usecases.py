"""`pybpfuring bench usecases` at tiny sizes on the host: every row runs (or says why it cannot),
every row's results were checked against Python by the bench itself, the ratios are to the C loop
of the same job, and the table, JSON and one plot per case are written where asked."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench import usecases  # noqa: E402

TINY = ["--sizes", "quick", "--runs", "2", "--keys", "3000", "--lookups", "64", "--rounds", "3",
        "--records", "60", "--clients", "8", "--requests", "3", "--no-syscalls"]


@pytest.fixture(scope="module")
def doc(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("uc")
    proc = subprocess.run([sys.executable, "-m", "bench", "usecases", *TINY, "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    d = json.loads((out / "usecases.json").read_text())
    d["_out"] = out
    d["_stdout"] = proc.stdout
    return d


def test_every_row_runs_on_the_host(doc: dict) -> None:
    (env,) = doc["environments"]
    assert env["environment"] == "host"
    assert [t["case"] for t in env["tables"]] == list(usecases.CASES)
    for t in env["tables"]:
        names = [r["row"] for r in t["rows"]]
        assert "c-liburing" in names or "c-liburing-qd16" in names
        assert any(n.startswith("bpf/emulated") for n in names)
        for r in t["rows"]:
            assert "unavailable" not in r, (t["case"], r)     # uvloop comes with the bench extra
            assert r["per_s"] > 0 and r["spread_pct"] >= 0


def test_ratios_are_to_the_c_loop_of_the_same_job(doc: dict) -> None:
    for t in doc["environments"][0]["tables"]:
        for r in t["rows"]:
            if r["row"].startswith("c-liburing"):
                assert r["ratio_to_c"] == pytest.approx(1.0)
            else:
                base = next(b for b in t["rows"]
                            if b["row"] == usecases.out.baseline_of(t["case"], r["row"]))
                assert r["ratio_to_c"] == pytest.approx(base["per_s"] / r["per_s"])


def test_markdown_and_plots_written(doc: dict) -> None:
    out = doc["_out"]
    md = (out / "usecases.md").read_text()
    assert md.strip() == doc["_stdout"].strip()
    for case in usecases.CASES:
        assert f"### {case}:" in md
        png = out / f"usecases-{case}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_row_that_cannot_run_keeps_its_reason() -> None:
    def too_big() -> float:
        raise ValueError("needs 1 MiB of user memory, the ring has 256 KiB")
    row = usecases.measured("bpf/bpf_ops-qd256", 3, too_big, 10)
    assert row == {"row": "bpf/bpf_ops-qd256",
                   "unavailable": "ValueError: needs 1 MiB of user memory, the ring has 256 KiB"}
    md = "\n".join(usecases.out.table_markdown({"case": "lookup", "what": "w", "rows": [row]}))
    assert "not run: ValueError: needs 1 MiB" in md


def test_the_guest_gets_both_backends_and_its_sizes_unless_told() -> None:
    argv = usecases.guest_argv(["--only", "lookup", "--where", "both", "--out", "/x", "--no-write"])
    assert argv[-4:] == ["--where", "here", "--json-only", usecases.guest.GUEST_OUT]
    o = usecases.options(argv[4:])
    assert o.backends == ["emulated", "bpf_ops"] and o.sizes == "guest" and o.cases == ["lookup"]
    o = usecases.options(usecases.guest_argv(["--sizes", "quick", "--backends", "bpf_ops"])[4:])
    assert o.sizes == "quick" and o.backends == ["bpf_ops"]


def test_the_c_splice_baseline_writes_what_python_selects(tmp_path: Path) -> None:
    import splice_records as S
    src = tmp_path / "records"
    S.build_records(str(src), 120, seed=7)
    written, secs = usecases.usecases_c.c_splice(str(src), str(tmp_path / "out"), 0b10110)
    want = S.python_select(str(src), 0b10110)
    assert written == len(want) and (tmp_path / "out").read_bytes() == want and secs > 0


def test_the_c_echo_baseline_answers_every_request() -> None:
    f = usecases.usecases_c.c_tcp_echo(20, 4, 100, 60.0)
    assert (f["requests"], f["expected"], f["bad"], f["timed_out"]) == (80, 80, 0, 0)
