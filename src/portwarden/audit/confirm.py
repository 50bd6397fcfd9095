"""Confirming, per address, what the socket tables from /proc cannot say: used only on a
kernel whose sock_diag does not answer, which tells the bound device and IPV6_V6ONLY itself.

TCP: connect() and close at once (the service sees a connection that ends cleanly, but one that
never accepts keeps it in its accept queue, and a firewall that drops it costs the time limit).
UDP: a bind test, never a datagram: binding the address and port fails with EADDRINUSE when a
socket already receives there. Both are used only on ports the tables list, never as a sweep.
"""

import errno
import socket

from portwarden import limits
from portwarden.audit.interfaces import Interface


def tcp_accepts(
    interface: Interface, port: int, timeout: float = limits.AUDIT_CONNECT_TIMEOUT_S
) -> bool | None:
    """True if a connection to the port on this address is accepted, False if refused, None if
    neither could be learnt (a firewall dropped it, or the address went away)."""
    family = socket.AF_INET if interface.address.version == 4 else socket.AF_INET6
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            code = sock.connect_ex(interface.sockaddr(port))
    except OSError:
        return None
    if code == 0:
        return True
    return False if code == errno.ECONNREFUSED else None


def udp_taken(interface: Interface, port: int) -> bool | None:
    """True if a UDP socket already receives on this address and port; None if unknown."""
    family = socket.AF_INET if interface.address.version == 4 else socket.AF_INET6
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(interface.sockaddr(port))
        except OSError as error:
            return True if error.errno == errno.EADDRINUSE else None
    return False
