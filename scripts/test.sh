#!/usr/bin/env bash
# Install pybpfuring with its test extra and run every test tier the machine supports.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    # Debian packages the tests use (clang/llvm/bpftool for interop and baselines, QEMU for the guest tier).
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $(grep -v '^\s*#' .ci/apt-packages.txt) >/dev/null
fi
. scripts/venv.sh
"$PY" -m pip install -q -e '.[test,bench,docs]'
if command -v qemu-system-x86_64 >/dev/null; then
    # The guest tier's kernel, tools and kernel headers (cached; checked against Debian's signed index).
    "$PY" -m pybpfuring vm fetch || echo "pybpfuring vm fetch failed: the guest tests say what is missing"
fi
"$PY" -m pytest -q -ra "$@"
