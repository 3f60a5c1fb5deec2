"""The compiler: Python functions to BPF ELF (docs/compiler.md, docs/architecture.md)."""
import sys

from ..abi import asm, isa

# The instruction set and assembler live in pybpfuring.abi; these are their import paths of
# pybpfuring 0.1 (docs/engine.md showed them), kept working with the same module objects.
sys.modules[f"{__name__}.isa"] = isa
sys.modules[f"{__name__}.asm"] = asm
