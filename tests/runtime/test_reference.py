"""The four 2021 reference programs give the results of liburing bpf_v3 `examples/bpf/uring.c`
test1..test4 (reference/io_uring-bpf-abi.md §1.2), on a ring set up like its ring_prep()."""
from __future__ import annotations

import run_reference


def test_test1_maps_cqes_submit_user_memory_and_wait(backend: str, no_fd_leak: None) -> None:
    r = run_reference.test1(backend)
    user_data = r.extra["user_data"]
    assert r.slots[:6] == [11, 4, 5, 21, user_data, 29]
    assert r.slots[10] == 1  # the re-entry guard: the second run returned OK at once
    assert r.extra["secret"] == 31
    got = sorted((c.user_data, c.res) for c in r.cq0)
    assert got == sorted([(3, 13), (2, 0), (user_data, 0)])
    # the emitted CQE comes before the request's own completion (which needs the second run)
    order = [c.user_data for c in r.cq0]
    assert order.index(3) < order.index(user_data)


def test_test2_counting_ticks_eleven_times(backend: str, no_fd_leak: None) -> None:
    r = run_reference.test2(backend)
    assert r.slots[0] == 11
    assert r.slots[1] == 5  # user_data of the last reaped timeout CQE
    assert r.extra["runs"] == 12  # 11 ticks, then the run that sees arr[0] > 10
    assert r.cq0[-1].res == 0


def test_test3_pingpong_reaches_twenty(backend: str, no_fd_leak: None) -> None:
    r = run_reference.test3(backend)
    assert r.slots[0] == 1 and r.slots[1] == 1  # both armed
    assert sorted(r.slots[5:7]) == [20, 21]      # one stops at 20, the other at the 21 it got
    assert [c.res for c in r.cq0] == [0, 0]


def test_test4_write_file_writes_256k_of_0xae(backend: str, tmp_path: object, no_fd_leak: None) -> None:
    r = run_reference.test4(backend, directory=str(tmp_path))
    assert r.extra["size"] == run_reference.FILE_SIZE == 256 * 1024
    assert r.extra["all_0xae"]
    assert r.slots == [0, 16]  # nothing in flight, 16 blocks written
    assert r.extra["runs"] == 5  # 4 batches of 4 writes in flight (each wait is for all 4), then OK
    assert r.cq0[-1].res == 0


def test_run_reference_main_reports_success(backend: str, capsys: object) -> None:
    assert run_reference.main(["--backend", backend]) == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "all as in the 2021 tests" in out
