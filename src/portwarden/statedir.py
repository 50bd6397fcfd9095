"""The daemon's own state directory, claimed by one instance at a time."""

import fcntl
import os
from pathlib import Path
from typing import IO

LOCK_NAME = "portwarden.lock"


class StateDirBusy(Exception):
    """Another running portwarden holds this STATE_DIR."""


def claim(state_dir: Path) -> IO[str]:
    """Create `state_dir` (mode 0700) and lock it for this process. Keep the result open.

    Raises StateDirBusy when another instance holds it, so two instances never share state.
    """
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    lock = open(state_dir / LOCK_NAME, "a+")  # noqa: SIM115 - held for the daemon's lifetime
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = _pid(lock)
        lock.close()
        raise StateDirBusy(
            f"STATE_DIR {state_dir} is in use by another portwarden (pid {pid}); "
            "give each instance its own STATE_DIR"
        ) from None
    lock.truncate(0)
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    return lock


def holder(state_dir: Path) -> str | None:
    """The pid of the running portwarden that holds `state_dir` (without taking it), as it
    wrote it ("?" before it has), or None when none does."""
    try:
        lock = open(state_dir / LOCK_NAME)  # noqa: SIM115 - read after the lock attempt
    except (FileNotFoundError, NotADirectoryError):
        return None
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _pid(lock)
    return None


def in_use(state_dir: Path) -> bool:
    """Whether a running portwarden holds `state_dir` (without taking it)."""
    return holder(state_dir) is not None


def _pid(lock: IO[str]) -> str:
    lock.seek(0)
    return lock.read().strip() or "?"


def unusable_directory(path: Path) -> str | None:
    """Why `path` is not a directory and cannot become one (by mkdir -p), or None. Nothing is
    created, so check-config can tell. Whether it can be written is asked only as root (who
    runs the daemon; a user checking the daemon's file could not make /var/lib/portwarden).
    A file system that refuses even root (/proc) shows only when the directory is made."""
    try:
        return _unusable_directory(path)
    except OSError as error:  # a name too long, a folder that may not be searched
        return f"{path}: {error.strerror or error}"


def _unusable_directory(path: Path) -> str | None:
    if path.is_dir():
        return None
    if path.exists() or path.is_symlink():
        return f"{path} exists and is not a directory"
    nearest = next(parent for parent in path.parents if parent.exists())
    if not nearest.is_dir():
        return f"{nearest} is not a directory"
    if os.geteuid() == 0 and not os.access(nearest, os.W_OK | os.X_OK):
        return f"{path} cannot be made: {nearest} is not writable"
    return None
