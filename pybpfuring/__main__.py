"""`python -m pybpfuring ...` is the `pybpfuring` command."""
import sys

from .compiler.cli import main

sys.exit(main())
