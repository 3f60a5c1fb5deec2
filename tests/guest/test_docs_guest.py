"""The docs' Python blocks marked `<!-- guest: ... -->` (io_uring_bpf_ops, bcc) run here, inside the
Linux 7.x guest, each page's blocks in order up to its last guest block (host blocks before it
included), as a reader of the page on a Linux >= 7.1 machine would run them (tests/unit/doc_blocks.py; the host runs the other blocks)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.in_guest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from doc_blocks import ROOT, pages_with, run_page  # noqa: E402

GUEST_PAGES = pages_with("guest")


def test_docs_guest_pages_exist() -> None:
    # kernel.md and loader.md have blocks only the guest can run (trace.md's KernelTrace block is
    # run by test_trace_guest.py instead).
    assert len(GUEST_PAGES) >= 2


@pytest.mark.parametrize("page", GUEST_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_guest_page_blocks_run(page: Path, tmp_path: Path) -> None:
    assert run_page(page, ("host", "guest"), tmp_path, until="guest") > 0
