"""Helper functions programs call. They exist only inside compiled programs: each name here is
recognised by the compiler, which lowers it through the target's ABI table
(`pybpfuring/compiler/targets/__init__.py`). Calling one from plain Python is an error that says so.
"""
from __future__ import annotations

from typing import Any, NoReturn


class Intrinsic:
    """A name the compiler lowers itself (a BPF helper or a language built-in)."""

    def __init__(self, name: str, doc: str):
        self.name = name
        self.__doc__ = doc
        self.__name__ = name

    def __call__(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise RuntimeError(f"{self.name}() can only be called inside an @iouring_program or "
                           "@bpf_function that is compiled; it has no meaning in plain Python")

    def __repr__(self) -> str:
        return f"<pybpfuring intrinsic {self.name}>"


submit = Intrinsic("submit", "submit(ctx, sqe) -> int: queue the SQE on the ring (0 on success).")
emit_cqe = Intrinsic("emit_cqe", "emit_cqe(ctx, cq_idx, user_data, res, cflags) -> int: post a CQE "
                     "to CQ cq_idx; -ENOMEM (dropped) if it is full.")
reap_cqe = Intrinsic("reap_cqe", "reap_cqe(ctx, cq_idx, cqe) -> int: move the oldest CQE of CQ cq_idx "
                     "into cqe; -ENOENT if the CQ is empty.")
copy_from_user = Intrinsic("copy_from_user", "copy_from_user(dst, uptr) -> int: read sizeof(dst) bytes "
                           "of user memory at uptr into the struct or array dst.")
copy_to_user = Intrinsic("copy_to_user", "copy_to_user(uptr, src) -> int: write the struct or array "
                         "src to user memory at uptr.")
ktime_get_ns = Intrinsic("ktime_get_ns", "ktime_get_ns() -> u64: monotonic time in ns.")
get_prandom_u32 = Intrinsic("get_prandom_u32", "get_prandom_u32() -> u32: a pseudo-random number.")
printk = Intrinsic("printk", "printk(fmt, *args) -> int: bpf_trace_printk with up to 3 integer args.")


# Per-request programs (docs/language.md, "Generator programs and per-request state").
wait_cqe = Intrinsic("wait_cqe", "cqe = yield wait_cqe(ctx, cq_idx): in a generator program, "
                     "suspend the request until CQ cq_idx holds a CQE, then resume with it reaped.")
wait = Intrinsic("wait", "yield wait(ctx, cq_idx, nr): in a generator program, suspend the request "
                 "until CQ cq_idx holds nr unreaped CQEs (the program reaps them).")
complete = Intrinsic("complete", "return complete(ctx, res): complete the request with result res "
                     "(sets ctx.res; evaluates to OK).")
request_state = Intrinsic("request_state", "st = request_state(ctx, T): a zeroed T that belongs to "
                          "this request and lives until it completes (kept across WAITs).")

ALL_INTRINSICS: dict[str, Intrinsic] = {i.name: i for i in (
    submit, emit_cqe, reap_cqe, copy_from_user, copy_to_user, ktime_get_ns, get_prandom_u32, printk,
    wait_cqe, wait, complete, request_state,
)}
