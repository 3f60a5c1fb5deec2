#!/usr/bin/env bash
# Install pybpfuring, compile every example, and run the examples on the default backend.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -e .
out=$(mktemp -d); src=""; dst=""
trap 'rm -rf "$out" ${src:+"$src"} ${dst:+"$dst"}' EXIT   # private temp files, removed even on failure
for f in examples/*.py; do
    case "$f" in
        examples/run_*|examples/filter_*) continue ;;     # drivers and filter policies (cBPF, below)
        examples/bpf_*) target=bpf_ops ;;                 # raw loop_step programs (Linux >= 7.1)
        *) target=op_bpf ;;                               # @iouring_program (the talk's model)
    esac
    python3 -m pybpfuring compile "$f" --target "$target" -o "$out/$(basename "$f" .py).bpf.o"
done
python3 -m pybpfuring info
python3 -m pybpfuring run examples/run_reference.py
src=$(mktemp -p /var/tmp); dst=$(mktemp -p /var/tmp)
head -c 1048576 /dev/urandom > "$src"
python3 -m pybpfuring run examples/cp.py "$src" "$dst"
cmp "$src" "$dst" && echo "examples/cp.py: copy verified ($(stat -c %s "$dst") bytes)"
python3 examples/chase.py --chains 16 --hops 50     # generator programs: dependent reads
python3 examples/fanout.py --files 8                # generator programs: broadcast / collect
python3 -m pybpfuring disasm examples/filter_policy.py  # io_uring filters compiled to classic BPF
python3 examples/filter_confined.py --ring          # the policy on one ring (Linux >= 7.0; says why not)
if python3 -c 'import sys; from pybpfuring.runtime.probe import check_bpf_ops; sys.exit(not check_bpf_ops().available)'; then
    python3 -m pybpfuring run examples/bpf_nops.py
    python3 examples/bpf_cp.py "$src" "$dst" && cmp "$src" "$dst" && echo "examples/bpf_cp.py: copy verified"
else
    echo "examples/bpf_*.py: compiled only; running them needs Linux >= 7.1 (see 'pybpfuring info', docs/kernel.md)"
fi
