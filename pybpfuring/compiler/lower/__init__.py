"""Lowering: typed IR -> LLVM IR (llvmlite). function.py (FunctionLowering, ModuleLowering) drives
expr, maps, lookup, bulk (copies, zeroing), guard (the address of an element or a zeroed slot) over
the LLVM types of types.py; debuginfo.py emits the debug info (BTF line info)."""
