"""Classic modes (-tcp, -udp): bind every configured port; a connection or datagram is a probe.

Each port gets one dual-stack socket (IPv6 with IPv4-mapped addresses), so IPv4 and IPv6 are
both covered. A port some service already owns is reported once and skipped. Only datagrams to
one of this host's own addresses are probes, as in the raw modes: a bound socket also gets
broadcasts and multicast. A source no host can send from is not a probe either, as in the raw
modes; on a dual-stack socket an IPv4 peer shows as `::ffff:a.b.c.d`, and so does an IPv6
datagram forged from that source: only the destination tells them apart (IPv4-mapped for a
real IPv4 datagram, native IPv6 for the forged one).
"""

import contextlib
import errno
import ipaddress
import logging
import socket
import time

from portwarden import limits
from portwarden.descriptors import OUT_OF_DESCRIPTORS, DescriptorShortage
from portwarden.detect.probe import CONNECT_SCAN, UDP_SCAN, Probe, os_probe_name, udp_os_tool
from portwarden.net.addresses import IPAddress, Proto
from portwarden.net.drops import dropped
from portwarden.net.local import unmapped
from portwarden.net.packet import Packet, can_send_from
from portwarden.sensors.hostview import HostView
from portwarden.sensors.sockets import close_all

log = logging.getLogger("portwarden")

IP_PKTINFO = 8  # Linux's value; not exported by every Python build
_PKTINFO_SPACE = socket.CMSG_SPACE(20) + socket.CMSG_SPACE(12)


def _as_shown(text: str) -> IPAddress:
    """An address as the dual-stack socket gives it (IPv4 peers IPv4-mapped), scope removed."""
    return ipaddress.ip_address(text.partition("%")[0])


def _sender(peer: IPAddress, local: IPAddress) -> IPAddress | None:
    """The source of a datagram or connection from `peer` to `local`, both as the socket shows
    them; None for a forged one: an IPv4-mapped peer to a native IPv6 address (an IPv6 packet
    that claims an IPv4 source), or a source no host can send from."""
    source = unmapped(peer)
    if source.version != peer.version and unmapped(local).version == 6:
        return None
    return source if can_send_from(source.packed) else None


def _bind(proto: Proto, port: int) -> socket.socket:
    kind = socket.SOCK_STREAM if proto is Proto.TCP else socket.SOCK_DGRAM
    try:
        sock = socket.socket(socket.AF_INET6, kind)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        address = "::"
    except OSError:  # no IPv6 on this host
        sock = socket.socket(socket.AF_INET, kind)
        address = "0.0.0.0"
    try:
        if proto is Proto.TCP:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
            sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        sock.bind((address, port))
        if proto is Proto.TCP:
            sock.listen(limits.LISTENER_BACKLOG)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class ListenerSensor:
    """Bound tripwire ports for one protocol."""

    def __init__(
        self, proto: Proto, ports: tuple[int, ...], banner: str | None, host: HostView
    ) -> None:
        self.proto = proto
        self._host = host
        self.mode = "tcp" if proto is Proto.TCP else "udp"
        self._banner = (banner + "\n").encode("latin-1", "replace") if banner else b""
        self.sockets: dict[int, socket.socket] = {}
        self.ports: dict[int, int] = {}
        self.packets_read = 0  # connections accepted and datagrams read, probes or not
        in_use: list[str] = []
        failed: list[str] = []
        for port in ports:
            try:
                sock = _bind(proto, port)
            except OSError as error:
                if error.errno in OUT_OF_DESCRIPTORS:
                    self.close()
                    raise DescriptorShortage(
                        f"{self.mode}: out of file descriptors at port {port}: {error.strerror}"
                    ) from None
                skipped = in_use if error.errno == errno.EADDRINUSE else failed
                skipped.append(f"{port} ({error.strerror})")
                continue
            self.sockets[sock.fileno()] = sock
            self.ports[sock.fileno()] = port
            host.own(sock)
        if in_use:
            log.warning(
                "%s: not watching ports in use by a service: %s", self.mode, ", ".join(in_use)
            )
        if failed:
            log.warning("%s: cannot watch ports: %s", self.mode, ", ".join(failed))

    @property
    def watched(self) -> frozenset[int]:
        return frozenset(self.ports.values())

    @property
    def fds(self) -> list[int]:
        return list(self.sockets)

    def next_release(self) -> float | None:
        """None: nothing is held, every probe comes out of `read`."""
        return None

    def release(self, _now: float) -> list[Probe]:
        return []

    def packets_dropped(self) -> int:
        """Datagrams the kernel dropped before we read them (a full receive buffer). A TCP
        listener's drop counter is no such loss: it also counts each handshake the client cut
        short with a reset (one `nmap -sS` probe), and when the accept backlog is full the
        kernel ignores the handshake's last ACK and the client's retransmission completes it
        once there is room (or the client gives up: then it made no connection). So the TCP
        listeners count none."""
        return dropped(self.sockets.values()) if self.proto is Proto.UDP else 0

    def refresh(self) -> None:
        """Nothing to do: the bound sockets are the tripwires."""

    def read(self, fd: int) -> list[Probe]:
        if self.proto is Proto.TCP:
            return self._accept(fd)
        return self._receive(fd)

    def _accept(self, fd: int) -> list[Probe]:
        sock = self.sockets[fd]
        probes = []
        for _ in range(limits.PACKETS_PER_TURN_MAX):
            try:
                conn, peer = sock.accept()
            except (BlockingIOError, InterruptedError):
                break
            except OSError as error:
                if error.errno in OUT_OF_DESCRIPTORS:
                    raise  # the loop says so; the connection waits in the backlog
                continue  # the peer gave up before we accepted (ECONNABORTED and kin)
            self.packets_read += 1
            with conn:
                local = conn.getsockname()
                here = _as_shown(local[0])
                src = _sender(_as_shown(peer[0]), here)
                if src is None:
                    continue  # the kernel's handshake makes this rare: no banner, no probe
                if self._banner:
                    with contextlib.suppress(OSError):
                        conn.send(self._banner, socket.MSG_DONTWAIT)
            probes.append(
                Probe(
                    src,
                    unmapped(here),
                    Proto.TCP,
                    peer[1],
                    local[1],
                    self.mode,
                    CONNECT_SCAN,
                    seen_at=time.time(),
                )
            )
        return probes

    def _receive(self, fd: int) -> list[Probe]:
        sock = self.sockets[fd]
        probes = []
        for _ in range(limits.PACKETS_PER_TURN_MAX):
            try:
                data, ancillary, _, peer = sock.recvmsg(
                    limits.LISTENER_DATAGRAM_BYTES, _PKTINFO_SPACE
                )
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                continue
            self.packets_read += 1
            shown = _pktinfo_destination(ancillary)
            if shown is None:
                continue
            dst = unmapped(shown)
            if dst not in self._host.addresses:
                continue  # broadcast (rwhod, NetBIOS), multicast: for every host, not a probe
            src = _sender(_as_shown(peer[0]), shown)
            if src is None:
                continue  # forged: reporting it would name nobody, blocking it would stop nobody
            packet = Packet(
                b"",
                b"",
                17,
                peer[1],
                self.ports[fd],
                payload_len=len(data),
                payload_head=data[: limits.PAYLOAD_HEAD_BYTES],
            )
            tool = udp_os_tool(packet)
            probes.append(
                Probe(
                    src,
                    dst,
                    Proto.UDP,
                    peer[1],
                    self.ports[fd],
                    self.mode,
                    UDP_SCAN,
                    os_tool=tool,
                    seen_at=time.time(),
                    os_probe=os_probe_name(packet, tool),
                )
            )
        return probes

    def close(self) -> None:
        for sock in self.sockets.values():
            self._host.disown(sock)
        close_all(self.sockets)


def _pktinfo_destination(ancillary: list) -> IPAddress | None:
    """The datagram's destination as the socket shows it (IPv4-mapped for an IPv4 datagram on
    a dual-stack socket)."""
    for level, kind, value in ancillary:
        if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO and len(value) >= 16:
            return ipaddress.IPv6Address(value[:16])
        if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(value) >= 12:
            return ipaddress.IPv4Address(value[8:12])
    return None
