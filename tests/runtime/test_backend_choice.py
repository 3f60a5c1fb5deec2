"""Which backend runs a ring, and why: `ring.backend_reason`, `pybpfuring info`, and the warning
"auto" gives when it passes over a backend the machine has (never a silent fallback)."""
from __future__ import annotations

import subprocess
import sys
import warnings

import pytest

from pybpfuring import BackendFallbackWarning
from pybpfuring.runtime import Ring
from pybpfuring.runtime import backends as B
from pybpfuring.runtime.backends import select as choice  # AUTO_ORDER is read there


def test_a_named_backend_says_it_was_asked_for() -> None:
    with Ring(4, backend="emulated") as ring:
        assert ring.backend_reason == "emulated: asked for by name"
    assert ring.backend_reason == "emulated: asked for by name"      # still there after close


def test_auto_says_why_the_kernel_backend_is_not_used_here() -> None:
    kernel_why_not = B.BACKENDS["bpf_ops"][0]()
    if kernel_why_not is None:
        pytest.skip("this kernel runs bpf_ops (the guest tier checks auto there)")
    with warnings.catch_warnings():
        warnings.simplefilter("error", BackendFallbackWarning)   # no kernel backend: nothing to warn
        with Ring(4, cqs=[8]) as ring:
            assert ring.backend == "emulated"
            assert ring.backend_reason == f"emulated: bpf_ops cannot run here: {kernel_why_not}"


class _SmallKernelBackend:
    """A backend registered like bpf_ops whose probe passes but which takes no extra CQ: the
    case of a kernel backend that runs here but not with the ring asked for."""

    @staticmethod
    def factory(entries: int, cqs: list[int], budget: int, engine: str) -> B.RingBackend:
        raise B.BackendUnfit(f"ring needs {len(cqs) + 1} CQs, this backend has 1")


@pytest.fixture
def small_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(B.BACKENDS, "small", (lambda: None, _SmallKernelBackend.factory))
    monkeypatch.setattr(choice, "AUTO_ORDER", ["small", "emulated"])


def test_auto_warns_when_the_ring_does_not_fit_a_backend_that_runs_here(small_first: None) -> None:
    with pytest.warns(BackendFallbackWarning, match="ring needs 3 CQs, this backend has 1") as caught:
        ring = Ring(4, cqs=[8, 8])
    with ring:
        assert ring.backend == "emulated"
        assert ring.backend_reason == "emulated: small cannot take this ring: ring needs 3 CQs, this backend has 1"
        ring.submit_and_wait(0)
    assert caught[0].filename == __file__          # points at the user's Ring(...) line
    with pytest.raises(ValueError, match="needs 1 CQs"):  # named explicitly: an error, not a fallback
        Ring(4, backend="small")


def test_auto_is_quiet_when_the_first_backend_takes_the_ring(small_first: None) -> None:
    choice.AUTO_ORDER.remove("small")
    with warnings.catch_warnings():
        warnings.simplefilter("error", BackendFallbackWarning)
        with Ring(4, cqs=[8]) as ring:
            assert ring.backend_reason == "emulated: the first backend of ['emulated']"


def test_info_prints_the_reason_auto_gives() -> None:
    out = subprocess.run([sys.executable, "-m", "pybpfuring", "info"], capture_output=True, text=True,
                         check=True).stdout
    assert f"default backend: {B.choose_backend().reason}\n" in out + "\n"
