"""Resolving references to the kernel: kfunc calls and `__ksym` variables, by name, in the
running kernel's BTF (vmlinux). A kfunc call becomes `call` with src_reg BPF_PSEUDO_KFUNC_CALL
and imm = the kfunc's BTF id; a ksym load becomes ld_imm64 with src_reg BPF_PSEUDO_BTF_ID.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

from pybpfuring.errors import PyBpfUringError
from .btf import FUNC, VAR, BtfError, vmlinux_btf
from .link import PSEUDO_BTF_ID, PSEUDO_KFUNC_CALL, set_src_imm

if TYPE_CHECKING:
    from .object import BpfObject, Program


class UnresolvedExtern(PyBpfUringError):
    """A program refers to a kernel function or variable the running kernel does not have."""


def resolve(prog: "Program", insns: bytearray, obj: "BpfObject") -> bytes:
    """Patch every extern reference of `prog` in `insns`; returns the fd_array to pass (empty:
    all our kfuncs live in vmlinux, which needs no fd)."""
    if not prog.linked.extern_refs:
        return b""
    try:
        kbtf = vmlinux_btf()
    except BtfError as exc:
        raise UnresolvedExtern(f"program {prog.name!r} calls kernel functions, but {exc}") from None
    for ref in prog.linked.extern_refs:
        kind = FUNC if ref.is_call else VAR
        ids = kbtf.find(ref.name, kind)
        if not ids:
            what = "kfunc" if ref.is_call else "kernel variable (__ksym)"
            raise UnresolvedExtern(
                f"program {prog.name!r} uses the {what} {ref.name!r}, which the running kernel "
                f"({_kernel_release()}) does not have in its BTF")
        if ref.is_call:
            set_src_imm(insns, ref.insn, src_reg=PSEUDO_KFUNC_CALL, imm=ids[0])
        else:
            set_src_imm(insns, ref.insn, src_reg=PSEUDO_BTF_ID, imm=ids[0])
            set_src_imm(insns, ref.insn + 1, imm=0)
    return b""


def _kernel_release() -> str:
    return os.uname().release
