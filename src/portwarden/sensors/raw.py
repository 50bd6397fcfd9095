"""Stealth (-stcp, -sudp) and advanced (-atcp, -audp) modes: raw IP sockets, nothing bound.

A raw IP socket gets a copy of each packet after the firewall's input hook, so a source that
nftables already drops costs nothing here; a kernel filter passes only what can be a probe.
"""

import ipaddress
import logging
import socket
import time
from collections.abc import Callable

from portwarden import limits
from portwarden.detect.probe import Probe, Proto, packet_probe
from portwarden.net import bpf
from portwarden.net.drops import dropped
from portwarden.net.packet import (
    IPPROTO_TCP,
    IPPROTO_UDP,
    MalformedPacket,
    Packet,
    parse_ipv4,
    parse_transport,
)
from portwarden.net.ports import Owner, verify
from portwarden.sensors.hostview import HostView

log = logging.getLogger("portwarden")

_ANCILLARY_SPACE = socket.CMSG_SPACE(20) + 2 * socket.CMSG_SPACE(256)
_OPTION_HEADERS = (socket.IPV6_HOPOPTS, socket.IPV6_DSTOPTS)


class RawSensor:
    """One protocol, IPv4 and IPv6. `candidates` gives the ports to watch (before SmartVerify).

    A port that had a service stays out of the tripwires for `grace_s` after the service went
    (0: not at all): a service that stops or restarts leaves its clients reconnecting, and they
    are no scanners (PortSentry never watched a port that was in use at its start). A client's
    socket on the port (an outbound connection, a connected UDP socket) is no service and
    starts no grace: else one DNS query from a tripwire port would switch it off. The times
    are the host view's (HostView.served_at), so the sensors a reload makes go on with them.
    """

    def __init__(self, proto: Proto, mode: str, candidates: frozenset[int], host: HostView,
                 grace_s: float) -> None:  # fmt: skip
        self.proto = proto
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
        for family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock = socket.socket(family, socket.SOCK_RAW, number)
            except OSError as error:
                if family == socket.AF_INET6:
                    log.warning("no IPv6 %s sensor: %s", proto.value, error)
                    continue
                raise
            _make_room(sock)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPOPTS, 1)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVDSTOPTS, 1)
                self._v6.add(sock.fileno())
            sock.setblocking(False)
            self.sockets[sock.fileno()] = sock
        self._verified: dict[int, tuple[Owner, float]] = {}  # port: who has it, when asked
        self._buffer = bytearray(limits.CAPTURE_BYTES)
        self.watched = self._attach(self.tripwires())
        for fd in self.sockets:  # packets queued before the filter was attached
            self._drain(fd)

    def tripwires(self) -> frozenset[int]:
        """The candidates without a service now or within the grace period."""
        now = time.monotonic()
        bound = self._host.bound(self.proto)
        if self._grace_s:
            # Every service, not only the candidates': a reload may add its port to them.
            for port in bound:
                self._served_at[port] = now
            for port in [p for p, at in self._served_at.items() if now - at >= self._grace_s]:
                del self._served_at[port]
        else:  # off (perhaps since a reload): no port is kept out by an earlier time
            self._served_at.clear()
        return self._candidates.difference(bound, self._served_at)

    def packets_dropped(self) -> int:
        """Packets the kernel dropped before we read them: the receive buffer was full."""
        return dropped(self.sockets.values())

    def refresh(self) -> None:
        """Re-attach the kernel filter when the set of tripwire ports has changed."""
        ports = self.tripwires()
        if ports != self.watched:
            self.watched = self._attach(ports)

    def _attach(self, ports: frozenset[int]) -> frozenset[int]:
        for fd, sock in self.sockets.items():
            bpf.attach(sock, self._filter(ports, fd not in self._v6))
        return ports

    def read(self, fd: int) -> list[Probe]:
        """Up to PACKETS_PER_TURN_MAX packets from one socket, as probes."""
        sock = self.sockets[fd]
        v6 = fd in self._v6
        probes = []
        now = time.time()
        for _ in range(limits.PACKETS_PER_TURN_MAX):
            try:
                if v6:
                    # MSG_TRUNC: the size as the kernel filter passed it, not what fits the
                    # buffer (a UDP datagram whole, a TCP segment cut to CAPTURE_BYTES).
                    size, ancillary, _, address = sock.recvmsg_into(
                        [self._buffer], _ANCILLARY_SPACE, socket.MSG_TRUNC)  # fmt: skip
                    data = bytes(self._buffer[: min(size, limits.CAPTURE_BYTES)])
                    packet = self._parse(data, size, ancillary, address)
                else:
                    packet = parse_ipv4(sock.recv(limits.CAPTURE_BYTES))
            except (BlockingIOError, InterruptedError):
                break
            except MalformedPacket:
                self.packets_read += 1
                continue
            self.packets_read += 1
            probe = self._probe(packet, now)
            if probe is not None:
                probes.append(probe)
        return probes

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
        return packet_probe(packet, dst, self.mode, self._tripwire, now)

    def _tripwire(self, port: int) -> bool:
        return port in self.watched and self._free(port)

    def _free(self, port: int) -> bool:
        """SmartVerify: no service on the port right now (see ports.verify). The answer is
        reused for PORT_FREE_CACHE_S, so a flood to one port costs one check per interval."""
        now = time.monotonic()
        known = self._verified.get(port)
        if known is not None and now - known[1] < limits.PORT_FREE_CACHE_S:
            return known[0].tripwire
        owner = verify(self.proto, port)
        if len(self._verified) >= limits.FREE_PORTS_CACHED_MAX:
            self._verified.clear()
        self._verified[port] = (owner, now)
        if owner is Owner.SERVICE and self._grace_s:
            self._served_at[port] = now
        return owner.tripwire

    def _drain(self, fd: int) -> None:
        try:
            while self.sockets[fd].recv(limits.CAPTURE_BYTES):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        for sock in self.sockets.values():
            sock.close()
        self.sockets.clear()


_SO_RCVBUFFORCE = 33  # Linux; not in Python's socket module


def _make_room(sock: socket.socket) -> None:
    """RAW_RCVBUF_BYTES of receive buffer: with SO_RCVBUFFORCE (CAP_NET_ADMIN, as the daemon
    runs) past net.core.rmem_max, which is 208 KiB on a stock kernel (some 270 packets);
    without the capability, SO_RCVBUF, which the kernel clamps to rmem_max."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, limits.RAW_RCVBUF_BYTES)
    except PermissionError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, limits.RAW_RCVBUF_BYTES)
