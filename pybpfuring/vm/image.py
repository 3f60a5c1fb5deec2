"""The guest's boot image (a busybox initramfs) and its ext4 scratch disk.

The guest has no root file system of its own: the initramfs mounts the host's root, shared read-only
over virtio-fs, under a tmpfs overlay (so the guest can write anywhere, and nothing reaches the host),
then mounts proc, sys, dev, bpffs, tracefs and the ext4 scratch disk and runs the job in a chroot.
The scratch disk is a fresh sparse ext4 image per run, attached as NVMe: a real, page-cached block
file system for benchmark inputs (never tmpfs, never virtio-fs). It carries the job script in and the
results (`/scratch/out`) back out; the host reads them with debugfs, without mounting anything.
"""
from __future__ import annotations

import gzip
import hashlib
import shlex
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from elftools.elf.elffile import ELFFile

from pybpfuring.cache import ensure_private_tree, store_verified, verified_path
from pybpfuring.vm.steps import VmError, run_step, timed_step

VIRTIOFS_TAG = "hostroot"
SCRATCH_MOUNT = "/scratch"
EXIT_MARKER = "@@PYBPFURING-EXIT"
START_MARKER = "@@PYBPFURING-START@@"
BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
BUILD_TIMEOUT = 120.0

# Runs as PID 1 from the initramfs. Any failure before the job starts prints one line naming the
# mount that failed and reports exit status 125, so the host never waits for a guest that hangs.
INIT_SCRIPT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
fail() {
    echo "pybpfuring-guest: error: $*"
    echo "@@PYBPFURING-EXIT 125@@"
    poweroff -f
}
mode=run
for arg in $(cat /proc/cmdline); do
    case "$arg" in pbu.mode=*) mode="${arg#pbu.mode=}";; esac
done
for mod in /modules/*.ko; do insmod "$mod" || fail "cannot load module $mod"; done
mount -t virtiofs -o ro @TAG@ /lower || fail "cannot mount the host root (virtio-fs tag @TAG@)"
mount -t tmpfs -o mode=0755,size=60% upper /upper || fail "cannot mount tmpfs for the overlay"
mkdir -p /upper/data /upper/work
mount -t overlay -o lowerdir=/lower,upperdir=/upper/data,workdir=/upper/work overlay /newroot \
    || fail "cannot mount the overlay root"
R=/newroot
# /tmp stays the overlay's (tmpfs-backed, writable) view of the host's /tmp: a cache there
# ($PYBPFURING_CACHE=/tmp/...) must stay visible to the job.
mkdir -p $R/proc $R/sys $R/dev $R/run $R/tmp $R/scratch
mount -t proc proc $R/proc
mount -t sysfs sysfs $R/sys
mount -t devtmpfs devtmpfs $R/dev
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts devpts $R/dev/pts
mount -t tmpfs -o mode=1777 shm $R/dev/shm
mount -t tmpfs -o mode=0755 run $R/run
mount -t bpf bpf $R/sys/fs/bpf || fail "cannot mount bpffs"
mount -t tracefs tracefs $R/sys/kernel/tracing 2>/dev/null
mount -t debugfs debugfs $R/sys/kernel/debug 2>/dev/null
mount -t cgroup2 cgroup2 $R/sys/fs/cgroup 2>/dev/null
mount -t ext4 /dev/nvme0n1 $R@SCRATCH@ || fail "cannot mount the ext4 scratch disk /dev/nvme0n1"
ip link set lo up 2>/dev/null
hostname pybpfuring-guest
echo "@START@"
if [ "$mode" = shell ]; then
    setsid cttyhack chroot $R /bin/sh @SCRATCH@/job/run.sh
    rc=$?
else
    chroot $R /bin/sh @SCRATCH@/job/run.sh </dev/null
    rc=$?
fi
echo "$rc" > $R@SCRATCH@/out/exit-status
sync
umount $R@SCRATCH@ || sync
echo "@EXIT@ $rc@@"
poweroff -f
"""


def init_script() -> str:
    return (INIT_SCRIPT.replace("@TAG@", VIRTIOFS_TAG).replace("@SCRATCH@", SCRATCH_MOUNT)
            .replace("@START@", START_MARKER).replace("@EXIT@", EXIT_MARKER))


def find_static_busybox() -> Path:
    """A statically linked busybox (it runs before any root file system exists)."""
    for cand in BUSYBOX_CANDIDATES:
        path = Path(cand)
        if path.is_file():
            with path.open("rb") as f:
                if not any(seg["p_type"] == "PT_INTERP" for seg in ELFFile(f).iter_segments()):
                    return path
    raise VmError("build initramfs", "no statically linked busybox found",
                  "apt-get install busybox-static")


def build_initramfs(cache: Path, modules: list[Path]) -> Path:
    """The initramfs (gzip'd newc cpio), cached under the hash of everything in it.

    Stored content-addressed in a checked private folder and re-hashed before each boot
    (pybpfuring.cache), as the guest kernel runs its init as PID 1 with the host root attached."""
    busybox = find_static_busybox()
    digest = hashlib.sha256(init_script().encode())
    for part in (busybox, *modules):
        digest.update(part.read_bytes())
    directory = ensure_private_tree(cache, "initramfs")
    name = f"init-{digest.hexdigest()[:16]}.cpio.gz"
    built = verified_path(directory, name)
    if built is not None:
        return built
    with timed_step(f"build initramfs {name}"):
        # a private staging directory: two sessions may build the same image at once
        image = _write_initramfs(busybox, modules, Path(tempfile.mkdtemp(dir=directory)))
    return store_verified(directory, name, image, mode=0o600, suffix=".gz")


def _write_initramfs(busybox: Path, modules: list[Path], staging: Path) -> bytes:
    try:
        for sub in ("bin", "proc", "sys", "dev", "lower", "upper", "newroot", "modules"):
            (staging / sub).mkdir(parents=True)
        shutil.copy(busybox, staging / "bin" / "busybox")
        for mod in modules:
            shutil.copy(mod, staging / "modules" / mod.name)
        (staging / "init").write_text(init_script())
        (staging / "init").chmod(0o755)
        names = sorted(str(p.relative_to(staging)) for p in staging.rglob("*"))
        proc = run_step("build initramfs", ["cpio", "-o", "-H", "newc", "-R", "0:0", "--quiet"],
                        BUILD_TIMEOUT, cwd=staging, input_bytes=("\n".join([".", *names]) + "\n").encode())
        return gzip.compress(proc.stdout, compresslevel=6)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@dataclass(frozen=True)
class Job:
    """What the guest runs: argv in `cwd`, with `env` added to a clean environment."""

    argv: list[str]
    cwd: str
    env: dict[str, str]

    def script(self) -> str:
        exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(self.env.items()))
        return ("#!/bin/sh\n# written by pybpfuring.vm.image: the job this guest boot runs\n"
                + exports + f"cd {shlex.quote(self.cwd)} || exit 126\n"
                + f"exec {shlex.join(self.argv)} 2>&1\n")


def build_scratch_disk(path: Path, job: Job, size_mib: int, staging: Path) -> None:
    """A fresh sparse ext4 image holding job/run.sh and an empty out/ for the results."""
    (staging / "job").mkdir(parents=True, exist_ok=True)
    (staging / "out").mkdir(exist_ok=True)
    (staging / "out").chmod(0o1777)
    (staging / "job" / "run.sh").write_text(job.script())
    run_step("build scratch disk", ["mke2fs", "-q", "-F", "-t", "ext4", "-L", "pbu-scratch",
                                    "-E", "lazy_itable_init=1,lazy_journal_init=1",
                                    "-d", staging, path, f"{size_mib}M"], BUILD_TIMEOUT)
    shutil.rmtree(staging)


def read_scratch_out(image: Path, dest: Path) -> Path:
    """Copy the guest's /scratch/out to `dest` (debugfs reads ext4 images without mounting them)."""
    dest.mkdir(parents=True, exist_ok=True)
    run_step("read guest results", ["debugfs", "-R", f"rdump /out {dest}", image], BUILD_TIMEOUT)
    return dest / "out"
