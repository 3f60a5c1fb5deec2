"""The guest tier's machinery (used by conftest.py and the host-side tests).

One guest boot per pytest session runs every `in_guest` test inside the Linux 7.x QEMU guest;
the JUnit report that comes back is turned into one host-side result per guest test.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import pytest

IN_GUEST = os.environ.get("PYBPFURING_IN_GUEST") == "1"
GUEST_ONLY_REASON = "runs inside the Linux 7.x QEMU guest (tests/guest/test_vm.py boots it)"
HOST_ONLY_REASON = "host-side part of the guest tier; this process already runs inside the guest"
GUEST_TIMEOUT = float(os.environ.get("PYBPFURING_GUEST_TIMEOUT", "2400"))
HERE = Path(__file__).resolve().parent


@dataclass
class GuestCase:
    outcome: str          # "passed", "failed" or "skipped"
    message: str = ""
    text: str = ""


@dataclass
class GuestTier:
    """One guest boot per pytest session, shared by every host-side guest-tier test."""

    rootdir: Path
    config: pytest.Config
    ran: bool = False
    skip_reason: str | None = None
    error: str | None = None
    exit_status: int | None = None
    console: str = ""
    cases: dict[str, GuestCase] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def require(self) -> "GuestTier":
        """Boot and run the guest tests (first call only); skip or fail like the session did."""
        if not self.ran:
            self.ran = True
            self._run()
        if self.skip_reason:
            pytest.skip(self.skip_reason)
        if self.error:
            pytest.fail(self.error, pytrace=False)
        return self

    def _run(self) -> None:
        if os.environ.get("PYBPFURING_GUEST") == "0":
            self.skip_reason = "guest tier turned off by PYBPFURING_GUEST=0"
            return
        from pybpfuring.vm import NoAptAccess, VmError, ensure_artifacts, qemu_binary, run_in_guest
        from pybpfuring.vm.cli import guest_pytest_argv
        if qemu_binary() is None:
            self.skip_reason = "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)"
            return
        try:
            with self._live_output():
                ensure_artifacts()
                result = run_in_guest(guest_pytest_argv([], GUEST_TIMEOUT), cwd=self.rootdir,
                                      timeout=GUEST_TIMEOUT,
                                      on_line=self._echo)
        except NoAptAccess as err:
            self.skip_reason = f"the Linux 7.x kernel cannot be obtained: apt has no access ({err})"
            return
        except VmError as err:
            self.error = str(err)
            return
        self.exit_status, self.console = result.exit_status, result.console
        self.timings = {"boot": result.boot_seconds, "total": result.total_seconds}
        reports = sorted(result.out_dir.glob("junit*.xml"))   # one per phase (pybpfuring/vm/cli.py)
        if not reports:
            self.error = (f"the guest's pytest wrote no JUnit report (exit status {result.exit_status})"
                          f"; its output ends:\n{tail(self.console)}")
            return
        for report in reports:
            self.cases.update(parse_junit(report.read_text()))

    def _live_output(self) -> contextlib.AbstractContextManager[object]:
        """Progress lines reach the terminal while pytest captures test output."""
        capman = self.config.pluginmanager.getplugin("capturemanager")
        if capman is None:
            return contextlib.nullcontext()
        return capman.global_and_fixture_disabled()

    def _echo(self, line: str) -> None:
        if os.environ.get("PYBPFURING_GUEST_ECHO") == "1":
            print(f"[guest] {line}", flush=True)


def scratch_dir(tmp_path: Path, name: str) -> Path:
    """A new directory on the guest's ext4 scratch disk (never tmpfs: io_uring punts shmem reads to
    io-wq), or `tmp_path` where there is none (the host). New on every call: the guest's tests run
    in several workers at once."""
    base = os.environ.get("PYBPFURING_SCRATCH")
    if not base:
        return tmp_path
    return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=base))


def tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.splitlines()[-lines:])


def junit_key(nodeid: str) -> str:
    """The (classname, name) of a pytest node id as pytest's JUnit XML writes them, joined by '::'."""
    parts = nodeid.split("::")
    classname = ".".join([parts[0].removesuffix(".py").replace("/", "."), *parts[1:-1]])
    return f"{classname}::{parts[-1]}"


def parse_junit(xml_text: str) -> dict[str, GuestCase]:
    """Guest results keyed like junit_key(); a failure or error in any phase makes the case fail."""
    cases: dict[str, GuestCase] = {}
    for tc in ET.fromstring(xml_text).iter("testcase"):
        key = f"{tc.get('classname', '')}::{tc.get('name', '')}"
        case = GuestCase("passed")
        for child in tc:
            if child.tag in ("failure", "error"):
                case = GuestCase("failed", child.get("message", ""), child.text or "")
                break
            if child.tag == "skipped":
                case = GuestCase("skipped", child.get("message", ""), child.text or "")
        previous = cases.get(key)
        if previous is None or previous.outcome != "failed":
            cases[key] = case
    return cases


class GuestTestFailure(Exception):
    """A test failed inside the guest; the message is the guest's own failure text."""


class GuestResultItem(pytest.Item):
    """The host-side result of one test that ran inside the guest."""

    def __init__(self, *, guest_nodeid: str, **kwargs):
        super().__init__(**kwargs)
        self.guest_nodeid = guest_nodeid

    def runtest(self) -> None:
        tier = self.config.stash[TIER_KEY].require()
        case = tier.cases.get(junit_key(self.guest_nodeid))
        if case is None:
            why = (f" (the guest run reached its time limit, PYBPFURING_GUEST_TIMEOUT={GUEST_TIMEOUT:.0f} s, "
                   "before this test)" if tier.exit_status in (2, 124, 130) else "")
            raise GuestTestFailure(f"{self.guest_nodeid} did not run in the guest{why} (guest pytest exit "
                                   f"status {tier.exit_status}); guest output ends:\n{tail(tier.console)}")
        if case.outcome == "skipped":
            pytest.skip(f"skipped in the guest: {case.message}")
        if case.outcome == "failed":
            raise GuestTestFailure(f"failed in the guest: {case.message}\n{case.text}")

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, GuestTestFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, None, f"in guest: {self.guest_nodeid}"


TIER_KEY = pytest.StashKey[GuestTier]()
