"""Talking to the service manager: readiness, reload, stop and watchdog over $NOTIFY_SOCKET
(the sd_notify protocol, without libsystemd)."""

import logging
import os
import socket

# syslog priorities of Python's levels, for journald's `<N>` line prefix
_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


def notify(message: str) -> bool:
    """Send e.g. 'READY=1' to systemd if it asked for notifications. Returns whether it was sent."""
    target = os.environ.get("NOTIFY_SOCKET")
    if not target:
        return False
    if target.startswith("@"):
        target = "\0" + target[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(message.encode(), target)
    except OSError:
        return False
    return True


def watchdog_interval() -> float | None:
    """Seconds within which systemd wants WATCHDOG=1 (WatchdogSec=), or None if it does not."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 1_000_000


def stderr_is_journal() -> bool:
    """Whether stderr is systemd's journal stream ($JOURNAL_STREAM names its device and inode)."""
    try:
        stat = os.fstat(2)
    except OSError:
        return False
    return os.environ.get("JOURNAL_STREAM") == f"{stat.st_dev}:{stat.st_ino}"


class JournalFormatter(logging.Formatter):
    """`<priority>message`: journald reads the priority from the prefix (so `journalctl -p
    warning` shows attacks and errors) and adds the time, ident and pid itself."""

    def format(self, record: logging.LogRecord) -> str:
        return f"<{_PRIORITY.get(record.levelno, 6)}>{super().format(record)}"
