"""Which ports have a service right now: the kernel's socket tables, and a bind test.

The bind test is PortSentry's "SmartVerify": a port that cannot be bound has a service (or a
client socket on it) and is not a tripwire. It is one system call pair, cheap enough to run
for every probe, so a service started a moment ago is never mistaken for a tripwire.
"""

import errno
import socket
from pathlib import Path

from portwarden.detect.probe import Proto
from portwarden.net.sockdiag import ANY_STATE, TCP_LISTEN_ONLY, socket_ports

_PROC = Path("/proc/net")
_TCP_LISTEN = "0A"
_LOCAL_PORT_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LINUX_LOCAL_PORTS = range(32768, 61000)  # the kernel's default range


def bound_ports(proto: Proto) -> frozenset[int]:
    """TCP ports with a listening socket, or UDP ports with any socket, IPv4 and IPv6."""
    try:
        if proto is Proto.TCP:
            return socket_ports(socket.IPPROTO_TCP, TCP_LISTEN_ONLY)
        return socket_ports(socket.IPPROTO_UDP, ANY_STATE)
    except OSError:
        return bound_ports_from_proc(proto)  # a kernel without inet_diag: slower, same answer


def bound_ports_from_proc(proto: Proto) -> frozenset[int]:
    """The same from /proc/net/{tcp,udp}{,6}: milliseconds on a big host (see sockdiag)."""
    found: set[int] = set()
    for name in (proto.value, proto.value + "6"):
        try:
            lines = (_PROC / name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 4:
                continue
            if proto is Proto.TCP and fields[3] != _TCP_LISTEN:
                continue
            found.add(int(fields[1].rpartition(":")[2], 16))
    return frozenset(found)


def port_in_use(proto: Proto, port: int) -> bool:
    """True when something owns `port` (any address, IPv4 or IPv6) at this moment."""
    kind = socket.SOCK_STREAM if proto is Proto.TCP else socket.SOCK_DGRAM
    for family, address in ((socket.AF_INET6, "::"), (socket.AF_INET, "0.0.0.0")):
        try:
            sock = socket.socket(family, kind)
        except OSError:
            continue
        with sock:
            if proto is Proto.TCP:
                # With SO_REUSEADDR only a listener conflicts, not connections in TIME_WAIT.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            try:
                sock.bind((address, port))
            except OSError as error:
                return error.errno in (errno.EADDRINUSE, errno.EACCES)
            return False
    return False


def local_port_range() -> range:
    """The ports this host's own clients get (net.ipv4.ip_local_port_range, for IPv6 too), so
    where replies to them arrive."""
    try:
        low, high = (int(word) for word in _LOCAL_PORT_RANGE.read_text().split())
    except (OSError, ValueError):
        return LINUX_LOCAL_PORTS
    return range(low, high + 1)
