"""Where the running kernel lacks io_uring filters, the API says so (the host's 6.18 is such a kernel)."""
from __future__ import annotations

import pytest

from pybpfuring.filters.kernel import FiltersUnsupported, filters_supported, support_line
from pybpfuring.runtime.model import Ring

from . import policies


@pytest.fixture
def no_filters() -> None:
    if filters_supported():
        pytest.skip("this kernel has io_uring filters; tests/guest/test_filters.py covers them")


def test_ring_register_filter_says_the_kernel_lacks_filters(no_filters) -> None:
    with Ring(8, backend="emulated") as ring:
        with pytest.raises(FiltersUnsupported, match="has no io_uring BPF filters"):
            ring.register_filter(policies.opens)
    assert support_line().startswith("io_uring BPF filters: no")


def test_restrict_task_says_so_too(no_filters) -> None:
    import pybpfuring
    with pytest.raises(FiltersUnsupported):
        pybpfuring.restrict_task([policies.nops], deny_rest=True)
