"""`portwarden replay FILE`: what the detection engine makes of a packet capture, offline.

The raw sensors' packet classification and the same engine, fed from a pcap file on the
capture's own clock. Nothing is blocked, mailed or stored: this is for trying thresholds and
ignore rules on real traffic, and for reading an old capture after the fact.

What a capture cannot say is which ports had a service. Live, SmartVerify asks the kernel;
here, an address and port that answered a SYN with SYN+ACK (TCP) or sent a datagram (UDP)
anywhere in the capture had one, so a first pass over the file collects those.
"""

import ipaddress
import logging
import math
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from portwarden.alert.line import verdict_line
from portwarden.config import Settings, TcpMode, UdpMode
from portwarden.detect.config import engine_config
from portwarden.detect.engine import Engine, Verdict
from portwarden.detect.probe import packet_probe
from portwarden.net.packet import (
    ACK,
    IPPROTO_TCP,
    IPPROTO_UDP,
    SYN,
    MalformedPacket,
    Packet,
    parse_ipv4,
    parse_ipv6,
)
from portwarden.net.pcap import frames
from portwarden.sensors.build import advanced_ports

log = logging.getLogger("portwarden")

_TICK_S = 1.0  # capture time between engine ticks, as the daemon's loop
Service = tuple[bytes, int, int]  # address (packed), IP protocol number, port
IsTripwire = Callable[[int], bool]


def watched_ports(settings: Settings) -> dict[int, tuple[str, frozenset[int]]]:
    """IP protocol number -> (mode, candidate ports). A capture shows packets, not connections,
    so the classic modes are replayed as their stealth twins."""
    s = settings
    watched: dict[int, tuple[str, frozenset[int]]] = {}
    if s.tcp_mode in (TcpMode.CLASSIC, TcpMode.STEALTH):
        watched[IPPROTO_TCP] = ("stcp", frozenset(s.tcp_ports))
    elif s.tcp_mode is TcpMode.ADVANCED:
        watched[IPPROTO_TCP] = ("atcp", advanced_ports(s.advanced_ports_tcp,
                                                       s.advanced_exclude_tcp))  # fmt: skip
    if s.udp_mode in (UdpMode.CLASSIC, UdpMode.STEALTH):
        watched[IPPROTO_UDP] = ("sudp", frozenset(s.udp_ports))
    elif s.udp_mode is UdpMode.ADVANCED:
        watched[IPPROTO_UDP] = ("audp", advanced_ports(s.advanced_ports_udp,
                                                       s.advanced_exclude_udp))  # fmt: skip
    return watched


def _parse(ip: bytes) -> Packet | None:
    try:
        return parse_ipv4(ip) if ip[0] >> 4 == 4 else parse_ipv6(ip)
    except MalformedPacket:
        return None


def services(path: Path) -> set[Service]:
    """Every address and port that answered like a service somewhere in the capture."""
    found: set[Service] = set()
    for frame in frames(path):
        packet = _parse(frame.ip)
        if packet is None:
            continue
        if packet.proto == IPPROTO_UDP or (
            packet.proto == IPPROTO_TCP and packet.flags & (SYN | ACK) == SYN | ACK
        ):
            found.add((packet.src, packet.proto, packet.sport))
    return found


def replay(settings: Settings, path: Path, out: TextIO) -> Counter[str]:
    """Print a verdict line for each verdict, as the daemon logs them; return the counts.
    Raises PcapError or OSError (after printing what came before the damage)."""
    watched = watched_ports(settings)
    if TcpMode.CLASSIC is settings.tcp_mode or UdpMode.CLASSIC is settings.udp_mode:
        log.info("replay: classic modes are replayed as stealth (-stcp, -sudp)")
    answered = services(path)
    engine = Engine(engine_config(settings, settings.ignore_list(addresses=())))
    counts: Counter[str] = Counter()

    def report(verdicts: list[Verdict]) -> None:
        for verdict in verdicts:
            counts[verdict.kind] += 1
            print(verdict_line(verdict), file=out)

    clock, next_tick = -math.inf, -math.inf
    try:
        for frame in frames(path):
            counts["packets"] += 1
            packet = _parse(frame.ip)
            if packet is None:
                counts["skipped"] += 1
                continue
            clock = max(clock, frame.time)  # a capture can step back a little; the engine not
            if clock >= next_tick:
                report(engine.tick(clock))
                next_tick = clock + _TICK_S
            if packet.proto not in watched:
                continue
            mode, ports = watched[packet.proto]
            probe = packet_probe(packet, ipaddress.ip_address(packet.dst), mode,
                                 _tripwire(packet, ports, answered), frame.time)  # fmt: skip
            if probe is not None:
                counts["probes"] += 1
                report(engine.feed(probe, clock))
    finally:
        report(engine.tick(math.inf))  # every scan ends with the capture
    return counts


def _tripwire(packet: Packet, ports: frozenset[int], answered: set[Service]) -> IsTripwire:
    """SmartVerify on the capture: a watched port, and no service answered from it there."""
    return lambda port: port in ports and (packet.dst, packet.proto, port) not in answered
