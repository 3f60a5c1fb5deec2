"""Host side of the guest tier: boot the Linux 7.x QEMU guest and check what comes back.

conftest.py boots the guest once per session (at the first test that needs it) and runs every
`in_guest` test there; their results appear here as `in_guest[...]` items.
"""
from __future__ import annotations

import subprocess
import sys

import pytest

from guest_tier import HOST_ONLY_REASON, IN_GUEST, GuestTier, junit_key

pytestmark = pytest.mark.skipif(IN_GUEST, reason=HOST_ONLY_REASON)


def test_guest_pytest_ran_every_guest_test(guest_tier: GuestTier, request: pytest.FixtureRequest) -> None:
    # Exit status 0 (all passed) or 1 (some failed) means the guest collected and ran its tests;
    # anything else (collection error, usage error, no tests) is a broken tier, whatever the twins say.
    assert guest_tier.exit_status in (0, 1), \
        f"guest pytest exit status {guest_tier.exit_status}:\n{guest_tier.console[-3000:]}"
    expected = [it.guest_nodeid for it in request.session.items if hasattr(it, "guest_nodeid")]
    assert expected, "no in_guest tests were collected on the host"
    missing = [n for n in expected if junit_key(n) not in guest_tier.cases]
    assert not missing, f"collected on the host but absent from the guest's report: {missing}"


def _vm(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pybpfuring.vm", *args], capture_output=True,
                          text=True, timeout=timeout, check=False)


def test_vm_run_reports_the_commands_exit_status_and_output(guest_tier: GuestTier) -> None:
    proc = _vm("run", "--", "sh", "-c", "echo guest says $(uname -r); exit 7")
    assert proc.returncode == 7, proc.stderr
    assert "guest says 7." in proc.stdout


def test_vm_info_names_the_cached_kernel(guest_tier: GuestTier) -> None:
    proc = _vm("info", timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "kernel release:   7." in proc.stdout
    assert "vmlinux:" in proc.stdout and "initramfs:        init-" in proc.stdout


def test_a_guest_that_runs_too_long_is_stopped_with_a_clear_message(guest_tier: GuestTier) -> None:
    # The timeout bounds boot and job together, so the message is the same however loaded the host is.
    proc = _vm("run", "--timeout", "12", "--", "sleep", "600", timeout=120)
    assert proc.returncode == 2
    assert "vm: step 'run in guest' failed: the guest did not finish within 12 s" in proc.stderr
    assert "Traceback" not in proc.stderr
