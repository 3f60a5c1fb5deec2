"""The native loop is C and cannot import the ABI's one home (pybpfuring/abi): its copies of the
numbers, in nl.h, must equal it. A wrong copy would route or complete requests differently from the
Python engines without any error."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from pybpfuring.abi import uring as C
from pybpfuring.abi.bpf2021 import IORING_OP_BPF_2021
from pybpfuring.abi.structs import SQE_CQ_IDX_AT
from pybpfuring.runtime.backends.emulated import RUN_OK, RUN_WAIT

NL_H = Path(__file__).resolve().parents[2] / "pybpfuring/runtime/backends/native/nl.h"
DEFINES = {m[1]: int(m[2].rstrip("u"), 0)
           for m in re.finditer(r"^#define (\w+) (\d+u?)\b", NL_H.read_text(), re.M)}

EXPECTED = {
    "OP_BPF_2021": IORING_OP_BPF_2021,
    "SQE_LINK": C.IOSQE_IO_LINK,
    "SQE_HARDLINK": C.IOSQE_IO_HARDLINK,
    "SQE_SKIP_SUCCESS": C.IOSQE_CQE_SKIP_SUCCESS,
    "CQE_F_MORE": C.IORING_CQE_F_MORE,
    "SQ_CQ_OVERFLOW": C.IORING_SQ_CQ_OVERFLOW,
    "SQ_TASKRUN": C.IORING_SQ_TASKRUN,
    "ENTER_GETEVENTS": C.IORING_ENTER_GETEVENTS,
    "ENTER_EXT_ARG": C.IORING_ENTER_EXT_ARG,
    "RUN_OK": RUN_OK,
    "RUN_WAIT": RUN_WAIT,
    "SQE_CQ_IDX_AT": SQE_CQ_IDX_AT,
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_native_copy_equals_the_abi(name: str) -> None:
    assert DEFINES.get(name) == EXPECTED[name], f"nl.h {name}"
