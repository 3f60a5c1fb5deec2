"""The ABI: facts fixed by the kernel and by the 2021 patches, used by every layer above.

`isa` (BPF instructions) and `asm` (their assembler), `uring` (io_uring uapi numbers), `structs`
(the uapi structs as ctypes types, the one SQE/CQE layout), `bpf2021` (helper IDs, the IORING_OP_BPF
opcode and limits). Nothing here imports anything of pybpfuring but `errors`.
"""
