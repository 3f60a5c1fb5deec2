"""`pybpfuring vm fetch|test|run -- CMD|shell|info`: the Linux 7.x QEMU guest from the command line."""
from __future__ import annotations

import argparse
import importlib.util
import shlex
import sys
from pathlib import Path

from pybpfuring.errors import PyBpfUringError
from pybpfuring.vm.cache import cache_dir, load_manifest, tree_size
from pybpfuring.vm.headers import cached_headers, fetch_headers
from pybpfuring.vm.kernel import fetch
from pybpfuring.vm.qemu import MachineConfig, qemu_binary
from pybpfuring.vm.runner import DEFAULT_TIMEOUT, guest_shell, run_in_guest

GUEST_OUT = "/scratch/out"       # comes back to the host (run_in_guest's out_dir)
# Tests that attach tracepoints (bcc): enabling one patches kernel text (int3, then the new bytes),
# and under TCG another vCPU running that text at the moment took the int3 as a kernel oops
# (trace_syscall_enter, seen once in a two-worker run). They run after the others, on their own.
ALONE = ("tests/guest/test_trace_guest.py",)


def repo_root() -> Path:
    """The working tree this package was imported from (where tests/guest lives)."""
    return Path(__file__).resolve().parents[2]


# What the guest keeps of its time limit for booting, writing the JUnit report and powering off.
REPORT_MARGIN = 120.0


def guest_pytest_argv(extra: list[str], timeout: float | None = None, out: str = GUEST_OUT) -> list[str]:
    """The command the guest tier runs inside the guest. With pytest-xdist installed and more than
    one guest CPU: one worker per CPU (TCG runs each vCPU on its own host thread; one worker left the
    second idle), tests that compare results across tests sharing a worker (xdist_group, set in
    tests/guest/conftest.py), then the ALONE modules in one process; each writes its JUnit report."""
    pytest = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rA"]
    workers = MachineConfig().cpus
    if workers > 1 and importlib.util.find_spec("xdist") is not None:
        shared = [*pytest, "tests/guest", *(f"--ignore={m}" for m in ALONE), "-n", str(workers),
                  "--dist", "loadgroup", f"--junitxml={out}/junit.xml", *extra]
        alone = [*pytest, *ALONE, f"--junitxml={out}/junit-alone.xml", *extra]
        # pytest's 5 is "nothing selected" (a -k that matches one phase only); 2 is interrupted
        # (the time limit below): the second phase does not start. The shell traps SIGINT so that
        # it outlives pytest's handling of it and reports pytest's status.
        script = (f"trap 'true' INT; {shlex.join(shared)}; a=$?; [ $a -eq 2 ] && exit 2; "
                  f"{shlex.join(alone)}; b=$?; "
                  "for s in $a $b; do [ $s -ne 0 ] && [ $s -ne 5 ] && exit $s; done; "
                  "[ $a -eq 5 ] && [ $b -eq 5 ] && exit 5; exit 0")
        argv = ["sh", "-c", script]
    else:
        argv = [*pytest, "tests/guest", f"--junitxml={out}/junit.xml", *extra]
    if timeout is None or timeout <= 2 * REPORT_MARGIN:
        return argv
    # Interrupted (SIGINT) before the guest's own limit, pytest still writes the report of what ran,
    # so a slow run names the tests it did not reach instead of losing every result.
    return ["timeout", "--preserve-status", "-s", "INT", "-k", "60", str(int(timeout - REPORT_MARGIN)), *argv]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pybpfuring vm", description="Run pybpfuring in a QEMU guest "
                                "booting Debian sid's Linux 7.x cloud kernel (io_uring BPF ops).")
    sub = p.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fetch", help="obtain the kernel, its headers (for bcc) and sid tools through apt "
                       "(cached)")
    f.add_argument("--refresh", action="store_true", help="ask apt again even if a kernel is cached")
    for name, text in (("test", "run tests/guest inside the guest"),
                       ("run", "run a command inside the guest: vm run -- CMD ARGS")):
        s = sub.add_parser(name, help=text)
        s.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds (default 900)")
        s.add_argument("--memory", type=int, default=2048, help="guest RAM in MiB")
        s.add_argument("args", nargs=argparse.REMAINDER, help="command (run) or extra pytest arguments")
    sub.add_parser("shell", help="an interactive root shell in the guest")
    sub.add_parser("info", help="what is cached, and the kernel version")
    return p


def vm_main(argv: list[str]) -> int:
    """Entry point of `pybpfuring vm ...`; returns the process exit status."""
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except PyBpfUringError as err:
        print(f"pybpfuring vm: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pybpfuring vm: interrupted", file=sys.stderr)
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "fetch":
        manifest = fetch(refresh=args.refresh)
        print(f"kernel {manifest.kernel_release} cached in {cache_dir()}")
        headers = fetch_headers(refresh=args.refresh)   # for bcc: `pybpfuring trace` in the guest
        print(f"kernel headers (for bcc) in {headers}")
        return 0
    if args.command == "info":
        return _info()
    if args.command == "shell":
        return guest_shell()
    extra = args.args[1:] if args.args[:1] == ["--"] else list(args.args)  # only the separator
    config = MachineConfig(memory_mib=args.memory)
    if args.command == "run":
        if not extra:
            print("pybpfuring vm run: give a command after '--', e.g. vm run -- uname -r", file=sys.stderr)
            return 2
        result = run_in_guest(extra, timeout=args.timeout, on_line=print, config=config)
    else:
        result = run_in_guest(guest_pytest_argv(extra, args.timeout), cwd=repo_root(), timeout=args.timeout,
                              on_line=print, config=config)
        for junit in sorted(result.out_dir.glob("junit*.xml")):
            print(f"guest JUnit report: {junit}")
    print(f"[pybpfuring vm] guest exit status {result.exit_status}; boot {result.boot_seconds:.1f} s, "
          f"total {result.total_seconds:.1f} s", file=sys.stderr)
    return result.exit_status


def _info() -> int:
    root = cache_dir()
    manifest = load_manifest(root)
    print(f"cache:            {root}")
    print(f"qemu:             {qemu_binary() or 'not installed (apt-get install qemu-system-x86)'}")
    if manifest is None:
        print("kernel:           not fetched (run: pybpfuring vm fetch)")
        return 0
    print(f"kernel release:   {manifest.kernel_release}")
    for pkg, ver in sorted(manifest.kernel_packages.items()):
        print(f"  package         {pkg} {ver}")
    print(f"vmlinux:          {root / manifest.vmlinux} ({tree_size(root / manifest.vmlinux) >> 20} MiB)")
    print(f"sid user space:   {root / manifest.sid_root} ({tree_size(root / manifest.sid_root) >> 20} MiB)")
    for pkg, ver in sorted(manifest.sid_packages.items()):
        print(f"  package         {pkg} {ver}")
    headers = cached_headers(manifest.kernel_release)
    print(f"kernel headers:   {headers or 'not fetched (run: pybpfuring vm fetch)'} (bcc: pybpfuring trace)")
    images = sorted((root / "initramfs").glob("*.ref")) if (root / "initramfs").is_dir() else []
    print(f"initramfs:        {', '.join(i.stem for i in images) or 'not built yet'}")
    print(f"verified:         {len(manifest.files)} files of the kernel and sid trees (SHA-256, "
          "checked before every boot); .debs against Debian's signed index")
    print(f"mirror:           {manifest.mirror} (suite sid)")
    print(f"fetched:          {manifest.fetched_at} in {manifest.fetch_seconds:.1f} s")
    for note in manifest.notes:
        print(f"note:             {note}")
    return 0
