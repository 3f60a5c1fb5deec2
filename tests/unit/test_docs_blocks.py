"""Every Python block of README.md and docs/*.md runs (issue 20): the host runs each page's host
blocks in order in one namespace; blocks marked `<!-- guest: ... -->` run in the guest tier
(tests/guest/test_docs_guest.py); `<!-- fragment: ... -->` blocks must say why (docs/testing.md)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from doc_blocks import KINDS, PAGES, ROOT, all_blocks, pages_with, run_page  # noqa: E402

HOST_PAGES = pages_with("host")


def test_the_docs_have_blocks() -> None:
    # The collector must see the blocks it is meant to check (a changed fence would hide them all).
    assert len(all_blocks()) >= 20
    assert len(HOST_PAGES) >= 5


@pytest.mark.parametrize("block", all_blocks(), ids=lambda b: b.where)
def test_marker_says_why(block) -> None:
    assert block.kind in KINDS
    if block.kind == "fragment":
        assert len(block.reason) >= 10, f"{block.where}: a fragment marker says why the block cannot run"


def test_fragments_are_rare() -> None:
    fragments = [b.where for b in all_blocks() if b.kind == "fragment"]
    assert len(fragments) <= len(all_blocks()) // 4, fragments


def _bpf_refused() -> str | None:
    """Why this process may not create BPF objects (loader.md loads programs), or None."""
    from pybpfuring.errors import BpfSyscallError
    from pybpfuring.loader import syscalls
    try:
        syscalls.close_fd(syscalls.map_create(2, 4, 8, 1, name="probe"))
    except (BpfSyscallError, PermissionError) as exc:
        return f"bpf() is refused here ({exc}); docs/loader.md's blocks load programs"
    return None


@pytest.mark.parametrize("page", HOST_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_page_blocks_run_on_host(page: Path, tmp_path: Path) -> None:
    if page.name == "loader.md" and (why := _bpf_refused()):
        pytest.skip(why)
    assert run_page(page, ("host",), tmp_path) > 0
