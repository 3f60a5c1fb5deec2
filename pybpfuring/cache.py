"""Where pybpfuring keeps what it builds outside the repository, and the checks that make it safe to load.

One root, `$PYBPFURING_CACHE` (default `~/.cache/pybpfuring`), with a folder per kind: `compile`
(BPF objects), `native` (the native event loop's shared object), `bench` (C baselines), `vm` (the guest
kernel and tools). Every folder can be deleted at any time.

pybpfuring runs as root and loads native code and objects from here, so nothing is used from a place
another user could have written (docs/security.md):

- `private_dir(kind)` is the only way to get a cache folder. It creates the root and each folder
  below it with mode 0700 and checks every one of them, and the root itself, each time: a real
  directory (not a symlink), owned by the effective uid, not writable by group or others. Existing
  folders above the root must be owned by root or us and be writable by others only if sticky
  (like /tmp). Anything else raises `UnsafeCacheError` naming the path and what is wrong.
- `store_verified(directory, name, data)` writes an artefact content-addressed: the bytes go to a
  file named by their SHA-256 (`sha256-<hex>`), written to a temporary file in the same folder and
  renamed, and `name` (a small reference file, `<name>.ref`) records that hash.
- `load_verified(directory, name)` / `verified_path(directory, name)` follow the reference, check the
  file (regular, not a symlink, ours, not group/world writable) and re-hash its content before
  returning it: a file whose content does not match its name raises `UnsafeCacheError`.

A new cache (e.g. a scheduler cache) does exactly this:

    directory = cache.private_dir("sched")                 # checked, 0700
    blob = cache.load_verified(directory, key)              # bytes, or None if not cached
    if blob is None:
        blob = build()
        cache.store_verified(directory, key, blob)
"""
from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
import tempfile
from pathlib import Path

from .errors import PyBpfUringError
from .outputs import write_atomic

PRIVATE_MODE = 0o700
_REF_SUFFIX = ".ref"
_BLOB_PREFIX = "sha256-"
_MAX_REF = 256
_BLOB_NAME = re.compile(r"sha256-([0-9a-f]{64})(\.[A-Za-z0-9]{1,8})?")


class UnsafeCacheError(PyBpfUringError):
    """A cache path failed a safety check; nothing in it was used."""

    def __init__(self, path: Path | str, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"refusing to use {path}: {problem} (see docs/security.md; remove it or set "
                         "PYBPFURING_CACHE to a directory only you can write)")


class CacheUnwritable(PyBpfUringError):
    """A cache folder cannot be created (read-only or full file system): nothing unsafe, just no cache."""


def cache_root() -> Path:
    """The cache root (`$PYBPFURING_CACHE` or `~/.cache/pybpfuring`); not created or checked here."""
    env = os.environ.get("PYBPFURING_CACHE")
    return Path(env).expanduser().absolute() if env else Path.home() / ".cache" / "pybpfuring"


def check_private_dir(path: Path) -> Path:
    """`path` if it is a directory only the current user can change; else `UnsafeCacheError`.

    Checked with lstat (a symlink is refused, not followed): owner is the effective uid and the mode
    has no group or other write bit.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise UnsafeCacheError(path, "it does not exist") from None
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeCacheError(path, f"it is a symlink (to {os.readlink(path)})")
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeCacheError(path, "it is not a directory")
    _check_owner_mode(path, st, "directory")
    return path


def _check_owner_mode(path: Path, st: os.stat_result, what: str) -> None:
    if st.st_uid != os.geteuid():
        raise UnsafeCacheError(path, f"the {what} is owned by uid {st.st_uid}, not by us (uid {os.geteuid()})")
    if st.st_mode & 0o022:
        raise UnsafeCacheError(path, f"the {what} is writable by group or others "
                               f"(mode {stat.S_IMODE(st.st_mode):04o})")


def _check_ancestor(path: Path) -> None:
    """A folder above the cache root (which we did not create): whoever can rename entries in it
    controls the root, so it must belong to root or us, and be shared only with the sticky bit."""
    st = os.stat(path)  # followed: /var/tmp or ~ may be symlinks set up by the administrator
    if st.st_uid not in (0, os.geteuid()):
        raise UnsafeCacheError(path, f"a parent of the cache is owned by uid {st.st_uid}")
    if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
        raise UnsafeCacheError(path, "a parent of the cache is writable by group or others "
                               f"without the sticky bit (mode {stat.S_IMODE(st.st_mode):04o})")


def check_trusted_parents(path: Path) -> None:
    """`path` and every folder above it: owned by root or us, writable by others only if sticky.

    What a private directory made inside `path` (e.g. with `tempfile.mkdtemp`) relies on: nobody
    else can rename it away and put their own in its place.
    """
    for folder in _parents(Path(os.path.abspath(path))):
        _check_ancestor(folder)


def _make_checked(path: Path) -> None:
    try:
        os.mkdir(path, PRIVATE_MODE)  # the umask can only take bits away from 0700
    except FileExistsError:
        pass
    except OSError as exc:
        raise CacheUnwritable(f"cannot create the cache folder {path}: {exc.strerror}") from None
    check_private_dir(path)


def ensure_private_tree(root: Path, *parts: str) -> Path:
    """`root/parts...`, each level created 0700 if missing and checked (see `check_private_dir`).

    The parents of `root` are checked as ancestors (owned by root or us; shared only if sticky).
    """
    root = Path(os.path.abspath(root))
    missing = []
    parent = root.parent
    while not os.path.lexists(parent):
        missing.append(parent)
        parent = parent.parent
    for ancestor in reversed([*_parents(parent)]):
        _check_ancestor(ancestor)
    for path in reversed(missing):
        _make_checked(path)  # folders above the root that we create are ours too
    _make_checked(root)
    path = root
    for part in parts:
        for piece in Path(part).parts:
            if piece in ("", ".", "..") or "/" in piece:
                raise ValueError(f"not a cache folder name: {part!r}")
            path = path / piece
            _make_checked(path)
    return path


def _parents(path: Path) -> list[Path]:
    return [path, *path.parents]


def private_dir(kind: str) -> Path:
    """The cache folder for one kind of artefact (`compile`, `native`, `bench`, `vm`, `vm/debs` ...),
    created 0700 and checked, with the root and every folder between, before anything is used."""
    return ensure_private_tree(cache_root(), kind)


def cache_dir(kind: str, *, create: bool = True) -> Path:
    """Old name of `private_dir(kind)`, kept for existing callers: the folder is always created and
    checked now, whatever `create` says."""
    return private_dir(kind)


def _open_checked(path: Path) -> int:
    """An fd on `path`: a regular file, not a symlink, ours, not group/world writable."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW: the last component is a symlink
            raise UnsafeCacheError(path, "it is a symlink") from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise UnsafeCacheError(path, "it is not a regular file")
    try:
        _check_owner_mode(path, st, "file")
    except UnsafeCacheError:
        os.close(fd)
        raise
    return fd


def _read_fd(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def read_checked(path: Path, limit: int | None = None) -> bytes:
    """The bytes of a file in a private folder, after the file checks of `load_verified`."""
    fd = _open_checked(path)
    try:
        return os.read(fd, limit) if limit is not None else _read_fd(fd)
    finally:
        os.close(fd)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    fd = _open_checked(path)
    try:
        while chunk := os.read(fd, 1 << 20):
            h.update(chunk)
    finally:
        os.close(fd)
    return h.hexdigest()


def _ref_path(directory: Path, name: str) -> Path:
    if not name or "/" in name or name.startswith(".") or name.startswith(_BLOB_PREFIX):
        raise ValueError(f"not a cache entry name: {name!r}")
    return directory / (name + _REF_SUFFIX)


def _blob_of(directory: Path, name: str) -> tuple[Path, str] | None:
    """The content file a reference names, and the SHA-256 it must have."""
    ref = _ref_path(directory, name)
    if not os.path.lexists(ref):
        return None
    blob_name = read_checked(ref, _MAX_REF).decode("ascii", "replace").strip()
    match = _BLOB_NAME.fullmatch(blob_name)
    if match is None:
        raise UnsafeCacheError(ref, "it does not name a content-addressed file (sha256-<hex>)")
    return directory / blob_name, match.group(1)


def _mismatch(blob: Path, actual: str) -> UnsafeCacheError:
    return UnsafeCacheError(blob, f"its content hashes to {actual[:16]}..., not to the hash in its name "
                            "(altered or corrupted)")


def verified_path(directory: Path, name: str) -> Path | None:
    """The file stored as `name` in `directory` (a `private_dir`), its content re-hashed now; None if
    nothing is stored under that name. Use it for files another program opens (a .so, a binary, a
    module to import): the folder is private, so nobody else can swap the file after the check."""
    check_private_dir(directory)
    found = _blob_of(directory, name)
    if found is None or not os.path.lexists(found[0]):
        return None  # not stored, or the folder was cleaned under the reference: rebuild
    blob, expected = found
    actual = sha256_file(blob)
    if actual != expected:
        raise _mismatch(blob, actual)
    return blob


def load_verified(directory: Path, name: str) -> bytes | None:
    """The bytes stored as `name` in `directory`, verified against their hash; None if not stored."""
    check_private_dir(directory)
    found = _blob_of(directory, name)
    if found is None or not os.path.lexists(found[0]):
        return None
    blob, expected = found
    data = read_checked(blob)
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise _mismatch(blob, actual)
    return data


def store_verified(directory: Path, name: str, data: bytes | Path, mode: int = 0o600,
                   suffix: str = "") -> Path:
    """Store `data` (bytes, or a file already written inside `directory`, which is moved) as `name`.

    The content goes to `sha256-<hex><suffix>` (temp file in the same folder, then rename; `suffix`
    such as ".py" for files tools recognise by name), then the reference `<name>.ref` is replaced
    atomically; returns the content's path. Concurrent writers of the same content are harmless.
    """
    check_private_dir(directory)
    if isinstance(data, Path):
        if data.parent != directory:
            raise ValueError(f"{data} is not in {directory}")
        digest = sha256_file(data)
        os.chmod(data, mode)
        blob = directory / f"{_BLOB_PREFIX}{digest}{suffix}"
        os.replace(data, blob)
    else:
        digest = hashlib.sha256(data).hexdigest()
        blob = directory / f"{_BLOB_PREFIX}{digest}{suffix}"
        write_atomic(blob, data, mode)
    if _BLOB_NAME.fullmatch(blob.name) is None:
        raise ValueError(f"not a cache file suffix: {suffix!r}")
    write_atomic(_ref_path(directory, name), (blob.name + "\n").encode(), 0o600)
    return blob


def new_temp_file(directory: Path, suffix: str = "") -> Path:
    """A new empty file (O_EXCL, 0600) in `directory` for a tool to write into before `store_verified`."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=directory)
    os.close(fd)
    return Path(tmp)

