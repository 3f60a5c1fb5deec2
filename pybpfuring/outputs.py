"""Writing files a user asked for, without ever losing one they did not.

pybpfuring runs as root, and a typo in `-o` must not cost anyone their source (docs/security.md):

- `check_output(path, inputs, force)` refuses (`OutputRefused`, exit 2 on the CLI) an output path that
  is one of the command's inputs (compared by inode, so through symlinks, `..` and hard links), that
  is a symlink, or that exists and is not a file pybpfuring wrote (a BPF ELF object, LLVM IR or BPF
  assembly carrying pybpfuring's marker). `force=True` (`--force`) allows all of these except writing
  over something that is not a regular file (a directory, a device, a FIFO).
- A character device or a pipe (`-o /dev/null`, `-o /dev/stdout`) is a stream, not a file whose content
  could be lost: `write_output` writes it directly. Block devices are always refused.
- `write_output(path, data)` / `write_atomic(path, data)` write to a new temporary file in the same directory, syncs it and
  renames it over `path`: a reader sees the old file or the new one, never half of one, and a symlink
  at `path` is replaced, never followed.
"""
from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path

from .errors import PyBpfUringError

EM_BPF = 247
# What pybpfuring's own outputs carry: the DWARF file of generated code, the IR module's name.
ELF_MARKER = b"<pybpfuring>\0"
IR_MARKER = b'; ModuleID = "pybpfuring"'
ASM_MARKER = b'"<pybpfuring>"'
_SNIFF_LIMIT = 64 << 20


class OutputRefused(PyBpfUringError):
    """An output path would overwrite something that is not ours to overwrite."""

    def __init__(self, path: Path | str, problem: str, forceable: bool = True):
        self.path = Path(path)
        self.problem = problem
        hint = "; pass --force to replace it" if forceable else ""
        super().__init__(f"error: refusing to write {path}: {problem}{hint}")


def written_by_us(path: Path) -> bool:
    """Whether `path` (a regular file) is an object, IR or assembly file pybpfuring wrote."""
    try:
        with open(path, "rb", buffering=0) as f:
            head = f.read(64)
            if head[:4] == b"\x7fELF":
                if len(head) < 20 or int.from_bytes(head[18:20], "little") != EM_BPF:
                    return False
                return ELF_MARKER in head + f.read(_SNIFF_LIMIT)
            if head.startswith(IR_MARKER):
                return True
            return ASM_MARKER in head + f.read(4096)
    except OSError:
        return False


def check_output(path: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str]],
                 force: bool = False) -> Path:
    """`path` if writing it loses nothing (see the module docstring); else `OutputRefused`."""
    out, shown = Path(path), os.fspath(path)  # messages name the path as the user wrote it
    try:
        st = os.lstat(out)
    except FileNotFoundError:
        return out
    if stat.S_ISDIR(st.st_mode):
        raise OutputRefused(shown, "it is a directory", forceable=False)
    if _is_stream(out):
        return out
    if stat.S_ISLNK(st.st_mode):
        target = os.readlink(out)
        if force:
            return out  # the rename replaces the link itself; its target is never written
        raise OutputRefused(shown, f"it is a symlink (to {target})")
    if not stat.S_ISREG(st.st_mode):
        raise OutputRefused(shown, "it exists and is not a regular file", forceable=False)
    if force:
        return out
    for source in inputs:
        try:
            if os.path.samefile(out, source):
                raise OutputRefused(shown, f"it is an input of this command ({source})")
        except OSError:
            continue
    if not written_by_us(out):
        raise OutputRefused(shown, "it exists and is not a file pybpfuring wrote")
    return out


def _is_stream(path: Path) -> bool:
    """A character device or a pipe/socket (followed through symlinks, as /dev/stdout is one)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def write_output(path: str | os.PathLike[str], data: bytes | str) -> Path:
    """Write a user-requested output: streams directly, files with `write_atomic`."""
    out = Path(path)
    if _is_stream(out):
        with open(out, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        return out
    return write_atomic(out, data)


def write_atomic(path: str | os.PathLike[str], data: bytes | str, mode: int | None = None) -> Path:
    """Write `data` to `path` through a temporary file in the same directory and a rename.

    The new file gets `mode`, default 0666 minus the umask (what `open(path, "w")` would give).
    """
    out = Path(path)
    payload = data.encode() if isinstance(data, str) else data
    if mode is None:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    except OSError as exc:  # name the file the user asked for, not our temporary one
        raise OSError(exc.errno, f"cannot write {out}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, out)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise
    return out
