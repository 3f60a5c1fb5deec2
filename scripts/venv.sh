# Sourced by examples.sh and test.sh: a virtual environment for pybpfuring (PEP 668 systems, such as
# Debian 12/13, refuse `pip install` into the system Python). PYBPFURING_VENV overrides its place.
# Sets PY to its interpreter.
VENV=${PYBPFURING_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade pip >/dev/null
