"""The JSON event log: one object per line, appended; reopened on SIGHUP, rotated by size.

Field names are stable and documented in README ("JSON event log").
"""

import contextlib
import errno
import json
import os
import threading
from pathlib import Path
from typing import Any, TextIO


class JsonLog:
    def __init__(self, path: Path, max_bytes: int, keep: int) -> None:
        """Past `max_bytes` the file becomes `path.1`, the old `.1` becomes `.2`, and so on;
        `keep` generations are kept, the oldest is removed. Raises OSError when the file
        cannot be opened."""
        self._path = path
        self._max = max_bytes
        self._keep = keep
        self._lock = threading.Lock()
        self._file: TextIO | None = None
        self._size = 0
        self.reopen()

    def reopen(self) -> None:
        """Open the path again (after an external rotation, on SIGHUP). The new file is opened
        before the old one is closed: if that fails (OSError), the old one stays in use."""
        with self._lock:
            self._open()

    def _open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        fresh = os.fdopen(fd, "a", encoding="utf-8", buffering=1)
        if self._file is not None:
            self._file.close()
        self._file = fresh
        self._size = fresh.tell()

    def write(self, event: dict[str, Any]) -> None:
        line = json.dumps(event, ensure_ascii=True, separators=(",", ":"), default=str) + "\n"
        with self._lock:
            if self._file is None:
                raise OSError(errno.EBADF, "the event log was closed (reload)")
            if self._size + len(line) > self._max:
                self._rotate()
            self._file.write(line)
            self._size += len(line)

    def _rotate(self) -> None:
        """Shift the generations and start a new file. The file may be gone already (logrotate
        moved it and no SIGHUP came yet): then a new one is simply opened, and no event is lost."""
        moves = [
            (self._generation(n), self._generation(n + 1)) for n in range(self._keep - 1, 0, -1)
        ]
        for old, new in [*moves, (self._path, self._generation(1))]:
            with contextlib.suppress(FileNotFoundError):
                os.replace(old, new)
        self._open()

    def _generation(self, number: int) -> Path:
        return self._path.with_name(f"{self._path.name}.{number}")

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
