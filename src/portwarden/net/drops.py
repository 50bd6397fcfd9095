"""Packets the kernel dropped for a socket because its receive queue was full (a flood): the
socket's drop counter (SO_MEMINFO's SK_MEMINFO_DROPS), which /proc/net/raw shows as `drops`."""

import socket
import struct
from collections.abc import Iterable

_SO_MEMINFO = 55  # not in Python's socket module
_MEMINFO = struct.Struct("9I")
_DROPS = 8  # SK_MEMINFO_DROPS


def dropped(sockets: Iterable[socket.socket]) -> int:
    """The sockets' drops since they were opened (0 for a socket that cannot say)."""
    total = 0
    for sock in sockets:
        try:
            total += _MEMINFO.unpack(
                sock.getsockopt(socket.SOL_SOCKET, _SO_MEMINFO, _MEMINFO.size)
            )[_DROPS]
        except (OSError, struct.error):
            continue
    return total
