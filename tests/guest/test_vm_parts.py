"""Host-side unit tests of the guest machinery's pure parts (no network, no QEMU)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from guest_tier import HOST_ONLY_REASON, IN_GUEST, junit_key, parse_junit
from pybpfuring.vm.apt import mirrors_from_sources
from pybpfuring.vm.image import EXIT_MARKER, Job, init_script
from pybpfuring.vm.kernel import elf_image_size, extract_vmlinux, newest_kernel_package
from pybpfuring.vm.steps import VmError

pytestmark = pytest.mark.skipif(IN_GUEST, reason=HOST_ONLY_REASON)

DEB822 = """Types: deb
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
"""


def test_mirror_is_the_archive_not_the_security_archive() -> None:
    mirrors = mirrors_from_sources([DEB822], [])
    assert [m.uri for m in mirrors] == ["http://mirror.example/debian"]
    assert mirrors[0].keyring == "/usr/share/keyrings/debian-archive-keyring.gpg"


def test_one_line_sources_are_understood_too() -> None:
    text = ("# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://m.example/debian/ bookworm main\n"
            "deb http://m.example/debian-security bookworm-security main\n")
    mirrors = mirrors_from_sources([], [text])
    assert [(m.uri, m.keyring) for m in mirrors] == [("http://m.example/debian", "/k.gpg")]


def test_newest_cloud_kernel_at_least_7_1_is_chosen() -> None:
    names = ["linux-binary-7.0.9+deb14-cloud-amd64", "linux-binary-7.2.13+deb14-cloud-amd64",
             "linux-binary-7.2.9+deb14-cloud-amd64", "linux-binary-unsigned-7.3.1+deb14-cloud-amd64",
             "linux-binary-7.10.1+deb14-amd64", "linux-binary-7.3.0+deb14-rt-amd64"]
    assert newest_kernel_package(names) == ("linux-binary-7.2.13+deb14-cloud-amd64",
                                            "7.2.13+deb14-cloud-amd64")
    assert newest_kernel_package(["linux-binary-6.18.3+deb14-cloud-amd64"]) is None


@pytest.mark.skipif(shutil.which("zstd") is None, reason="zstd is not installed (apt-get install zstd)")
def test_vmlinux_is_the_elf_zstd_stream_inside_the_image(tmp_path: Path) -> None:
    elf = Path("/bin/true").read_bytes()
    decoy = subprocess.run(["zstd", "-q", "-c"], input=b"not an ELF" * 100, capture_output=True,
                           check=True).stdout
    stream = subprocess.run(["zstd", "-q", "-c"], input=elf, capture_output=True, check=True).stdout
    image = tmp_path / "vmlinuz"
    image.write_bytes(b"\x00" * 512 + decoy + b"setup" * 10 + stream + b"trailing bytes" * 50)
    extract_vmlinux(image, tmp_path / "vmlinux")
    assert (tmp_path / "vmlinux").read_bytes() == elf
    assert elf_image_size(elf) > 0 and elf_image_size(elf[:100]) == 0


def test_an_image_without_a_kernel_is_a_clear_error(tmp_path: Path) -> None:
    image = tmp_path / "vmlinuz"
    image.write_bytes(b"\x00" * 4096)
    with pytest.raises(VmError, match="step 'extract vmlinux' failed: .* no zstd stream"):
        extract_vmlinux(image, tmp_path / "vmlinux")


def test_job_script_quotes_arguments_and_environment() -> None:
    job = Job(argv=["python3", "-c", "print('a b; $HOME')"], cwd="/work/dir with space",
              env={"X": "it's"})
    script = job.script()
    assert "export X='it'\"'\"'s'" in script
    assert "cd '/work/dir with space' || exit 126" in script
    assert "exec python3 -c 'print('\"'\"'a b; $HOME'\"'\"')' 2>&1" in script


def test_init_reports_an_exit_status_even_when_a_mount_fails() -> None:
    text = init_script()
    assert text.startswith("#!/bin/busybox sh\n")
    assert f'echo "{EXIT_MARKER} 125@@"' in text and "poweroff -f" in text


def test_junit_results_map_back_to_node_ids() -> None:
    xml = """<testsuites><testsuite>
      <testcase classname="tests.guest.test_k" name="test_ok"/>
      <testcase classname="tests.guest.test_k.TestC" name="test_p[1]"><failure message="boom">trace
      </failure></testcase>
      <testcase classname="tests.guest.test_k" name="test_s"><skipped message="why"/></testcase>
    </testsuite></testsuites>"""
    cases = parse_junit(xml)
    assert cases[junit_key("tests/guest/test_k.py::test_ok")].outcome == "passed"
    failed = cases[junit_key("tests/guest/test_k.py::TestC::test_p[1]")]
    assert (failed.outcome, failed.message) == ("failed", "boom") and "trace" in failed.text
    assert cases[junit_key("tests/guest/test_k.py::test_s")].message == "why"


@pytest.mark.skipif(shutil.which("apt-get") is None, reason="apt-get is not installed (not Debian)")
def test_an_unreachable_mirror_is_reported_as_no_apt_access(tmp_path: Path) -> None:
    from pybpfuring.vm.apt import Mirror, PrivateApt
    from pybpfuring.vm.steps import NoAptAccess
    apt = PrivateApt(tmp_path, Mirror("http://127.0.0.1:9/debian", "/usr/share/keyrings/none.gpg"),
                     retries=0)
    with pytest.raises(NoAptAccess, match=r"step 'apt-get update \(sid on http://127.0.0.1:9/debian\)'"):
        apt.update()


def _guest_suite(root: Path, shared: str, alone: str) -> None:
    """A tests/guest of two modules: test_shared.py and the ALONE module, with these bodies."""
    (root / "tests" / "guest").mkdir(parents=True)
    (root / "tests" / "guest" / "test_shared.py").write_text(shared)
    (root / "tests" / "guest" / "test_trace_guest.py").write_text(alone)


def _run_guest_command(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=cwd)


def test_guest_command_runs_both_phases_and_reports_every_test(tmp_path: Path) -> None:
    """The guest's command, run here on a small suite: every test of both phases is in the reports
    (the ALONE modules after the others), and the exit status is the worst of the two phases."""
    from pybpfuring.vm.cli import guest_pytest_argv
    _guest_suite(tmp_path, "def test_a():\n    pass\n\ndef test_b():\n    assert 0\n",
                 "def test_c():\n    pass\n")
    out = tmp_path / "out"
    out.mkdir()
    proc = _run_guest_command(guest_pytest_argv([], out=str(out)), tmp_path)
    cases: dict[str, Any] = {}
    for report in out.glob("junit*.xml"):
        cases.update(parse_junit(report.read_text()))
    outcomes = {k: c.outcome for k, c in cases.items()}
    assert outcomes == {"tests.guest.test_shared::test_a": "passed", "tests.guest.test_shared::test_b": "failed",
                        "tests.guest.test_trace_guest::test_c": "passed"}, proc.stdout[-3000:]
    assert proc.returncode == 1
    # A selection that only one phase matches is not an error.
    for report in out.glob("junit*.xml"):
        report.unlink()
    proc = _run_guest_command(guest_pytest_argv(["-k", "test_c"], out=str(out)), tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_guest_pytest_stops_itself_before_the_guest_limit_so_its_report_survives(tmp_path: Path) -> None:
    """A slow guest run still returns the JUnit report of what it ran: pytest gets SIGINT (and
    writes the report) REPORT_MARGIN seconds before the host's limit stops the guest."""
    from pybpfuring.vm.cli import REPORT_MARGIN, guest_pytest_argv
    plain = guest_pytest_argv([], out=str(tmp_path / "out"))
    limited = guest_pytest_argv([], 2400, out=str(tmp_path / "out"))
    assert limited[:7] == ["timeout", "--preserve-status", "-s", "INT", "-k", "60",
                           str(int(2400 - REPORT_MARGIN))]
    assert limited[7:] == plain
    # The same command with a 5 s limit, on a suite whose first phase outlives it: the report
    # names the test that ran, the second phase does not start, the status says "interrupted".
    _guest_suite(tmp_path, "import time\n\ndef test_quick():\n    pass\n\ndef test_slow():\n"
                 "    time.sleep(60)\n", "def test_c():\n    pass\n")
    (tmp_path / "out").mkdir()
    proc = _run_guest_command([*limited[:5], "20", "8", *plain], tmp_path)
    assert proc.returncode in (2, 130), proc.stdout[-3000:]
    cases: dict[str, Any] = {}
    for report in (tmp_path / "out").glob("junit*.xml"):
        cases.update(parse_junit(report.read_text()))
    assert cases["tests.guest.test_shared::test_quick"].outcome == "passed", cases
    assert "tests.guest.test_shared::test_slow" not in cases, cases
    assert "tests.guest.test_trace_guest::test_c" not in cases, cases
