"""`portwarden replay FILE`: what the detection engine makes of a packet capture, offline.

The raw sensors' packet classification and the same engine, fed from a pcap file on the
capture's own clock. Nothing is blocked, mailed or stored: this is for trying thresholds and
ignore rules on real traffic, and for reading an old capture after the fact.

What a capture cannot say is which ports had a service. Live, SmartVerify asks the kernel;
here, an address and port that answered a SYN with SYN+ACK (TCP) or sent a datagram (UDP)
anywhere in the capture had one, so a first pass over the file collects those.
"""

import contextlib
import ipaddress
import logging
import math
import stat
from collections import Counter
from pathlib import Path
from typing import TextIO

from portwarden import limits
from portwarden.alert.line import verdict_line
from portwarden.config import Settings, TcpMode, UdpMode
from portwarden.detect.config import engine_config
from portwarden.detect.engine import Engine, Verdict
from portwarden.detect.probe import PortTest, packet_probe
from portwarden.net.addresses import IPAddress, Proto
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
from portwarden.net.pcap import PcapError, frames
from portwarden.sensors.build import late_reply_ports, watch_list

log = logging.getLogger("portwarden")

_TICK_S = 1.0  # capture time between engine ticks, as the daemon's loop
Service = tuple[bytes, int, int]  # address (packed), IP protocol number, port
Watched = dict[int, tuple[str, frozenset[int]]]  # IP protocol number -> mode, candidate ports
_BROADCAST = ipaddress.IPv4Address("255.255.255.255")
_STEALTH = {"tcp": "stcp", "udp": "sudp"}  # classic mode -> the mode it is replayed as
_NUMBER = {Proto.TCP: IPPROTO_TCP, Proto.UDP: IPPROTO_UDP}


def watched_ports(settings: Settings) -> Watched:
    """IP protocol number -> (mode, candidate ports). A capture shows packets, not connections,
    so the classic modes are replayed as their stealth twins."""
    return {
        _NUMBER[proto]: (_STEALTH.get(mode, mode), frozenset(ports))
        for proto, mode, ports in watch_list(settings)
    }


def _parse(ip: bytes) -> Packet | None:
    try:
        return parse_ipv4(ip) if ip[0] >> 4 == 4 else parse_ipv6(ip)
    except MalformedPacket:
        return None


def services(path: Path, watched: Watched) -> set[Service]:
    """Every address and watched port that answered like a service somewhere in the capture
    (at most REPLAY_SERVICES_MAX; a damaged file is read up to the damage: the second pass
    reports it)."""
    found: set[Service] = set()
    with contextlib.suppress(PcapError):
        for frame in frames(path):
            packet = _parse(frame.ip)
            if packet is None or not _answers(packet, watched):
                continue
            if len(found) >= limits.REPLAY_SERVICES_MAX:
                log.warning(
                    "replay: over %d answering services in the capture; the rest "
                    "count as tripwires",
                    limits.REPLAY_SERVICES_MAX,
                )
                break
            found.add((packet.src, packet.proto, packet.sport))
    return found


def _answers(packet: Packet, watched: Watched) -> bool:
    """Sent from a watched port as a service would: SYN+ACK, or any UDP datagram."""
    if packet.proto not in watched or packet.sport not in watched[packet.proto][1]:
        return False
    return packet.proto == IPPROTO_UDP or packet.flags & (SYN | ACK) == SYN | ACK


def replay(
    settings: Settings, path: Path, out: TextIO, hosts: frozenset[IPAddress] | None = None
) -> Counter[str]:
    """Print a verdict line for each verdict, as the daemon logs them; return the counts.
    `hosts`: the capturing host's addresses; only packets to them count (default: every
    unicast destination). Raises PcapError (after printing what came before the damage) or
    OSError."""
    if not stat.S_ISREG(path.stat().st_mode):
        raise PcapError(
            f"{path}: not a regular file; replay reads a capture twice, so save it to a file first"
        )
    if TcpMode.CLASSIC is settings.tcp_mode or UdpMode.CLASSIC is settings.udp_mode:
        log.info("replay: classic modes are replayed as stealth (-stcp, -sudp)")
        settings = settings.with_modes(
            TcpMode.STEALTH if settings.tcp_mode is TcpMode.CLASSIC else settings.tcp_mode,
            UdpMode.STEALTH if settings.udp_mode is UdpMode.CLASSIC else settings.udp_mode,
        )
    watched = watched_ports(settings)
    answered = services(path, watched)
    engine = Engine(
        engine_config(settings, settings.ignore_list(addresses=()), late_reply_ports(settings)[0])
    )
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
            dst = ipaddress.ip_address(packet.dst)
            if packet.proto not in watched or not _to_host(dst, hosts):
                continue
            mode, ports = watched[packet.proto]
            tripwire, open_port = _port_tests(packet.proto, ports, answered)
            probe = packet_probe(packet, dst, mode, tripwire, open_port, frame.time)
            if probe is not None:
                counts["probes"] += 1
                report(engine.feed(probe, clock))
    except PcapError:
        report(engine.tick(math.inf, stopping=True))
        raise
    report(engine.tick(math.inf, stopping=True))  # every scan ends with the capture
    return counts


def _to_host(dst: IPAddress, hosts: frozenset[IPAddress] | None) -> bool:
    """What the live sensor would have read: packets to one of the host's own addresses."""
    if hosts is not None:
        return dst in hosts
    return not (dst.is_multicast or dst.is_unspecified or dst == _BROADCAST)


def _port_tests(
    proto: int, ports: frozenset[int], answered: set[Service]
) -> tuple[PortTest, PortTest]:
    """SmartVerify on the capture (a watched port, and no service answered from it there), and
    whether a port is open: one that answered, or one not watched (the capture's answers are
    collected for the watched ports only, so any other counts as open, for queso's probes)."""
    return (
        lambda dst, port: port in ports and (dst, proto, port) not in answered,
        lambda dst, port: port not in ports or (dst, proto, port) in answered,
    )
