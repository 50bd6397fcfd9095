"""One `portmap protect` or `unprotect` at a time.

Each reads the wrappers files and the firewalls, plans, then writes: two at once could each plan
from what the other is about to change, and one's edit would be lost. The lock is an flock on a
file in /run, where only root may create it (in /run/lock any user could, and hold it to keep
root from protecting the portmapper). The file holds the pid of the run that has it.
"""

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from portwarden import limits
from portwarden.statedir import take

LOCK_PATH = Path("/run/portwarden-portmap.lock")
_RETRY_S = 0.05


class Busy(Exception):
    """The lock could not be had; str() is one line."""


@contextmanager
def held(path: Path = LOCK_PATH, wait: float = limits.PORTMAP_LOCK_WAIT_S) -> Iterator[None]:
    """Hold the lock for the block, after waiting at most `wait` seconds for it. Raises Busy."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as error:
        raise Busy(f"cannot take the lock {path}: {error.strerror or error}") from None
    with os.fdopen(fd, "r+") as lock:
        deadline = time.monotonic() + wait
        while (holder := take(lock)) is not None:
            if time.monotonic() >= deadline:
                raise Busy(
                    f"another portmap protect or unprotect (pid {holder.pid}) holds "
                    f"{path}; gave up after {wait:g} s"
                )
            time.sleep(_RETRY_S)
        yield
