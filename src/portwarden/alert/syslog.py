"""Syslog over the local socket (RFC 3164 framing), ident `portwarden`, off the caller's path.

send() formats the line (its time is the caller's) and queues it; a sender thread writes the
queue to the socket in order, waiting for room at most limits.SYSLOG_WAIT_S per line, as
syslog(3)'s blocking send would without its risk: a burst that overflows the socket's queue
(net.unix.max_dgram_qlen) is delivered, a syslog daemon that hangs never slows the caller. A
line that cannot go (no syslog daemon, no room in time, a full queue) is counted as dropped;
the socket is reopened for the next. When the syslog daemon has restarted, the connected socket
fails (ECONNREFUSED, ENOTCONN, or ENOENT once the path is gone): as syslog(3) does, the line is
tried once more on a new connection before it is counted as dropped.
"""

import collections
import errno
import logging
import os
import select
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from portwarden import limits
from portwarden.alert.outage import Outage
from portwarden.config.values import FACILITIES
from portwarden.text import one_line

_CODES = dict(
    zip(
        FACILITIES,
        (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 16, 17, 18, 19, 20, 21, 22, 23),
        strict=True,
    )
)
NOTICE, WARNING, INFO, ERROR = 5, 4, 6, 3
SEVERITIES = {
    "alert": 1,
    "crit": 2,
    "err": ERROR,
    "warning": WARNING,
    "notice": NOTICE,
    "info": INFO,
    "debug": 7,
}
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_RECONNECT = b""  # in the queue: connect again before the next line (a line is never empty)
_PEER_GONE = frozenset({errno.ECONNREFUSED, errno.ENOTCONN, errno.ENOENT})  # daemon restarted


def timestamp(epoch: float) -> str:
    """RFC 3164's TIMESTAMP in local time: `Nov  5 09:03:07`, the day padded with a space, the
    month in English whatever the locale."""
    t = time.localtime(epoch)
    return f"{_MONTHS[t.tm_mon - 1]} {t.tm_mday:2d} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"


class Syslog:
    def __init__(
        self,
        path: Path,
        facility: str,
        counted: Callable[[bool], None] | None = None,
        ident: str = "portwarden",
    ) -> None:
        """`counted(sent)` is called once per line, from the sender thread (or the caller's,
        for a line the full queue refuses)."""
        self._path = str(path)
        self._facility = _CODES[facility]
        self._ident = ident
        self._counted = counted or (lambda _sent: None)
        self._sock: socket.socket | None = None
        self._queue: collections.deque[bytes] = collections.deque()
        self._ready = threading.Condition()
        self._closing = False
        self._busy = False  # the sender holds a line taken from the queue
        self.outage = Outage(f"syslog {path}", "lines", logging.WARNING)
        self._sender = threading.Thread(target=self._send_queued, name="syslog", daemon=True)
        self._sender.start()

    def send(self, message: str, severity: int = NOTICE) -> bool:
        """Queue a line; False if it is dropped at once (the queue is full, or closed)."""
        stamp = timestamp(time.time())
        most = limits.SYSLOG_DATAGRAM_BYTES_MAX
        text = one_line(message, most, backslashes=False)  # its parts are escaped already
        line = f"<{self._facility * 8 + severity}>{stamp} {self._ident}[{os.getpid()}]: {text}"
        data = line.encode("utf-8", "replace")  # ASCII but for the ident: one_line escapes
        if len(data) > most:
            data = data[: most - 3] + b"..."
        with self._ready:
            full = len(self._queue) >= limits.SYSLOG_QUEUE_MAX or self._closing
            if not full:
                self._queue.append(data)
                self._ready.notify()
        if full:
            self.outage.failed(f"{limits.SYSLOG_QUEUE_MAX} lines waiting")
            self._counted(False)
        return not full

    def reconnect(self) -> None:
        """Connect again before the next line (SIGHUP: the syslog daemon may have restarted)."""
        with self._ready:
            self._queue.append(_RECONNECT)
            self._ready.notify()

    def flush(self, timeout: float) -> bool:
        """Wait until every queued line has been sent or dropped; False if `timeout` ran out."""
        deadline = time.monotonic() + timeout
        with self._ready:
            return self._ready.wait_for(
                lambda: not self._queue and not self._busy, max(0.0, deadline - time.monotonic())
            )

    def close(self) -> None:
        """Send what is queued within limits.SYSLOG_DRAIN_S (the rest is counted as dropped),
        then stop the sender."""
        self.flush(limits.SYSLOG_DRAIN_S)
        with self._ready:
            self._closing = True
            left = [line for line in self._queue if line != _RECONNECT]
            self._queue.clear()
            self._ready.notify_all()
        for _ in left:
            self.outage.failed("stopping")
            self._counted(False)
        self._sender.join(limits.SYSLOG_WAIT_S * 2)

    def _send_queued(self) -> None:
        while True:
            with self._ready:
                self._busy = False
                self._ready.notify_all()  # for flush()
                self._ready.wait_for(lambda: self._queue or self._closing)
                if self._closing:
                    break
                data = self._queue.popleft()
                self._busy = True
            if data == _RECONNECT:
                self._disconnect()
                continue
            sent = self._write(data)
            self._counted(sent)
        self._disconnect()

    def _write(self, data: bytes) -> bool:
        while True:  # twice at most: the second try is on a new socket
            fresh = self._sock is None
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                    self._sock.setblocking(False)
                    self._sock.connect(self._path)
                self._send_in_time(self._sock, data)
            except OSError as error:
                self._disconnect()
                if not fresh and error.errno in _PEER_GONE:
                    continue  # the syslog daemon restarted: connect to the new one
                self.outage.failed(error.strerror or str(error))
                return False
            self.outage.worked()
            return True

    @staticmethod
    def _send_in_time(sock: socket.socket, data: bytes) -> None:
        """Send, waiting at most limits.SYSLOG_WAIT_S for room in the receiver's queue (a
        connected datagram socket polls writable once the peer has room). Raises OSError."""
        deadline = time.monotonic() + limits.SYSLOG_WAIT_S
        poller = select.poll()
        poller.register(sock, select.POLLOUT)
        while True:
            try:
                sock.send(data)
                return
            except BlockingIOError:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise
                poller.poll(max(1, int(left * 1000)))

    def _disconnect(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
