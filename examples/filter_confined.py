"""A program to run under examples/filter_policy.py: it tries an allowed and a denied request.

    python3 examples/filter_confined.py                     # on its own: both succeed
    pybpfuring sandbox --policy examples/filter_policy.py --deny-rest -- python3 examples/filter_confined.py

Under the policy, the read-only OPENAT succeeds and the OPENAT with O_CREAT completes with -EACCES
(the kernel's filter denied it; nothing was created). Also applies the policy to one ring only,
with Ring.register_filter, where the kernel has io_uring filters (Linux >= 7.0).
"""
from __future__ import annotations

import ctypes
import errno
import os
import shutil
import sys
import tempfile

from pybpfuring.runtime import Ring
from pybpfuring.abi import uring as C


def openat(ring: Ring, path: bytes, flags: int, user_data: int) -> int:
    name = ctypes.create_string_buffer(path)
    sqe = ring.get_sqe()
    assert sqe is not None
    sqe.opcode, sqe.fd, sqe.addr, sqe.len = C.IORING_OP_OPENAT, -100, ctypes.addressof(name), 0o600
    sqe.rw_flags, sqe.user_data = flags, user_data          # open_flags share rw_flags
    ring.submit_and_wait(1)
    res = ring.wait_cqe().res
    if res >= 0:
        os.close(res)
    return res


def main() -> int:
    work = tempfile.mkdtemp(prefix="pybpfuring-confined-")
    try:
        with Ring(8, backend="emulated") as ring:
            if "--ring" in sys.argv[1:]:        # one ring only: the policy's filters on it
                sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
                import filter_policy
                from pybpfuring.filters.kernel import FiltersUnsupported
                try:
                    for f in filter_policy.POLICY:
                        ring.register_filter(f)
                except FiltersUnsupported as err:
                    print(f"--ring: {err}; running unfiltered")
            ro = openat(ring, b"/etc/hostname", os.O_RDONLY, 1)
            created = openat(ring, os.path.join(work, "new").encode(), os.O_WRONLY | os.O_CREAT, 2)
        print(f"read-only open: {'ok' if ro >= 0 else os.strerror(-ro)}; "
              f"open with O_CREAT: {'ok' if created >= 0 else errno.errorcode.get(-created, created)}"
              f"; file created: {os.path.exists(os.path.join(work, 'new'))}")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
