"""The guest tier: tests marked `in_guest` run inside the Linux 7.x QEMU guest, once per session.

On the host, every `in_guest` test is skipped, and for each one a twin item is added to
tests/guest/test_vm.py. The first twin (or test_vm.py test) to run boots the guest, which runs
`pytest tests/guest --junitxml=...` there; each twin then reports its guest test's result (pass, fail
with the guest's failure text, or skip with the guest's reason) as a host-side test result.

The whole host-side tier is skipped only where the machine truly cannot run it: PYBPFURING_GUEST=0,
no qemu-system-x86_64, or apt cannot reach the mirror to obtain the kernel (detected, not guessed).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from guest_tier import (GUEST_ONLY_REASON, HERE, HOST_ONLY_REASON, IN_GUEST, TIER_KEY,
                        GuestResultItem, GuestTier)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "in_guest: runs only inside the Linux 7.x QEMU guest")
    config.stash[TIER_KEY] = GuestTier(Path(config.rootpath), config)


@pytest.fixture(scope="session")
def guest_tier(pytestconfig: pytest.Config) -> GuestTier:
    """The session's guest run (booted on first use)."""
    if IN_GUEST:
        pytest.skip(HOST_ONLY_REASON)
    return pytestconfig.stash[TIER_KEY].require()


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    tier = config.stash.get(TIER_KEY, None)
    if tier is None or not tier.ran or not tier.timings:
        return
    counts: dict[str, int] = {}
    for case in tier.cases.values():
        counts[case.outcome] = counts.get(case.outcome, 0) + 1
    terminalreporter.write_line(
        f"guest tier: booted in {tier.timings['boot']:.1f} s, guest run {tier.timings['total']:.1f} s "
        f"(TCG), guest pytest exit status {tier.exit_status}, "
        + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))


def _short_id(item: pytest.Item) -> str:
    """`file.py::test[params]`: the node id without the directory (params may contain '/')."""
    return f"{item.path.name}::{item.nodeid.split('::', 1)[1]}"


# Modules whose tests compare their result with another test's (a module-level dict filled by the
# first backend's test): in the guest, where tests run in several xdist workers, each of these
# modules runs in one worker, in order.
SHARED_STATE_MODULES = ("test_parity.py", "test_generator_parity.py", "test_model_scale.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if IN_GUEST:
        for item in items:
            if item.path.name in SHARED_STATE_MODULES:
                item.add_marker(pytest.mark.xdist_group(item.path.stem))
        return
    guest_items = [it for it in items if it.get_closest_marker("in_guest")]
    for item in guest_items:
        item.add_marker(pytest.mark.skip(reason=GUEST_ONLY_REASON))
    runner = next((it for it in items if it.path == HERE / "test_vm.py"), None)
    if runner is None or not guest_items:
        return
    module = runner.getparent(pytest.Module)
    twins = [GuestResultItem.from_parent(module, name=f"in_guest[{_short_id(it)}]", guest_nodeid=it.nodeid)
             for it in guest_items]
    position = items.index(runner)
    items[position:position] = twins
