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
python3 -m pip install -q -e '.[test,bench]'
python3 -m pytest -q -ra "$@"
