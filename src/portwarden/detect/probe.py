"""What a sensor saw (Probe) and how to name it: scan types and OS-fingerprinting tools."""

import functools
import ipaddress
from collections.abc import Callable
from typing import NamedTuple

from portwarden.net.addresses import IPAddress, Proto
from portwarden.net.nmap_probes import (
    NMAP_ECN_URGENT,
    NMAP_T3_FLAGS,
    NMAP_T_OPTIONS,
    NMAP_TSVAL,
    NMAP_U1_BYTE,
    NMAP_U1_LEN,
)
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

SYN_SCAN = "TCP SYN/Normal scan"
FIN_SCAN = "TCP FIN scan"
NULL_SCAN = "TCP NULL scan"
XMAS_SCAN = "TCP XMAS scan"
CONNECT_SCAN = "TCP connect scan"
UDP_SCAN = "UDP scan"

_FLAG_NAMES = (
    (FIN, "FIN"),
    (SYN, "SYN"),
    (RST, "RST"),
    (PSH, "PSH"),
    (ACK, "ACK"),
    (URG, "URG"),
    (ECE, "ECE"),
    (CWR, "CWR"),
)

AE = 0x01  # the reserved bit next to CWR: Accurate ECN (RFC 9768), "NS" before it

# T4 (to an open port) and T6 (to a closed one) by their windows: ACK segments, which only their
# exact shape (ACK alone, NMAP_T_OPTIONS) tells from a connection's (see nmap_ack_probe).
_NMAP_ACK_PROBES = {1024: "T4", 32768: "T6"}
# nmap's names for its TCP probes, by flags (reserved bits aside), window and first TCP option
# (SEQ3 and SEQ4 share a window). From nmap's osscan2.cc and "TCP/IP Fingerprinting Methods
# Supported by Nmap" (nmap.org/book/osdetect-methods.html).
_NMAP_PROBES = {
    **{(ACK, window, NMAP_T_OPTIONS[0]): name for window, name in _NMAP_ACK_PROBES.items()},
    (SYN, 1, 3): "SEQ1",
    (SYN, 63, 2): "SEQ2",
    (SYN, 4, 8): "SEQ3",
    (SYN, 4, 4): "SEQ4",
    (SYN, 16, 2): "SEQ5",
    (SYN, 512, 2): "SEQ6",
    (SYN | ECE | CWR, 3, 3): "ECN",
    (0, 128, 3): "T2",
    (NMAP_T3_FLAGS, 256, 3): "T3",
    (SYN, 31337, 3): "T5",
    (FIN | PSH | URG, 65535, 3): "T7",
}
# queso's probes (its documentation): to an open port, with no TCP options, SYN+FIN, a lone PSH,
# and SYN with the two flags unused in 1998 (now ECE and CWR). The others carry ACK or are a
# plain SYN or FIN. tcp_os_tool names the shape; packet_probe names it queso only to an open
# port.
_QUESO_FLAGS = (SYN | FIN, PSH)


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
    os_probe: str = ""  # nmap's name for the OS probe when known: SEQ1-SEQ6, ECN, T2-T7, U1

    @property
    def os_pattern(self) -> str:
        """How an OS probe shows in reports: its flags ('udp' for UDP), then nmap's name for it
        when known, e.g. 'SYN/SEQ1'."""
        shape = self.flags or self.proto.value
        return _os_pattern(shape, self.os_probe) if self.os_probe else shape

    @property
    def os_match(self) -> str:
        """The OS-fingerprinting probe the packet matched, as tool/probe ('nmap/T7'), the tool
        alone when nmap has no name for it ('queso'), or '': a tripwire probe of `nmap -O` is
        named by its flags (T7 as a XMAS scan), and this says which scan nobody ran."""
        if self.os_tool is None:
            return ""
        return f"{self.os_tool}/{self.os_probe}" if self.os_probe else self.os_tool


# The names below are made once each and cached, not once per probe: the engine keeps up to
# limits.PATTERNS_TRACKED_MAX of them per source and per run, and a source that sends many
# patterns would otherwise keep a string of its own for each (about 1.5 KiB more per source).
# Each cache is bounded by what can be named: a flags byte and the 4 reserved bits, a tool,
# nmap's probe names.


@functools.cache
def _os_pattern(shape: str, os_probe: str) -> str:
    return f"{shape}/{os_probe}"


@functools.cache
def os_probe_type(tool: str) -> str:
    """How reports name the probes of an OS-fingerprinting tool."""
    return f"OS fingerprinting probe ({tool})"


@functools.cache  # at most 256 x 16 entries
def flag_names(flags: int, reserved: int = 0) -> str:
    names = [name for bit, name in _FLAG_NAMES if flags & bit]
    if reserved & AE:
        names.append("AE")
    if reserved & ~AE:
        names.append("RES")
    return "+".join(names) or "NULL"


@functools.cache  # at most 256 entries
def tcp_scan_type(flags: int) -> str:
    """PortSentry's names for the flag patterns; anything else is an odd-flags scan. ECE and CWR
    (a client negotiating ECN) do not change a SYN, FIN or XMAS; alone they are odd flags."""
    if flags == 0:
        return NULL_SCAN
    core = flags & ~(ECE | CWR)
    if core == SYN:
        return SYN_SCAN
    if core == FIN:
        return FIN_SCAN
    if core == FIN | PSH | URG:
        return XMAS_SCAN
    return f"TCP odd-flags scan ({flag_names(flags)})"


def part_of_a_connection(flags: int) -> bool:
    """True for a segment with ACK or RST that a TCP stack may send: part of a connection, a
    reply, or a stray of one that closed; never a probe. Only a SYN beside RST or FIN (with
    ACK or not: nmap --scanflags SYNRST, ALL) is always forged. SYN+ACK is not: it may be a
    late or repeated answer to a connection of this host's own, or backscatter of a SYN flood
    sent in this host's name. The kernel filter (net/bpf.py) makes the same choice."""
    return bool(flags & (ACK | RST)) and not (flags & SYN and flags & (RST | FIN))


def nmap_ack_probe(packet: Packet) -> bool:
    """True for nmap -O's T4 or T6: ACK alone, no reserved bit, nmap's T options exactly and
    the window of one of the two. No TCP stack sends an ACK with TSecr 0 and TSval 0xFFFFFFFF
    after the window scale, NOP and MSS of a SYN. The kernel filter (net/bpf.py) passes ACKs
    with nmap's data offset and timestamp at its place; this checks the rest."""
    return (
        packet.flags == ACK
        and not packet.reserved
        and packet.window in _NMAP_ACK_PROBES
        and packet.tcp_options == NMAP_T_OPTIONS
    )


def tcp_os_tool(packet: Packet) -> str | None:
    """'nmap' or 'queso' when the segment carries that tool's fingerprinting signature.

    A client negotiating ECN sends SYN+ECE+CWR with ordinary options, and with Accurate ECN
    (RFC 9768) the AE bit, once a reserved bit, as well: neither is a probe. nmap's ECN probe
    sets another reserved bit over IPv4, none over IPv6; what marks it is the urgent pointer
    0xF7F5 without URG.
    """
    stamp = tcp_timestamp(packet.tcp_options)
    if stamp is not None and stamp == (NMAP_TSVAL, 0):
        return "nmap"
    ecn_syn = packet.flags == SYN | ECE | CWR
    if ecn_syn and packet.urgent == NMAP_ECN_URGENT:
        return "nmap"
    if packet.flags == NMAP_T3_FLAGS and packet.window == 256:
        return "nmap"
    if not packet.tcp_options and (ecn_syn or packet.flags in _QUESO_FLAGS):
        return "queso"
    return None


def os_probe_name(packet: Packet, tool: str | None) -> str:
    """nmap's name for one of its OS-detection probes (SEQ1 ... T7, U1), or ''."""
    if tool != "nmap":
        return ""
    if packet.proto != IPPROTO_TCP:
        return "U1"
    first_option = packet.tcp_options[0] if packet.tcp_options else -1
    return _NMAP_PROBES.get((packet.flags, packet.window, first_option), "")


def udp_os_tool(packet: Packet) -> str | None:
    head = packet.payload_head
    if packet.payload_len == NMAP_U1_LEN and head and head.count(NMAP_U1_BYTE) == len(head):
        return "nmap"
    return None


PortTest = Callable[[bytes, int], bool]  # (packed destination address, port)


def packet_probe(
    packet: Packet, dst: IPAddress, mode: str, tripwire: PortTest, open_port: PortTest, now: float
) -> Probe | None:
    """The probe a packet to this host makes, or None: a TCP segment that may be part of a
    connection, or a packet that is neither to a tripwire port nor an OS-fingerprinting probe.
    `tripwire(address, port)` is asked last: live it may cost a system call (SmartVerify).
    `open_port(address, port)`, asked only of a packet shaped like queso's, says whether a
    service has the port: queso probes an open port; the same flags to a closed one are a
    scan (a tripwire's) or nothing (`hping3 -S -F`, `nmap --scanflags PSH`). nmap's T4 and T6
    are OS probes only, never scan probes, to a tripwire too: the sensors take no ACK for a
    scan (an ACK scan is not told from a connection's stray segments)."""
    ack_probe = False
    if packet.proto == IPPROTO_TCP:
        if part_of_a_connection(packet.flags):
            if not nmap_ack_probe(packet):
                return None
            ack_probe = True
        os_tool = tcp_os_tool(packet)
    else:
        os_tool = udp_os_tool(packet)
    is_tripwire = not ack_probe and tripwire(packet.dst, packet.dport)
    if os_tool == "queso" and (is_tripwire or not open_port(packet.dst, packet.dport)):
        os_tool = None
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
        ipaddress.ip_address(packet.src),
        dst,
        proto,
        packet.sport,
        packet.dport,
        mode,
        scan,
        flags,
        os_tool,
        packet.ip_options,
        is_tripwire,
        now,
        os_probe_name(packet, os_tool),
    )
