"""The JSON event log: one object per line, appended; reopened on SIGHUP, rotated by size.

Field names are stable and documented in README ("JSON event log").
"""

import errno
import json
import os
import threading
from pathlib import Path
from typing import Any


class JsonLog:
    def __init__(self, path: Path, max_bytes: int) -> None:
        self._path = path
        self._max = max_bytes
        self._lock = threading.Lock()
        self._file: Any = None
        self._size = 0
        self.reopen()

    def reopen(self) -> None:
        """Close and open again (after an external rotation, on SIGHUP)."""
        with self._lock:
            self._open()

    def _open(self) -> None:
        if self._file is not None:
            self._file.close()
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        self._file = os.fdopen(fd, "a", encoding="utf-8", buffering=1)
        self._size = self._file.tell()

    def write(self, event: dict[str, Any]) -> None:
        line = json.dumps(event, ensure_ascii=True, separators=(",", ":"), default=str) + "\n"
        with self._lock:
            if self._file is None:
                raise OSError(errno.EBADF, "the event log was closed (reload)")
            if self._size + len(line) > self._max:
                os.replace(self._path, self._path.with_name(self._path.name + ".1"))
                self._open()
            self._file.write(line)
            self._size += len(line)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
