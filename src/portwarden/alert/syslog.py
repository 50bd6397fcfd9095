"""Syslog over the local socket (RFC 3164 framing), ident `portwarden`, without blocking.

A full socket buffer or a missing syslog daemon never slows the caller: the line is counted as
dropped and the socket is reopened on the next try.
"""

import logging
import os
import socket
import threading
import time
from pathlib import Path

from portwarden.config.values import FACILITIES
from portwarden.text import one_line

_CODES = dict(zip(FACILITIES, (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 16, 17, 18, 19, 20, 21, 22,
                               23), strict=True))  # fmt: skip
NOTICE, WARNING, INFO, ERROR = 5, 4, 6, 3
SEVERITIES = {"alert": 1, "crit": 2, "err": ERROR, "warning": WARNING, "notice": NOTICE,
              "info": INFO, "debug": 7}  # fmt: skip
_LINE_MAX = 2000

log = logging.getLogger("portwarden")


class Syslog:
    def __init__(self, path: Path, facility: str, ident: str = "portwarden") -> None:
        self._path = str(path)
        self._facility = _CODES[facility]
        self._ident = ident
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self.dropped = 0
        self._failing = False  # said once when lines start to be dropped, once when they stop

    def send(self, message: str, severity: int = NOTICE) -> bool:
        stamp = time.strftime("%b %d %H:%M:%S")
        text = one_line(message, _LINE_MAX, backslashes=False)  # its parts are escaped already
        data = f"<{self._facility * 8 + severity}>{stamp} {self._ident}[{os.getpid()}]: {text}"
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                    self._sock.setblocking(False)
                    self._sock.connect(self._path)
                self._sock.send(data.encode("utf-8", "replace"))
            except OSError as error:
                self.dropped += 1
                if self._sock is not None:
                    self._sock.close()
                    self._sock = None
                if not self._failing:
                    self._failing = True
                    log.warning("syslog: cannot send to %s (%s); lines are dropped and counted "
                                "until it works", self._path, error.strerror or error)  # fmt: skip
                return False
            if self._failing:
                self._failing = False
                log.info("syslog: %s works again (%d lines dropped so far)", self._path,
                         self.dropped)  # fmt: skip
        return True

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None
