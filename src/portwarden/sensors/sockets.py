"""The sockets a sensor reads, by their file descriptor (the daemon's selector waits on them)."""

import socket


def close_all(sockets: dict[int, socket.socket]) -> None:
    """Close every socket and forget them (a sensor closed twice closes nothing twice)."""
    for sock in sockets.values():
        sock.close()
    sockets.clear()
