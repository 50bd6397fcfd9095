"""File descriptors: the open-files limit (RLIMIT_NOFILE) raised at start, and a check before
the classic modes bind one socket per watched port.

systemd starts a service with a soft limit of 1024 open files (and a hard limit of 524288); a
classic mode with a few thousand ports needs more, and running out half-way would mislabel
ports as taken by a service, then fail on the next netlink socket.
"""

import errno
import os
import resource
from pathlib import Path

from portwarden import limits

OUT_OF_DESCRIPTORS = frozenset({errno.EMFILE, errno.ENFILE})
_NR_OPEN = Path("/proc/sys/fs/nr_open")  # the kernel's ceiling for RLIMIT_NOFILE


class DescriptorShortage(OSError):
    """Not enough file descriptors for the ports asked for; str() is the one-line reason."""


def raise_soft_limit() -> int:
    """Raise the soft open-files limit to the hard one (the most a process may do without
    privileges); returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = hard
    if hard == resource.RLIM_INFINITY:
        try:
            ceiling = int(_NR_OPEN.read_text())
        except (OSError, ValueError):
            return soft
    if soft != resource.RLIM_INFINITY and soft < ceiling:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))
        except (ValueError, OSError):
            return soft
        return ceiling
    return soft


def ensure_free(needed: int, what: str) -> None:
    """Raise DescriptorShortage unless `needed` descriptors (for `what`) are free, besides
    limits.DESCRIPTORS_RESERVED for the daemon's own work."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    free = soft - (len(os.listdir("/proc/self/fd")) - 1)  # listdir's own descriptor aside
    if needed + limits.DESCRIPTORS_RESERVED <= free:
        return
    raise DescriptorShortage(
        f"{what} need {needed} file descriptors, one socket per port, besides "
        f"{limits.DESCRIPTORS_RESERVED} kept for the daemon itself, but only {free} are free "
        f"under the open-files limit of {soft} (hard limit {hard}): raise the hard limit "
        "(LimitNOFILE= in the service unit, ulimit -Hn), watch fewer ports, or use the stealth "
        "modes (-stcp, -sudp), which need no socket per port"
    )
