#!/usr/bin/env bash
# Install pybpfuring, compile every example, and run the examples on the default backend.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && ! python3 -m venv --help >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && ! command -v gcc >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libc6-dev python3-dev >/dev/null
fi
. scripts/venv.sh
"$PY" -m pip install -q -e .
out=$(mktemp -d); src=""; dst=""
trap 'rm -rf "$out" ${src:+"$src"} ${dst:+"$dst"}' EXIT   # private temp files, removed even on failure
for f in examples/*.py; do
    case "$f" in
        examples/run_*|examples/filter_*|examples/trace_*) continue ;;  # drivers, filter policies (cBPF, below)
        examples/bpf_*) target=bpf_ops ;;                 # raw loop_step programs (Linux >= 7.1)
        *) target=op_bpf ;;                               # @iouring_program (the talk's model)
    esac
    "$PY" -m pybpfuring compile "$f" --target "$target" -o "$out/$(basename "$f" .py).bpf.o"
done
"$PY" -m pybpfuring info
"$PY" -m pybpfuring run examples/run_reference.py
src=$(mktemp -p /var/tmp); dst=$(mktemp -p /var/tmp)
head -c 1048576 /dev/urandom > "$src"
"$PY" -m pybpfuring run examples/cp.py "$src" "$dst"
cmp "$src" "$dst" && echo "examples/cp.py: copy verified ($(stat -c %s "$dst") bytes)"
"$PY" examples/chase.py --chains 16 --hops 50     # generator programs: dependent reads
"$PY" examples/fanout.py --files 8                # generator programs: broadcast / collect
"$PY" examples/lookup.py --keys 20000 --lookups 512      # use cases (docs/usecases.md): B+tree lookups
"$PY" examples/fanout_collect.py --files 16 --rounds 10  # broadcast / gather with error checks
"$PY" examples/tcp_echo.py --clients 50 --requests 10    # request/response chains over loopback
"$PY" examples/tcp_proxy.py --clients 20 --requests 10   # asyncio accepts, BPF relays
"$PY" examples/splice_records.py --records 500           # data-driven splicing of selected records
"$PY" examples/ring_stats.py "$src" "$dst"               # Ring.stats(): what the ring did
"$PY" examples/trace_copy.py "$src" "$dst" || [ $? = 3 ] # the kernel's side (bcc; 3: says what is missing)
"$PY" examples/bounded_loops.py                          # loop bounds from value ranges
"$PY" -m pybpfuring disasm examples/filter_policy.py  # io_uring filters compiled to classic BPF
"$PY" examples/filter_confined.py --ring          # the policy on one ring (Linux >= 7.0; says why not)
if "$PY" -c 'import sys; from pybpfuring.runtime.probe import check_bpf_ops; sys.exit(not check_bpf_ops().available)'; then
    "$PY" -m pybpfuring run examples/bpf_nops.py
    "$PY" examples/bpf_cp.py "$src" "$dst" && cmp "$src" "$dst" && echo "examples/bpf_cp.py: copy verified"
else
    echo "examples/bpf_*.py: compiled only; running them needs Linux >= 7.1 (see 'pybpfuring info', docs/kernel.md)"
fi
