#include "bpf_mini.h"

/* A program in the 2021 IORING_OP_BPF section: no kernel can load it. */
SEC("iouring")
int legacy(void *ctx)
{
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
