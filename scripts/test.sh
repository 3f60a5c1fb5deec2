#!/usr/bin/env bash
# Install pybpfuring with its test extra and run every test tier the machine supports.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -e '.[test,bench]'
python3 -m pytest -q -ra "$@"
