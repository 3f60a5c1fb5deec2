"""`python -m pybpfuring.vm ...` (the same as `pybpfuring vm ...`)."""
import sys

from pybpfuring.vm.cli import vm_main

sys.exit(vm_main(sys.argv[1:]))
