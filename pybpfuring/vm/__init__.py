"""A QEMU guest booting Debian sid's Linux 7.x cloud kernel (io_uring BPF ops), for tests and runs.

Public API:
    fetch(refresh=False) -> Manifest            obtain + extract + cache the kernel and sid tools
    ensure_artifacts() -> Manifest              the cached artefacts, fetching them if absent
    run_in_guest(argv, cwd=None, timeout=900.0, on_line=None, env=None, config=None) -> GuestResult
    sid_command(sid_root, binary) -> list[str]   argv prefix running a sid binary with sid's ld.so
    vm_main(argv) -> int                        `pybpfuring vm fetch|test|run|shell|info`
    VmError, NoAptAccess                        failures, each naming the step that failed
See docs/vm.md.
"""
from pybpfuring.vm.cache import Manifest, cache_dir, load_manifest
from pybpfuring.vm.cli import vm_main
from pybpfuring.vm.kernel import ensure_artifacts, fetch, sid_command
from pybpfuring.vm.qemu import GuestResult, MachineConfig, qemu_binary
from pybpfuring.vm.runner import run_in_guest
from pybpfuring.vm.steps import NoAptAccess, VmError

__all__ = ["GuestResult", "MachineConfig", "Manifest", "NoAptAccess", "VmError", "cache_dir",
           "ensure_artifacts", "fetch", "load_manifest", "qemu_binary", "run_in_guest", "sid_command",
           "vm_main"]
