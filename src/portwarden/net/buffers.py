"""Receive buffers for the sockets a flood fills: the sensors' and the UDP close notices'."""

import socket

from portwarden import limits

_SO_RCVBUFFORCE = 33  # Linux; not in Python's socket module


def make_room(sock: socket.socket) -> None:
    """RAW_RCVBUF_BYTES of receive buffer: with SO_RCVBUFFORCE (CAP_NET_ADMIN, as the daemon
    runs) past net.core.rmem_max, which is 208 KiB on a stock kernel (some 270 packets);
    without the capability, SO_RCVBUF, which the kernel clamps to rmem_max."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, limits.RAW_RCVBUF_BYTES)
    except PermissionError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, limits.RAW_RCVBUF_BYTES)
