"""Where pybpfuring keeps what it builds outside the repository: compiled objects, the native event
loop's shared object, benchmark baselines, the guest kernel. One root, `$PYBPFURING_CACHE` (default
`~/.cache/pybpfuring`), with a folder per kind; every folder can be deleted at any time."""
from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    env = os.environ.get("PYBPFURING_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "pybpfuring"


def cache_dir(kind: str, *, create: bool = False) -> Path:
    """The folder for one kind of artefact (`compile`, `native`, `bench`, `vm`)."""
    path = cache_root() / kind
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path
