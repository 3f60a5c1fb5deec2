"""Compiling and attaching the trace's bcc program, with the struct_ops unload probe where it can run.

The unload probe (program.UNLOAD_TEXT) needs two things from the running kernel besides kprobes:
the address of `__per_cpu_offset` (its per-CPU run counters are summed by hand: a kprobe's pointers
carry no BTF type, so bpf_per_cpu_ptr cannot be used) and the number of possible CPUs. Where either
is missing (kallsyms addresses hidden by kptr_restrict, no such symbol) or the kprobes do not attach,
the trace still runs: struct_ops run counts then come only from the fds StructOpsWatch takes on live
programs, and `unload_probe` says why the short-lived ones may be missed.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from pybpfuring.loader.btf import STRUCT, vmlinux_btf

from .proginfo import ProgRuns, ops_type_id
from .program import LAYOUT, LOAD_FN, UNLOAD_FN, bpf_text, unload_text

KALLSYMS = Path("/proc/kallsyms")
POSSIBLE = Path("/sys/devices/system/cpu/possible")


def kallsyms_address(name: str) -> int | None:
    """The address of a kernel symbol, or None if absent or hidden (shown as 0 to the unprivileged)."""
    try:
        with KALLSYMS.open() as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[2] == name:
                    addr = int(parts[0], 16)
                    return addr or None
    except OSError:
        return None
    return None


def possible_cpus() -> int:
    """nr_cpu_ids: one past the highest possible CPU ("0-3", "0,2-5")."""
    try:
        text = POSSIBLE.read_text().strip()
    except OSError:
        return os.cpu_count() or 1
    return max(int(part.split("-")[-1]) for part in text.split(",")) + 1


def struct_offsets() -> dict[str, int]:
    """Byte offsets of the fields the unload probe reads, from the running kernel's BTF."""
    btf = vmlinux_btf()
    out = {}
    for (struct, member), placeholder in LAYOUT.items():
        m = btf.member(btf.find_one(struct, STRUCT), member)
        if m.bitfield_size or m.bit_offset % 8:
            raise ValueError(f"{struct}.{member} is a bitfield")
        out[placeholder] = m.byte_offset
    return out


def _unload_source() -> tuple[str, str | None]:
    """The unload probe's C, or "" and why it cannot be built for this kernel."""
    pcpu = kallsyms_address("__per_cpu_offset")
    if pcpu is None:
        return "", "no address of __per_cpu_offset in /proc/kallsyms (kptr_restrict?)"
    if not all(kallsyms_address(fn) for fn in (LOAD_FN, UNLOAD_FN)):
        return "", f"this kernel has no {LOAD_FN}/{UNLOAD_FN} to probe"
    try:
        offsets = struct_offsets()
    except (OSError, ValueError, ImportError) as err:   # BtfError is a ValueError
        return "", f"no layout of struct bpf_prog from the kernel's BTF: {err}"
    return unload_text(ops_type_id(), pcpu, possible_cpus(), offsets), None


def load_program(bcc: Any, pid: int | None, ring_fd: int | None) -> tuple[Any, str | None]:
    """The compiled, attached bcc program (tracepoints), and None if the unload probe is attached
    too, else why not. bcc's own exceptions (the tracepoint program failing to compile) propagate."""
    text = bpf_text(pid, ring_fd)
    extra, why = _unload_source()
    b = None
    if why is None:
        try:
            b = bcc.BPF(text=text + extra, cflags=["-w"])
        except Exception as err:   # bcc raises bare Exception when its clang fails
            why = f"the unload probe does not compile here: {str(err)[:200]}"
    if b is None:
        b = bcc.BPF(text=text, cflags=["-w"])
    if why is None:
        try:
            b.attach_kprobe(event=LOAD_FN, fn_name="trace_prog_load")
            b.attach_kprobe(event=UNLOAD_FN, fn_name="trace_prog_unload")
        except Exception as err:   # bcc raises bare Exception when a kprobe does not attach
            why = f"the kprobes on {LOAD_FN}/{UNLOAD_FN} did not attach: {err}"
    return b, why


def unloaded_runs(b: Any) -> dict[int, ProgRuns]:
    """Final run counts of the traced struct_ops programs unloaded so far (empty without the probe)."""
    try:
        table = b["unloaded"]
    except KeyError:
        return {}
    out = {}
    for k, v in table.items():
        name = bytes(v.name).split(b"\0", 1)[0].decode(errors="replace")
        out[k.value] = ProgRuns(k.value, name, v.runs, v.run_time_ns, unloaded=True)
    return out


SETTLE_SECONDS = 5.0


def settle(b: Any, held: set[int], timeout: float = SETTLE_SECONDS) -> None:
    """Wait until every traced struct_ops program is either held (an fd of StructOpsWatch: `held`)
    or counted as unloaded. A closed ring's program is freed by the kernel a little later (the
    struct_ops map is freed from a work queue, after an RCU grace period): the final reading waits
    for it rather than missing it. Without the unload probe there is nothing to wait for."""
    try:
        loaded = b["loaded"]
    except KeyError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not {v.value for v in loaded.values()} - held:
            return
        time.sleep(0.01)
