#!/usr/bin/env bash
# Install pybpfuring, compile every example, and run the examples on the default backend.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -e .
out=$(mktemp -d)
for f in examples/*.py; do
    case "$f" in examples/run_*|examples/bpf_*) continue ;; esac  # drivers and 7.1-only programs
    python3 -m pybpfuring compile "$f" -o "$out/$(basename "$f" .py).bpf.o"
done
python3 -m pybpfuring info
python3 -m pybpfuring run examples/run_reference.py
src=$(mktemp); dst=$(mktemp)
head -c 1048576 /dev/urandom > "$src"
python3 -m pybpfuring run examples/cp.py "$src" "$dst"
cmp "$src" "$dst" && echo "examples/cp.py: copy verified ($(stat -c %s "$dst") bytes)"
rm -rf "$out" "$src" "$dst"
