"""Talking to the service manager: readiness and status over $NOTIFY_SOCKET (sd_notify protocol)."""

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
