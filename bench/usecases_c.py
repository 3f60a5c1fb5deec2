"""The C liburing baselines of the TCP echo and splice use cases (bench/c/usecase_tcp_echo.c,
usecase_splice.c), run as the use-case benchmark's other rows are: same load generator, same input,
results checked against the job's Python model by the caller."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench import cbuild

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

import tcp_echo as T  # noqa: E402


def c_tcp_echo(clients: int, requests: int, size: int, duration: float) -> dict:
    """The C server against examples/tcp_echo.py's load generator; the client's figures (requests,
    expected, bad, timed_out, rps, p50_us, p99_us), as tcp_echo.run returns them."""
    binary = cbuild.build("c/usecase_tcp_echo.c")
    lst = T.listener()
    try:
        server = subprocess.Popen([str(binary), str(lst.fileno()), str(clients),
                                   str(int(duration) + 30)], pass_fds=(lst.fileno(),),
                                  stderr=subprocess.PIPE, text=True)
        client = T.start_client(lst.getsockname()[1], clients, requests, size, duration)
        out, _ = client.communicate(timeout=duration + 60)
        try:
            _, err = server.communicate(timeout=30)   # it ends once every client has closed
        except subprocess.TimeoutExpired:
            server.kill()
            _, err = server.communicate()
        if server.returncode != 0:
            raise RuntimeError(f"the C echo server failed ({server.returncode}): {err.strip()}")
    finally:
        lst.close()
    figures: dict = json.loads(out)
    figures.update(server="c-liburing")
    return figures


def c_splice(src: str, dst: str, mask: int) -> tuple[int, float]:
    """The selected payloads of `src` spliced into `dst` (replaced if it exists: the C program
    creates it with O_EXCL); (bytes written, seconds of the copy)."""
    binary = cbuild.build("c/usecase_splice.c")
    Path(dst).unlink(missing_ok=True)
    proc = subprocess.run([str(binary), src, dst, str(mask)], capture_output=True, text=True,
                          timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"the C splice failed ({proc.returncode}): {proc.stderr.strip()}")
    written, ns = proc.stdout.split()
    return int(written), int(ns) / 1e9
