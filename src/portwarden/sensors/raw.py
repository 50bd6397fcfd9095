"""Stealth (-stcp, -sudp) and advanced (-atcp, -audp) modes: raw IP sockets, nothing bound.

A raw IP socket gets a copy of each packet after the firewall's input hook, so a source that
nftables already drops costs nothing here; a kernel filter passes only what can be a probe.
"""

import ipaddress
import logging
import socket
import struct
import time
from collections import deque
from collections.abc import Callable

from portwarden import limits
from portwarden.detect.probe import Probe, packet_probe
from portwarden.net import bpf
from portwarden.net.addresses import Proto
from portwarden.net.buffers import make_room
from portwarden.net.drops import dropped
from portwarden.net.packet import (
    IPPROTO_TCP,
    IPPROTO_UDP,
    MalformedPacket,
    Packet,
    parse_ipv4,
    parse_transport,
)
from portwarden.net.ports import ANY4, ANY6, Owner, Service, serves, verify, wildcard
from portwarden.net.udpcloses import UdpCloses
from portwarden.sensors.hostview import HostView
from portwarden.sensors.sockets import close_all

log = logging.getLogger("portwarden")

# Linux's SO_TIMESTAMPNS (SCM_TIMESTAMPNS, a struct timespec of two longs) on x86, ARM and
# the other asm-generic architectures; not in Python's socket module.
_SO_TIMESTAMPNS = 35
_TIMESPEC = struct.Struct("=qq")
_ANCILLARY_SPACE = (
    socket.CMSG_SPACE(20) + 2 * socket.CMSG_SPACE(256) + socket.CMSG_SPACE(_TIMESPEC.size)
)
_OPTION_HEADERS = (socket.IPV6_HOPOPTS, socket.IPV6_DSTOPTS)


class RawSensor:
    """One protocol, IPv4 and IPv6. `candidates` gives the ports to watch (before SmartVerify).

    A port is a tripwire at one address: a service on 127.0.0.1 or an IPv4-only one leaves it
    a tripwire for 198.18.0.1 or over IPv6 (see net/ports.py). The kernel filter of each
    family's socket passes a candidate port while none of this host's addresses of that family
    (loopback aside: no scanner reaches it) has a service on it; which destination has one is
    decided here, per packet, from the services the last refresh saw, then SmartVerify.

    A service that was seen stays out of the tripwires for `grace_s` after the service went
    (0: not at all): a service that stops or restarts leaves its clients reconnecting, and they
    are no scanners (PortSentry never watched a port that was in use at its start). A client's
    socket on the port (an outbound connection, a connected UDP socket) is no service and
    starts no grace: else one DNS query from a tripwire port would switch it off. The times
    are the host view's (HostView.served_at), so the sensors a reload makes go on with them.

    UDP: this host's clients take their reply and often close before we read our copy of it,
    so SmartVerify finds the port free. The kernel's notices of closing UDP sockets (UdpCloses)
    go to HostView.closed_clients, which tells a reply (see ClosedClients.replied) by the
    kernel's arrival time of each datagram. The notice comes from a workqueue, a little after
    the close, so a datagram to a free UDP tripwire is held for limits.UDP_CLOSE_NOTICE_S (see
    `release`) and judged with every notice read by then. A close starts no grace: the socket
    of a client that closed is no service gone.
    """

    def __init__(
        self,
        proto: Proto,
        mode: str,
        candidates: frozenset[int],
        host: HostView,
        grace_s: float,
        reply_sources: frozenset[int] = frozenset(),
    ) -> None:
        self.proto = proto
        self._reply_sources = reply_sources  # UDP_REPLY_SOURCE_PORTS (see ClosedClients)
        self.mode = mode
        self._candidates = candidates
        self._host = host
        self._grace_s = grace_s
        self._served_at = host.served_at[proto]
        number = IPPROTO_TCP if proto is Proto.TCP else IPPROTO_UDP
        self._filter: Callable[..., list[bpf.Insn]] = (
            bpf.tcp_filter if proto is Proto.TCP else bpf.udp_filter
        )
        self.sockets: dict[int, socket.socket] = {}
        self.packets_read = 0  # what the kernel filter passed and we read, probes or not
        self._v6: set[int] = set()
        # (port, destination address): a tripwire or not, and when that was decided
        self._decided: dict[Service, tuple[bool, float]] = {}
        self._closes: UdpCloses | None = None
        self._held: deque[tuple[float, Probe]] = deque()  # (when to judge it, the probe)
        self._said_lost = False
        self._buffer = bytearray(limits.CAPTURE_BYTES)
        self._watched: tuple[frozenset[int], frozenset[int]] = (frozenset(), frozenset())
        try:
            for family in (socket.AF_INET, socket.AF_INET6):
                self._open_socket(family, number)
            self._closes = _hear_closes() if proto is Proto.UDP else None
            self._attach(self.tripwires())
            for fd in self.sockets:  # packets queued before the filter was attached
                self._drain(fd)
        except BaseException:
            self.close()  # a sensor that failed half-made holds no socket
            raise

    def _open_socket(self, family: socket.AddressFamily, number: int) -> None:
        """The raw socket of one family, in `sockets` as soon as it exists (so `close` closes
        it, whatever fails next). No IPv6 socket is a warning, no IPv4 one an OSError."""
        try:
            sock = socket.socket(family, socket.SOCK_RAW, number)
        except OSError as error:
            if family != socket.AF_INET6:
                raise
            log.warning("no IPv6 %s sensor: %s", self.proto.value, error)
            return
        self.sockets[sock.fileno()] = sock
        make_room(sock)
        if self.proto is Proto.UDP:  # the kernel's arrival time of each datagram
            sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPOPTS, 1)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVDSTOPTS, 1)
            self._v6.add(sock.fileno())
        sock.setblocking(False)

    @property
    def fds(self) -> list[int]:
        """The descriptors the loop waits on: the raw sockets, and the notices of UDP sockets
        closing."""
        return [*self.sockets, *([self._closes.sock.fileno()] if self._closes else [])]

    @property
    def watched(self) -> frozenset[int]:
        """The ports the kernel filters pass, of either family."""
        return self._watched[0] | self._watched[1]

    def tripwires(self) -> tuple[frozenset[int], frozenset[int]]:
        """The candidates the kernel filter of each family (IPv4, IPv6) passes: those without
        a service, now or within the grace period, on any address of that family but loopback
        (a service on one of this host's addresses keeps its port out of the filter for the
        others too: else every datagram or SYN of its clients would cost a trip to Python)."""
        now = time.monotonic()
        bound = self._host.bound(self.proto)
        if self._grace_s:
            # Every service, not only the candidates': a reload may add its port to them.
            for service in bound:
                self._served_at[service] = now
            for gone in [k for k, at in self._served_at.items() if now - at >= self._grace_s]:
                del self._served_at[gone]
        else:  # off (perhaps since a reload): no port is kept out by an earlier time
            self._served_at.clear()
        served: dict[int, set[bytes]] = {}
        for port, address in bound.union(self._served_at):
            served.setdefault(port, set()).add(address)
        addresses = [a for a in self._host.addresses if not a.is_loopback]
        found = []
        for version, any_address in ((4, ANY4), (6, ANY6)):
            mine = {a.packed for a in addresses if a.version == version}
            outside = {port for port, at in served.items() if any_address in at or mine & at}
            found.append(self._candidates.difference(outside))
        return found[0], found[1]

    def packets_dropped(self) -> int:
        """Packets the kernel dropped before we read them: the receive buffer was full."""
        return dropped(self.sockets.values())

    def refresh(self) -> None:
        """Re-attach the kernel filter when the set of tripwire ports has changed."""
        self._host.closed_clients.expire(time.time())
        ports = self.tripwires()
        if ports != self._watched:
            self._attach(ports)

    def _attach(self, ports: tuple[frozenset[int], frozenset[int]]) -> None:
        for fd, sock in self.sockets.items():
            v4 = fd not in self._v6
            bpf.attach(sock, self._filter(ports[0] if v4 else ports[1], v4))
        self._watched = ports

    def read(self, fd: int) -> list[Probe]:
        """Up to PACKETS_PER_TURN_MAX packets from one socket, as probes (a datagram to a
        free UDP tripwire comes out of `release` instead)."""
        if self._closes is not None and fd == self._closes.sock.fileno():
            self._note_closes()
            return []
        sock = self.sockets[fd]
        v6 = fd in self._v6
        probes = []
        now = arrived = time.time()
        for _ in range(limits.PACKETS_PER_TURN_MAX):
            try:
                if v6 or self.proto is Proto.UDP:
                    # MSG_TRUNC: the size as the kernel filter passed it, not what fits the
                    # buffer (a UDP datagram whole, a TCP segment cut to CAPTURE_BYTES).
                    size, ancillary, _, address = sock.recvmsg_into(
                        [self._buffer], _ANCILLARY_SPACE, socket.MSG_TRUNC
                    )
                    data = bytes(self._buffer[: min(size, limits.CAPTURE_BYTES)])
                    arrived = _arrival(ancillary) or now
                    packet = self._parse(data, size, ancillary, address) if v6 else parse_ipv4(data)
                else:
                    packet = parse_ipv4(sock.recv(limits.CAPTURE_BYTES))
            except (BlockingIOError, InterruptedError):
                break
            except MalformedPacket:
                self.packets_read += 1
                continue
            self.packets_read += 1
            probe = self._probe(packet, arrived)
            if probe is None:
                continue
            if self._closes is not None and probe.tripwire:
                probes.extend(self._hold(probe))
            else:
                probes.append(probe)
        return probes

    def _hold(self, probe: Probe) -> list[Probe]:
        """Keep a datagram to a free UDP tripwire until a notice of its port's socket closing
        can have come; when too many wait, the oldest is judged now."""
        self._held.append((time.monotonic() + limits.UDP_CLOSE_NOTICE_S, probe))
        if len(self._held) <= limits.UDP_HELD_MAX:
            return []
        return self._judged([self._held.popleft()[1]])  # no read of the notices per packet

    def next_release(self) -> float | None:
        """When `release` has something to judge (monotonic), or None."""
        return self._held[0][0] if self._held else None

    def release(self, now: float) -> list[Probe]:
        """The held datagrams whose time has come (all with `now` = inf), judged with every
        notice of a UDP socket closing read so far: a reply to a client that has closed is
        no probe (an OS probe among them is still reported, as one to a port not watched)."""
        due = []
        while self._held and self._held[0][0] <= now:
            due.append(self._held.popleft()[1])
        if not due:
            return []
        self._note_closes(drain=True)
        return self._judged(due)

    def _judged(self, held: list[Probe]) -> list[Probe]:
        found = []
        now = time.time()
        for probe in held:
            if not self._host.closed_clients.replied(
                probe.dport, probe.src, probe.sport, probe.seen_at, now, self._reply_sources
            ):
                found.append(probe)
            elif probe.os_tool is not None:
                found.append(probe._replace(tripwire=False))
        return found

    def _note_closes(self, drain: bool = False) -> None:
        """Read the notices of UDP sockets closing into the host view's closed clients."""
        if self._closes is None:
            return
        now = time.time()
        for close in self._closes.read(drain):
            self._host.closed_clients.add(close.port, close.peer, close.peer_port, now)
        if self._closes.lost and not self._said_lost:
            self._said_lost = True
            log.warning(
                "udp: the kernel dropped notices of this host's UDP sockets closing (a "
                "burst of closes): a reply to a client that closed then may have been "
                "taken for a probe; said once"
            )

    def _parse(self, data: bytes, size: int, ancillary: list, address: tuple) -> Packet:
        dst, options = b"", False
        for level, kind, value in ancillary:
            if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO:
                dst = value[:16]
            elif level == socket.IPPROTO_IPV6 and kind in _OPTION_HEADERS:
                options = True
        if len(dst) != 16:
            raise MalformedPacket("no destination address")
        src = ipaddress.IPv6Address(address[0].partition("%")[0]).packed
        number = IPPROTO_TCP if self.proto is Proto.TCP else IPPROTO_UDP
        return parse_transport(number, data, src, dst, ip_options=options, length=size)

    def _probe(self, packet: Packet, now: float) -> Probe | None:
        dst = ipaddress.ip_address(packet.dst)
        if dst not in self._host.addresses:
            return None  # broadcast, multicast, or an address we no longer have
        return packet_probe(packet, dst, self.mode, self._tripwire, self._open, now)

    def _tripwire(self, dst: bytes, port: int) -> bool:
        """Whether `port` of address `dst` (packed) is a tripwire at this moment. The answer
        is reused for PORT_FREE_CACHE_S, so a flood to one port costs one check per interval
        (and a packet of a flood to many costs a dictionary lookup more than a port number)."""
        if port not in self._watched[len(dst) != 4]:
            return False
        now = time.monotonic()
        key = (port, dst)
        known = self._decided.get(key)
        if known is not None and now - known[1] < limits.PORT_FREE_CACHE_S:
            return known[0]
        # A service the last refresh saw for `dst` (the filter passes its port while only a
        # loopback address has one, or until the next refresh re-attaches it), then the grace.
        found = (
            not self._open(dst, port)
            and not self._served_lately(dst, port, now)
            and self._free(dst, port, now)
        )
        if len(self._decided) >= limits.FREE_PORTS_CACHED_MAX:
            self._decided.clear()
        self._decided[key] = (found, now)
        return found

    def _open(self, dst: bytes, port: int) -> bool:
        """A service had the port for `dst` at the last refresh."""
        return serves(self._host.bound(self.proto), port, dst)

    def _served_lately(self, dst: bytes, port: int, now: float) -> bool:
        """The port had a service for `dst` within the grace, seen by a refresh or at probe
        time: a service that came and went between two refreshes leaves its clients
        reconnecting."""
        if not self._served_at:
            return False
        for address in (dst, wildcard(dst)):
            at = self._served_at.get((port, address))
            if at is not None and now - at < self._grace_s:
                return True
        return False

    def _free(self, dst: bytes, port: int, now: float) -> bool:
        """SmartVerify: no service for `dst` on the port right now (see ports.verify)."""
        owner = verify(self.proto, dst, port, self._closes.own if self._closes else None)
        if owner is Owner.SERVICE and self._grace_s:
            self._served_at[(port, dst)] = now
        return owner.tripwire

    def _drain(self, fd: int) -> None:
        try:
            while self.sockets[fd].recv(limits.CAPTURE_BYTES):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        close_all(self.sockets)
        if self._closes is not None:
            self._closes.close()
            self._closes = None


def _arrival(ancillary: list[tuple[int, int, bytes]]) -> float | None:
    """The kernel's arrival time of a packet (SO_TIMESTAMPNS), wall clock."""
    for level, kind, value in ancillary:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(value) >= 16:
            seconds, nanoseconds = _TIMESPEC.unpack_from(value)
            return float(seconds + nanoseconds / 1e9)
    return None


def _hear_closes() -> UdpCloses | None:
    try:
        return UdpCloses()
    except OSError as error:
        log.warning(
            "udp: no notice of this host's UDP sockets closing (%s): a reply to a "
            "client that closes at once may be taken for a probe",
            error.strerror or error,
        )
        return None
