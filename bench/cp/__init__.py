"""The talk's benchmark: copy a page-cached file to /dev/zero, 4 KiB at a time, at queue depth 1.

rows.py lists the rows, worker.py runs a Python row in a fresh process, run.py measures a table
(host or guest), the C baselines are rw.c and uring.c beside this file.
"""
