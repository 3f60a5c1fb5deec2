"""The public runtime API is type-checked in the test run: a wrong argument type is a TypeError at the call."""
import pytest

from pybpfuring.uring import IoUring


def test_wrong_argument_type_is_a_type_error_at_the_call() -> None:
    with pytest.raises(TypeError) as info:
        IoUring("eight")  # type: ignore[arg-type]
    assert 'argument "entries" (str) is not an instance of int' in str(info.value)


def test_public_modules_are_instrumented() -> None:
    import pybpfuring.runtime.model as model
    import pybpfuring.uring.ring as ring
    for mod in (model, ring):
        assert "typeguard" in mod.__loader__.__class__.__module__, mod.__name__
