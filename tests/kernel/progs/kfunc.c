#include "bpf_mini.h"

/* Calls kernel functions (kfuncs) by name: the loader resolves them in the kernel's BTF. */
#define __ksym __attribute__((section(".ksyms")))

struct task_struct;
extern struct task_struct *bpf_task_from_pid(__s32 pid) __ksym;
extern void bpf_task_release(struct task_struct *p) __ksym;

struct args {
    __s32 pid;
    __s32 found;
};

SEC("syscall")
int find_task(struct args *ctx)
{
    struct task_struct *task = bpf_task_from_pid(ctx->pid);

    if (!task) {
        ctx->found = 0;
        return 0;
    }
    ctx->found = 1;
    bpf_task_release(task);
    return 1;
}

char LICENSE[] SEC("license") = "GPL";
