"""Talking to the service manager: readiness, reload, stop and watchdog over $NOTIFY_SOCKET
(the sd_notify protocol, without libsystemd)."""

import os
import socket


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
