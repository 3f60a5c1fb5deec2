"""Chained NOPs: N requests, each issued when the previous one completed, driven by a BPF program
(emulated; in the kernel's loop_step on Linux >= 7.1) or by user space (C with liburing, Python)."""
