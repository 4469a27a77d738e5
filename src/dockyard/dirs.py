"""Private directories: the lock directory and artifact bundles, created 0700 and checked."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from dockyard.errors import LockDirError


def ensure_lock_dir(path: Path) -> Path:
    """Create ``path`` private to the user (0700), or refuse one that is not private."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = path.stat()
    except OSError as exc:
        raise LockDirError(
            f"lock directory {path} cannot be created or read: {exc.strerror}",
            remedy="point lock_dir (DOCKYARD_LOCK_DIR) at a directory you own",
        ) from None
    if info.st_uid != os.geteuid():
        raise LockDirError(
            f"lock directory {path} is owned by uid {info.st_uid}, not by you (uid {os.geteuid()})",
            remedy="point lock_dir (DOCKYARD_LOCK_DIR) at a directory you own; another user's "
            "berths cannot be trusted or reaped",
        )
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise LockDirError(
            f"lock directory {path} is open to others (mode {stat.S_IMODE(info.st_mode):04o})",
            remedy=f"run `chmod 700 {path}`, or point lock_dir (DOCKYARD_LOCK_DIR) elsewhere",
        )
    return path


def private_dir(path: Path) -> Path:
    """Create ``path`` private to the user, and the parents it lacks (the artifacts dir) as well."""
    # Only what is created here is made private: an existing parent may be a shared one (/tmp).
    for missing in reversed([p for p in (path, *path.parents) if not p.exists()]):
        missing.mkdir(mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)
    return path
