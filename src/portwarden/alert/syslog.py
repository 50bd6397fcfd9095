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

from portwarden.alert.outage import Outage
from portwarden.config.values import FACILITIES
from portwarden.text import one_line

_CODES = dict(zip(FACILITIES, (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 16, 17, 18, 19, 20, 21, 22,
                               23), strict=True))  # fmt: skip
NOTICE, WARNING, INFO, ERROR = 5, 4, 6, 3
SEVERITIES = {"alert": 1, "crit": 2, "err": ERROR, "warning": WARNING, "notice": NOTICE,
              "info": INFO, "debug": 7}  # fmt: skip
_LINE_MAX = 2000
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def timestamp(epoch: float) -> str:
    """RFC 3164's TIMESTAMP in local time: `Nov  5 09:03:07`, the day padded with a space, the
    month in English whatever the locale."""
    t = time.localtime(epoch)
    return f"{_MONTHS[t.tm_mon - 1]} {t.tm_mday:2d} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"


class Syslog:
    def __init__(self, path: Path, facility: str, ident: str = "portwarden") -> None:
        self._path = str(path)
        self._facility = _CODES[facility]
        self._ident = ident
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self.outage = Outage(f"syslog {path}", "lines", logging.WARNING)

    def send(self, message: str, severity: int = NOTICE) -> bool:
        stamp = timestamp(time.time())
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
                if self._sock is not None:
                    self._sock.close()
                    self._sock = None
                self.outage.failed(error.strerror or str(error))
                return False
            self.outage.worked()
        return True

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None
