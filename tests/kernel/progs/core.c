#include "bpf_mini.h"

/* CO-RE: the program is compiled against a one-member task_struct; the field's real offset is
 * recorded as a relocation in .BTF.ext and resolved against the running kernel's BTF at load. */
#define __ksym __attribute__((section(".ksyms")))

struct task_struct {
    int pid;
    int tgid;
} __attribute__((preserve_access_index));

extern struct task_struct *bpf_task_from_pid(__s32 pid) __ksym;
extern void bpf_task_release(struct task_struct *p) __ksym;

struct args {
    __s32 pid;
    __s32 seen_pid;
    __s32 seen_tgid;
};

SEC("syscall")
int read_pid(struct args *ctx)
{
    struct task_struct *task = bpf_task_from_pid(ctx->pid);

    if (!task)
        return -1;
    ctx->seen_pid = task->pid;
    ctx->seen_tgid = task->tgid;
    bpf_task_release(task);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
