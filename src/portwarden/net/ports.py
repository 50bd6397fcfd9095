"""Which ports have a service right now: the kernel's socket tables, and a bind test.

A service is what a scanner would find open: a listening TCP socket, or a UDP socket not
connected to one peer. A TCP client's socket is none: a SYN to the local port of an outbound
connection (or of one in TIME_WAIT) is answered with a reset.

A service is open at the addresses it is bound to, so it is judged per destination address:
one bound to the wildcard of its family (0.0.0.0, ::) or to the probe's destination address
serves the probe, and an IPv6 wildcard without IPV6_V6ONLY takes IPv4 too. A service on
127.0.0.1:25 (exim4's default) or 127.0.0.53:53 (systemd-resolved) is closed to a scanner
outside, and so is an IPv4-only one to a scanner over IPv6: their ports stay tripwires there.

`verify` is PortSentry's "SmartVerify", run for every probe so that a service started a
moment ago is never mistaken for a tripwire. PortSentry bound the port and took a failure for
"in use"; that bind test is still the first step (one system call pair, and a port nobody
holds is the common case), now to the probe's destination address, and a port it finds held
is then asked of the socket tables.
"""

import enum
import errno
import socket
from collections.abc import Callable, Set
from pathlib import Path

from portwarden.net.addresses import Proto
from portwarden.net.diagfilter import compile_filter, port_is
from portwarden.net.sockdiag import TCP_LISTEN_ONLY, UDP_UNCONNECTED, socket_ports, sockets

_PROC = Path("/proc/net")
_TCP_LISTEN = "0A"
_UDP_UNCONNECTED = "07"
_PROC_INODE = 9  # the socket's inode: the tenth field of a line of /proc/net/tcp
_LOCAL_PORT_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_RESERVED_PORTS = Path("/proc/sys/net/ipv4/ip_local_reserved_ports")
LINUX_LOCAL_PORTS = range(32768, 61000)  # the kernel's default range
_IP_FREEBIND = 15  # linux/in.h; not in Python's socket module

# A port with a service, and the address it serves (packed; all zeros: every address of its
# family). Bytes, not address objects: a packet's destination is looked up as it came.
Service = tuple[int, bytes]
ANY4, ANY6 = bytes(4), bytes(16)


def wildcard(address: bytes) -> bytes:
    """The wildcard address of `address`'s family."""
    return ANY4 if len(address) == 4 else ANY6


def serves(services: frozenset[Service], port: int, address: bytes) -> bool:
    """Whether one of `services` takes what comes to `address` (packed) and `port`."""
    return (port, address) in services or (port, wildcard(address)) in services


def services(
    proto: Proto, port: int | None = None, leave_out: Set[int] = frozenset()
) -> frozenset[Service]:
    """Every service of `proto` (see bound_ports), or those on `port` alone, with the address
    it serves: an IPv6 wildcard without IPV6_V6ONLY serves both families. A socket tied to one
    device (SO_BINDTODEVICE) counts as serving its address on every device: a port is rather
    left alone than watched where a service may answer. Without sock_diag (a kernel without
    inet_diag) every port with a service counts as served on every address, as before. With
    `port` the kernel sends only that port's sockets (a probe's check must not walk a local
    user's thousands of sockets). The sockets whose inode is in `leave_out` are no service
    (the classic modes' tripwires: see HostView.own)."""
    protocol, states = (
        (socket.IPPROTO_TCP, TCP_LISTEN_ONLY)
        if proto is Proto.TCP
        else (socket.IPPROTO_UDP, UDP_UNCONNECTED)
    )
    program = b"" if port is None else compile_filter(port_is(port))
    try:
        found = list(sockets(protocol, states, program))
    except OSError:
        return frozenset(
            (bound, any_address)
            for bound in bound_ports_from_proc(proto, leave_out)
            for any_address in (ANY4, ANY6)
            if port in (None, bound)
        )
    served: set[Service] = set()
    for sock in found:
        if sock.inode in leave_out:
            continue
        address = sock.address.packed
        served.add((sock.port, address))
        if address == ANY6 and not sock.v6only:
            served.add((sock.port, ANY4))
    return frozenset(served)


def bound_ports(proto: Proto) -> frozenset[int]:
    """Ports with a service: TCP with a listening socket, UDP with an unconnected socket (IPv4
    and IPv6)."""
    try:
        if proto is Proto.TCP:
            return socket_ports(socket.IPPROTO_TCP, TCP_LISTEN_ONLY)
        return socket_ports(socket.IPPROTO_UDP, UDP_UNCONNECTED)
    except OSError:
        return bound_ports_from_proc(proto)  # a kernel without inet_diag: slower, same answer


def bound_ports_from_proc(proto: Proto, leave_out: Set[int] = frozenset()) -> frozenset[int]:
    """The same from /proc/net/{tcp,udp}{,6}: milliseconds on a big host (see sockdiag); the
    sockets whose inode is in `leave_out` left out."""
    found: set[int] = set()
    wanted = _TCP_LISTEN if proto is Proto.TCP else _UDP_UNCONNECTED
    for name in (proto.value, proto.value + "6"):
        try:
            lines = (_PROC / name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < _PROC_INODE + 1:
                continue
            if fields[3] != wanted or int(fields[_PROC_INODE]) in leave_out:
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


def verify(proto: Proto, dst: bytes, dport: int, witness: Witness | None = None) -> Owner:
    """SmartVerify: who has the local port `dport` of address `dst` (packed) at this moment.

    A port that TCP clients alone have (the source port of an outbound connection) is closed
    to a scanner (the kernel answers a SYN with a reset): a tripwire. A UDP port that connected
    sockets alone have (a DNS or NTP query's source port) is left alone while they have it, as
    PortSentry did (its bind test failed): a reply to the client cannot be told reliably from a
    probe (the kernel's socket lookup misses sockets tied to an interface, as every one
    connected to a link-local peer is), and a lookup per packet would let a flood to that port
    cost a socket table walk per packet. Neither starts SERVICE_GONE_GRACE. `witness` is
    shown the bind test's sockets (see port_in_use)."""
    if not port_in_use(proto, dst, dport, witness):
        return Owner.NOBODY
    if serves(services(proto, dport), dport, dst):
        return Owner.SERVICE
    return Owner.CLIENTS if proto is Proto.TCP else Owner.UDP_CLIENTS


def port_in_use(proto: Proto, address: bytes, port: int, witness: Witness | None = None) -> bool:
    """True when some socket has `port` where a packet to `address` (packed) would reach it:
    bound to that address, to its family's wildcard, or (IPv4) to the IPv6 wildcard without
    IPV6_V6ONLY; a service or a client's socket. A bind to the address itself tells: IPv6
    with IPV6_V6ONLY, so an IPv4 socket does not count, and with IP_FREEBIND, so an address
    that went away a moment ago is no error. A link-local IPv6 address cannot be bound
    without its device: its family's wildcard is tried instead (every IPv6 socket on the
    port counts). `witness` sees the test's socket before it closes (the kernel's notice of
    its close is ours, not a client's). Port 0 never is (a bind to it picks a free port)."""
    if port == 0:
        return False
    kind = socket.SOCK_STREAM if proto is Proto.TCP else socket.SOCK_DGRAM
    family = socket.AF_INET if len(address) == 4 else socket.AF_INET6
    text = socket.inet_ntop(family, address)
    if family == socket.AF_INET6 and address[0] == 0xFE and address[1] & 0xC0 == 0x80:
        text = "::"  # fe80::/10
    try:
        sock = socket.socket(family, kind)
    except OSError:
        return False
    with sock:
        if proto is Proto.TCP:
            # With SO_REUSEADDR only a listener conflicts, not connections in TIME_WAIT.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_IP, _IP_FREEBIND, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            sock.bind((text, port))
        except OSError as error:
            return error.errno in (errno.EADDRINUSE, errno.EACCES)
        finally:
            if witness is not None:
                witness(sock)
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
