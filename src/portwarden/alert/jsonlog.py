"""The JSON event log: one object per line, appended; reopened on SIGHUP, rotated by size.

Each event is one complete line, written by one os.write on an O_APPEND descriptor; nothing is
buffered. So an event is in the file or it is not (the caller counts it dropped), a full disk
never leaves half a line, an event said dropped never turns up later, and closing never fails
for want of space. Field names are stable and documented in README ("JSON event log").
"""

import contextlib
import errno
import json
import logging
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from portwarden import limits
from portwarden.alert.outage import Outage
from portwarden.statedir import SYMLINK_REFUSED, not_a_log_file

log = logging.getLogger("portwarden")


class JsonLog:
    def __init__(self, path: Path, max_bytes: int, keep: int) -> None:
        """Past `max_bytes` the file becomes `path.1`, the old `.1` becomes `.2`, and so on;
        `keep` generations are kept, the oldest is removed. A rotation that fails (a directory
        where a generation goes) is logged once; events go on into the current file, and it is
        tried again as the file grows (limits.EVENT_LOG_ROTATE_TRIES). Raises OSError when the
        file cannot be opened."""
        self._path = path
        self._max = max_bytes
        self._keep = keep
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._size = 0
        self._rotate_at = max_bytes  # the size past which the file is rotated
        self.outage = Outage(f"JSON event log {path}", "events")
        self.rotation = Outage(
            f"JSON event log {path}: rotation",
            "tries",
            effect="events go on into the current file; it is tried again as the file grows",
        )
        self.reopen()

    def reopen(self) -> None:
        """Open the path again (after an external rotation, on SIGHUP). The new file is opened
        before the old one is closed: if that fails (OSError), the old one stays in use."""
        with self._lock:
            self._open(os.fstat(self._fd) if self._fd is not None else None)

    def _open(self, like: os.stat_result | None) -> None:
        """Open the path; a file made here gets the access of `like`, the file used so far
        (see _same_access), so a rotation by hand with no `create` is as ours."""
        self._path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
        # O_NONBLOCK: a FIFO put there is refused below, not waited on. O_EXCL first tells a
        # file made here from one that was there (whose access is the administrator's).
        try:
            try:
                fd, made = os.open(self._path, flags | os.O_EXCL | os.O_CLOEXEC, 0o600), True
            except FileExistsError:
                fd, made = os.open(self._path, flags | os.O_CLOEXEC, 0o600), False
        except OSError as error:
            if error.errno == errno.ELOOP:  # O_NOFOLLOW's answer to a symbolic link
                raise OSError(errno.ELOOP, SYMLINK_REFUSED) from None
            raise
        info = os.fstat(fd)
        problem = not_a_log_file(info.st_mode)
        if problem:
            os.close(fd)
            raise OSError(errno.EINVAL, problem)
        self._close()
        self._fd, self._size, self._rotate_at = fd, info.st_size, self._max
        if made and like is not None:
            _same_access(fd, like, self._path)

    def write(self, event: dict[str, Any]) -> None:
        """Raises OSError when the event was not written (none of it is in the file). The
        first failure after a success is logged, and so is the next success (see Outage)."""
        line = json.dumps(event, ensure_ascii=True, separators=(",", ":"), default=str) + "\n"
        with self._lock:
            try:
                self._append(line.encode("ascii"))
            except OSError as error:
                self.outage.failed(error.strerror or str(error))
                raise
            self.outage.worked()

    def _append(self, data: bytes) -> None:
        if self._fd is None:
            raise OSError(errno.EBADF, "the event log was closed (reload)")
        if self._size + len(data) > self._rotate_at and self._grown_past(len(data)):
            self._rotate()
        written = os.write(self._fd, data)
        if written < len(data):  # the disk is full: take back the part line
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, os.fstat(self._fd).st_size - written)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._size += written

    def _grown_past(self, adding: int) -> bool:
        """Whether the file really is too large for `adding` more bytes: another program may
        have made it smaller since our count (logrotate's copytruncate, a `truncate -s0`); then
        the count starts over from the file's size, and a failed rotation's retry point with it
        (our rotation would move a nearly empty file onto the copy logrotate just made)."""
        size = os.fstat(self._fd).st_size if self._fd is not None else self._size
        if size < self._size:
            self._rotate_at = self._max
        self._size = size
        return size + adding > self._rotate_at

    def _rotate(self) -> None:
        """Shift the generations and start a new file. The file may be gone already (logrotate
        moved it and no SIGHUP came yet): then a new one is simply opened, and no event is lost.
        On failure the current file stays in use (see __init__)."""
        moves = [
            (self._generation(n), self._generation(n + 1)) for n in range(self._keep - 1, 0, -1)
        ]
        try:
            before = os.fstat(self._fd) if self._fd is not None else None
            for old, new in [*moves, (self._path, self._generation(1))]:
                with contextlib.suppress(FileNotFoundError):
                    os.replace(old, new)
            self._open(before)
        except OSError as error:
            self.rotation.failed(str(error))  # names the files: '/x/events.jsonl.1' -> ...
            self._rotate_at = self._size + self._max // limits.EVENT_LOG_ROTATE_TRIES
            return
        self.rotation.worked()

    def _generation(self, number: int) -> Path:
        return self._path.with_name(f"{self._path.name}.{number}")

    def close(self) -> None:
        """Never raises: a failure is logged, naming the file."""
        with self._lock:
            self._close()

    def _close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.close(fd)
        except OSError as error:  # nothing is buffered, so nothing was lost
            log.error("JSON event log %s: closing it failed (%s)", self._path, error.strerror)


def _same_access(fd: int, before: os.stat_result, path: Path) -> None:
    """The new file gets the rotated (or moved away) one's mode, owner and group: a log shipper the
    administrator let read it (0640 root:adm) can read the next one too. The mode first, while
    the file is still ours (no CAP_FOWNER needed), and whether or not the owner can be copied
    (that takes CAP_CHOWN, which a unit may not grant): a failure is logged, the file is
    rotated all the same."""
    copies: list[tuple[str, Callable[[], None]]] = [
        ("mode", lambda: os.fchmod(fd, stat.S_IMODE(before.st_mode)))
    ]
    if (before.st_uid, before.st_gid) != (os.getuid(), os.getgid()):
        copies.append(("owner and group", lambda: os.fchown(fd, before.st_uid, before.st_gid)))
    for what, copy in copies:
        try:
            copy()
        except OSError as error:
            log.warning(
                "JSON event log %s: the new file could not get the old one's %s: %s",
                path,
                what,
                error.strerror or error,
            )
