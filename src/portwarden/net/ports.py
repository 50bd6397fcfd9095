"""Which ports have a service right now: the kernel's socket tables, and a bind test.

A service is what a scanner would find open: a listening TCP socket, or a UDP socket not
connected to one peer. A TCP client's socket is none: a SYN to the local port of an outbound
connection (or of one in TIME_WAIT) is answered with a reset.

`verify` is PortSentry's "SmartVerify", run for every probe so that a service started a
moment ago is never mistaken for a tripwire. PortSentry bound the port and took a failure for
"in use"; that bind test is still the first step (one system call pair, and a port nobody
holds is the common case), and a port it finds held is then asked of the socket tables.
"""

import enum
import errno
import socket
from collections.abc import Callable
from pathlib import Path

from portwarden.detect.probe import Proto
from portwarden.net.sockdiag import TCP_LISTEN_ONLY, UDP_UNCONNECTED, socket_ports

_PROC = Path("/proc/net")
_TCP_LISTEN = "0A"
_UDP_UNCONNECTED = "07"
_LOCAL_PORT_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_RESERVED_PORTS = Path("/proc/sys/net/ipv4/ip_local_reserved_ports")
LINUX_LOCAL_PORTS = range(32768, 61000)  # the kernel's default range


def bound_ports(proto: Proto) -> frozenset[int]:
    """Ports with a service: TCP with a listening socket, UDP with an unconnected socket (IPv4
    and IPv6)."""
    try:
        if proto is Proto.TCP:
            return socket_ports(socket.IPPROTO_TCP, TCP_LISTEN_ONLY)
        return socket_ports(socket.IPPROTO_UDP, UDP_UNCONNECTED)
    except OSError:
        return bound_ports_from_proc(proto)  # a kernel without inet_diag: slower, same answer


def bound_ports_from_proc(proto: Proto) -> frozenset[int]:
    """The same from /proc/net/{tcp,udp}{,6}: milliseconds on a big host (see sockdiag)."""
    found: set[int] = set()
    wanted = _TCP_LISTEN if proto is Proto.TCP else _UDP_UNCONNECTED
    for name in (proto.value, proto.value + "6"):
        try:
            lines = (_PROC / name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 4:
                continue
            if fields[3] != wanted:
                continue
            found.add(int(fields[1].rpartition(":")[2], 16))
    return frozenset(found)


class Owner(enum.Enum):
    """Who has a port, as `verify` finds it."""

    NOBODY = "nobody"  # no socket has the port: a tripwire
    CLIENTS = "clients"  # only TCP clients' sockets (outbound connections, TIME_WAIT): a tripwire
    UDP_CLIENTS = "udp clients"  # only connected UDP sockets: left alone while they have it
    SERVICE = "service"  # a listener, an unconnected UDP socket: not a tripwire

    @property
    def tripwire(self) -> bool:
        return self in (Owner.NOBODY, Owner.CLIENTS)


Witness = Callable[[socket.socket], None]  # told of each test socket before it closes


def verify(proto: Proto, dport: int, witness: Witness | None = None) -> Owner:
    """SmartVerify: who has the local port `dport` at this moment.

    A port that TCP clients alone have (the source port of an outbound connection) is closed
    to a scanner (the kernel answers a SYN with a reset): a tripwire. A UDP port that connected
    sockets alone have (a DNS or NTP query's source port) is left alone while they have it, as
    PortSentry did (its bind test failed): a reply to the client cannot be told reliably from a
    probe (the kernel's socket lookup misses sockets tied to an interface, as every one
    connected to a link-local peer is), and a lookup per packet would let a flood to that port
    cost a socket table walk per packet. Neither starts SERVICE_GONE_GRACE. `witness` is
    shown the bind test's sockets (see port_in_use)."""
    if not port_in_use(proto, dport, witness):
        return Owner.NOBODY
    if dport in bound_ports(proto):
        return Owner.SERVICE
    return Owner.CLIENTS if proto is Proto.TCP else Owner.UDP_CLIENTS


def port_in_use(proto: Proto, port: int, witness: Witness | None = None) -> bool:
    """True when some socket has `port` (any address, IPv4 or IPv6) at this moment: a service
    or a client's socket. `witness` sees each socket of the test before it closes (the
    kernel's notice of its close is ours, not a client's)."""
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
            finally:
                if witness is not None:
                    witness(sock)
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


def reserved_local_ports() -> frozenset[int]:
    """The ports the kernel never gives a client although they are in the local port range
    (net.ipv4.ip_local_reserved_ports, e.g. `32770-32774,34555`), for IPv6 too."""
    ports: set[int] = set()
    try:
        for item in _RESERVED_PORTS.read_text().split(","):
            low, _, high = item.strip().partition("-")
            if low:
                ports.update(range(int(low), int(high or low) + 1))
    except (OSError, ValueError):
        return frozenset()
    return frozenset(ports)
