"""Boot the guest under QEMU and run one job in it, bounded by a timeout.

The machine: `qemu-system-x86_64 -accel tcg` (KVM cannot run this kernel on our machine kind: it fails
with an emulation error in the decompressor), the uncompressed `vmlinux` booted through its PVH entry,
the busybox initramfs of image.py, the host root over virtio-fs (served by sid's virtiofsd, read-only,
which needs the guest RAM in a shared memfd), and the scratch disk as NVMe. The serial console is the
guest's stdout: job output streams through it, and init's last line carries the job's exit status.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pybpfuring.vm.cache import Manifest, cache_dir
from pybpfuring.vm.image import (EXIT_MARKER, START_MARKER, VIRTIOFS_TAG, Job, build_initramfs,
                                 build_scratch_disk, read_scratch_out)
from pybpfuring.vm.kernel import sid_command
from pybpfuring.vm.steps import VmError, progress

QEMU = "qemu-system-x86_64"
VIRTIOFSD = "usr/libexec/virtiofsd"
SOCKET_TIMEOUT = 20.0


@dataclass(frozen=True)
class MachineConfig:
    memory_mib: int = 2048
    cpus: int = max(1, min(os.cpu_count() or 1, 4))
    scratch_mib: int = 2048
    accel: str = os.environ.get("PYBPFURING_VM_ACCEL", "tcg,thread=multi")


@dataclass
class GuestResult:
    exit_status: int
    console: str            # the job's output (console lines between the start and exit markers)
    out_dir: Path           # copy of the guest's /scratch/out
    run_dir: Path           # host directory with console.log, scratch.img, virtiofsd.log
    boot_seconds: float     # from starting QEMU to the job starting
    total_seconds: float


def qemu_binary() -> str | None:
    """Path of qemu-system-x86_64, or None if this machine has none."""
    return shutil.which(QEMU)


def start_virtiofsd(manifest: Manifest, run_dir: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """sid's virtiofsd sharing the host root read-only on a socket in `run_dir`."""
    root = cache_dir()
    sock = run_dir / "vfs.sock"
    argv = [*sid_command(root / manifest.sid_root, VIRTIOFSD), "--shared-dir", "/", "--readonly",
            # no namespaces or seccomp: containers (CI) often forbid unshare(); the share is read-only
            "--sandbox", "none", "--seccomp", "none",
            # plain directories for host mount points, so the guest can mount proc etc. over them
            "--no-announce-submounts", "--socket-path", str(sock),
            # The host root does not change under a guest run; caching it in the guest page cache
            # makes Python imports about 1.5x faster than "auto" under TCG.
            "--cache", os.environ.get("PYBPFURING_VM_FS_CACHE", "always")]
    log = open(run_dir / "virtiofsd.log", "wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + SOCKET_TIMEOUT
    while not sock.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            text = (run_dir / "virtiofsd.log").read_text(errors="replace").strip().splitlines()
            raise VmError("start virtiofsd", "virtiofsd did not open its socket: "
                          + (text[-1] if text else f"exit status {proc.returncode}"))
        time.sleep(0.05)
    return proc, sock


def qemu_argv(manifest: Manifest, initramfs: Path, scratch: Path, sock: Path, cfg: MachineConfig,
              mode: str) -> list[str]:
    root = cache_dir()
    serial = ["-serial", "mon:stdio"] if mode == "shell" else ["-serial", "stdio"]
    return [QEMU, "-accel", cfg.accel, "-cpu", "max", "-smp", str(cfg.cpus), "-m", f"{cfg.memory_mib}M",
            "-nodefaults", "-no-user-config", "-display", "none", *serial, "-no-reboot",
            "-kernel", str(root / manifest.vmlinux), "-initrd", str(initramfs),
            "-append", f"console=ttyS0 quiet panic=-1 pbu.mode={mode}",
            "-object", f"memory-backend-memfd,id=mem,size={cfg.memory_mib}M,share=on",
            "-numa", "node,memdev=mem",
            "-chardev", f"socket,id=vfs,path={sock}",
            "-device", f"vhost-user-fs-pci,chardev=vfs,tag={VIRTIOFS_TAG}",
            "-drive", f"file={scratch},if=none,id=scratch,format=raw,cache=unsafe",
            "-device", "nvme,drive=scratch,serial=pbu-scratch"]


def _stream_console(proc: subprocess.Popen[bytes], log_path: Path, lines: list[str],
                    on_line: Callable[[str], None] | None, started: threading.Event) -> None:
    """Copy the console to console.log; pass job lines (after the start marker) to `on_line`."""
    assert proc.stdout is not None
    with log_path.open("w") as log:
        for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip("\r\n")
            log.write(line + "\n")
            log.flush()
            if START_MARKER in line:
                started.set()
                continue
            lines.append(line)
            if started.is_set() and on_line is not None and not _is_epilogue(line):
                on_line(line)


def _is_epilogue(line: str) -> bool:
    """init's exit marker and the kernel's power-off message: not the job's output."""
    return line.startswith(EXIT_MARKER) or line.endswith("reboot: Power down")


BOOT_ATTEMPTS = 3


class GuestDidNotBoot(VmError):
    """QEMU ended before the guest started the job (so booting again is safe)."""


def run_job(manifest: Manifest, job: Job, timeout: float, cfg: MachineConfig | None = None,
            on_line: Callable[[str], None] | None = None, mode: str = "run") -> GuestResult:
    """Boot, run `job`, power off; the job's exit status, output and /scratch/out come back."""
    cfg = cfg or MachineConfig()
    if qemu_binary() is None:
        raise VmError("boot guest", f"{QEMU} is not installed", "apt-get install qemu-system-x86")
    root = cache_dir()
    run_dir = Path(tempfile.mkdtemp(prefix="pybpfuring-vm-"))
    initramfs = build_initramfs(root, sorted((root / manifest.modules_dir).glob("*.ko")))
    scratch = run_dir / "scratch.img"
    build_scratch_disk(scratch, job, cfg.scratch_mib, run_dir / "scratch-staging")
    start = time.monotonic()
    for attempt in range(1, BOOT_ATTEMPTS + 1):
        vfsd, sock = start_virtiofsd(manifest, run_dir)
        try:
            progress(f"booting Linux {manifest.kernel_release} under QEMU ({cfg.accel}, {cfg.cpus} CPUs, "
                     f"{cfg.memory_mib} MiB); run dir {run_dir}")
            argv = qemu_argv(manifest, initramfs, scratch, sock, cfg, mode)
            if mode == "shell":
                _interactive(argv, timeout)
                lines, boot = [], 0.0
            else:
                lines, boot = _boot_and_wait(argv, run_dir, timeout, on_line)
            break
        except GuestDidNotBoot as e:
            # Under TCG on a loaded host the guest kernel now and then panics in early boot ("Fatal
            # exception in interrupt"), before the job starts: nothing has run, so boot again.
            if attempt == BOOT_ATTEMPTS:
                raise
            progress(f"the guest did not boot ({e.message}); booting again ({attempt + 1}/{BOOT_ATTEMPTS})")
        finally:
            vfsd.kill()
            vfsd.wait()
    total = time.monotonic() - start
    out_dir = read_scratch_out(scratch, run_dir / "results")
    status = _exit_status(lines, run_dir, out_dir / "exit-status")
    if os.environ.get("PYBPFURING_VM_KEEP") != "1":
        scratch.unlink()  # benchmark inputs can make it large; logs stay in run_dir
    job_lines = [ln for ln in lines if not _is_epilogue(ln)]
    return GuestResult(status, "\n".join(job_lines), out_dir, run_dir, boot, total)


def _boot_and_wait(argv: list[str], run_dir: Path, timeout: float,
                   on_line: Callable[[str], None] | None) -> tuple[list[str], float]:
    stderr = open(run_dir / "qemu.stderr", "wb")
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr)
    lines: list[str] = []
    started = threading.Event()
    reader = threading.Thread(target=_stream_console,
                              args=(proc, run_dir / "console.log", lines, on_line, started), daemon=True)
    reader.start()
    boot = -1.0
    try:
        while not started.is_set() and proc.poll() is None and time.monotonic() - start < timeout:
            started.wait(0.2)
        if started.is_set():
            boot = time.monotonic() - start
            progress(f"guest up after {boot:.1f} s; running the job")
        proc.wait(max(1.0, timeout - (time.monotonic() - start)))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise VmError("run in guest", f"the guest did not finish within {timeout:.0f} s "
                      f"(console: {run_dir / 'console.log'})") from None
    reader.join(10)
    if boot < 0 or proc.returncode != 0:
        err = (run_dir / "qemu.stderr").read_text(errors="replace").strip().splitlines()
        tail = [ln for ln in lines if ln.strip()][-3:]
        error = GuestDidNotBoot if boot < 0 else VmError
        raise error("boot guest", f"QEMU exited with status {proc.returncode} before the job "
                    f"{'started' if boot < 0 else 'finished'}: "
                    + " | ".join((err[-2:] if err else []) + tail),
                    f"full console log: {run_dir / 'console.log'}")
    return lines, boot


def _exit_status(lines: list[str], run_dir: Path, status_file: Path) -> int:
    """The job's exit status from init's console marker, else from the file init wrote."""
    for line in reversed(lines):
        if line.startswith(EXIT_MARKER):
            return int(line.removeprefix(EXIT_MARKER).strip(" @"))
    if status_file.is_file() and status_file.read_text().strip().isdigit():
        return int(status_file.read_text().strip())
    raise VmError("run in guest", "the guest powered off without reporting the job's exit status",
                  f"see {run_dir / 'console.log'}")


def _interactive(argv: list[str], timeout: float) -> None:
    """`vm shell`: QEMU owns the terminal (Ctrl-A X quits); init powers off when the shell exits."""
    progress("interactive guest shell; exit the shell (or press Ctrl-A X) to power off")
    try:
        subprocess.run(argv, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise VmError("guest shell", f"the session exceeded {timeout:.0f} s") from None
