"""What a sensor saw (Probe) and how to name it: scan types and OS-fingerprinting tools."""

import ipaddress
from collections.abc import Callable
from enum import Enum
from typing import NamedTuple

from portwarden.net.packet import (
    ACK,
    CWR,
    ECE,
    FIN,
    IPPROTO_TCP,
    PSH,
    RST,
    SYN,
    URG,
    Packet,
    tcp_timestamp,
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Proto(Enum):
    TCP = "tcp"
    UDP = "udp"


SYN_SCAN = "TCP SYN/Normal scan"
FIN_SCAN = "TCP FIN scan"
NULL_SCAN = "TCP NULL scan"
XMAS_SCAN = "TCP XMAS scan"
CONNECT_SCAN = "TCP connect scan"
UDP_SCAN = "UDP scan"

_FLAG_NAMES = ((FIN, "FIN"), (SYN, "SYN"), (RST, "RST"), (PSH, "PSH"), (ACK, "ACK"),
               (URG, "URG"), (ECE, "ECE"), (CWR, "CWR"))  # fmt: skip

NMAP_TSVAL = 0xFFFFFFFF  # nmap -O puts this TSval (and TSecr 0) in its SYN and T2-T7 probes
NMAP_ECN_URGENT = 0xF7F5  # nmap's ECN probe: urgent pointer set without URG
NMAP_T3_FLAGS = SYN | FIN | PSH | URG
NMAP_U1_LEN, NMAP_U1_BYTE = 300, ord("C")  # nmap's UDP probe: 300 bytes of 'C'


class Probe(NamedTuple):
    """One packet or connection that may be part of a scan, as a sensor saw it.

    A NamedTuple, not a frozen dataclass: one is built per packet, and a tuple is built several
    times faster (it matters under a flood).
    """

    src: IPAddress
    dst: IPAddress
    proto: Proto
    sport: int
    dport: int
    mode: str  # the PortSentry mode that saw it: tcp, stcp, atcp, udp, sudp, audp
    scan: str  # the scan type's name, e.g. "TCP FIN scan"
    flags: str = ""  # e.g. "SYN+FIN+PSH+URG"; "" for UDP and connections
    os_tool: str | None = None  # "nmap" or "queso" when the packet is an OS-fingerprinting probe
    ip_options: bool = False  # IP options set: a detection-avoidance hint
    tripwire: bool = True  # False: seen only because it is an OS probe to a port not watched
    seen_at: float = 0.0  # wall-clock time, for reports


def flag_names(flags: int, reserved: int = 0) -> str:
    names = [name for bit, name in _FLAG_NAMES if flags & bit]
    if reserved:
        names.append("RES")
    return "+".join(names) or "NULL"


def tcp_scan_type(flags: int) -> str:
    """PortSentry's names for the flag patterns; anything else is an odd-flags scan."""
    core = flags & ~(ECE | CWR)
    if core == SYN:
        return SYN_SCAN
    if core == FIN:
        return FIN_SCAN
    if core == 0:
        return NULL_SCAN
    if core == FIN | PSH | URG:
        return XMAS_SCAN
    return f"TCP odd-flags scan ({flag_names(flags)})"


def tcp_os_tool(packet: Packet) -> str | None:
    """'nmap' or 'queso' when the segment carries that tool's fingerprinting signature.

    A client negotiating ECN sends SYN+ECE+CWR with ordinary options and no reserved bit:
    that is not a probe.
    """
    stamp = tcp_timestamp(packet.tcp_options)
    if stamp is not None and stamp == (NMAP_TSVAL, 0):
        return "nmap"
    if packet.reserved and packet.urgent == NMAP_ECN_URGENT:
        return "nmap"
    if packet.flags == NMAP_T3_FLAGS and packet.window == 256:
        return "nmap"
    ecn_syn = packet.flags == SYN | ECE | CWR
    if packet.reserved or (ecn_syn and not packet.tcp_options):
        return "queso"
    if packet.flags in (SYN | FIN, PSH):
        return "queso"
    return None


def udp_os_tool(packet: Packet) -> str | None:
    head = packet.payload_head
    if packet.payload_len == NMAP_U1_LEN and head and head.count(NMAP_U1_BYTE) == len(head):
        return "nmap"
    return None


def packet_probe(packet: Packet, dst: IPAddress, mode: str, tripwire: Callable[[int], bool],
                 now: float) -> Probe | None:  # fmt: skip
    """The probe a packet to this host makes, or None: a TCP segment with ACK or RST (part of a
    connection), or a packet that is neither to a tripwire port nor an OS-fingerprinting probe.
    `tripwire(port)` is asked last: live it may cost a system call (SmartVerify)."""
    if packet.proto == IPPROTO_TCP:
        if packet.flags & (ACK | RST):
            return None
        os_tool = tcp_os_tool(packet)
    else:
        os_tool = udp_os_tool(packet)
    is_tripwire = tripwire(packet.dport)
    if not is_tripwire and os_tool is None:
        return None
    if packet.proto == IPPROTO_TCP:
        proto, scan, flags = (
            Proto.TCP,
            tcp_scan_type(packet.flags),
            flag_names(packet.flags, packet.reserved),
        )
    else:
        proto, scan, flags = Proto.UDP, UDP_SCAN, ""
    return Probe(
        ipaddress.ip_address(packet.src), dst, proto, packet.sport, packet.dport, mode, scan,
        flags, os_tool, packet.ip_options, is_tripwire, now,
    )  # fmt: skip
