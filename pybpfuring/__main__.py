"""`python -m pybpfuring ...` is the `pybpfuring` command."""
import sys

from .cli import main

sys.exit(main())
