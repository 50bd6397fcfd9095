"""Bytes to headers: IPv4 (with options), IPv6 (with extension headers), TCP, UDP.

Hostile input is the normal case here. Every length is checked against what was captured,
non-first fragments are refused, and nothing but MalformedPacket can come out of a parse.
"""

import struct
from dataclasses import dataclass

from portwarden import limits

IPPROTO_TCP = 6
IPPROTO_UDP = 17

FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80

_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_IPV6 = struct.Struct("!IHBB16s16s")
_TCP = struct.Struct("!HHIIBBHHH")
_UDP = struct.Struct("!HHHH")
_EXT = struct.Struct("!BB")
_TS = struct.Struct("!II")

# IPv6 extension headers we walk through to reach TCP or UDP (in any order and number, as
# Linux does: a chain of 12 destination-options headers still delivers its SYN).
_HOP_BY_HOP, _ROUTING, _FRAGMENT, _DEST_OPTS, _AUTH = 0, 43, 44, 60, 51
_EXTENSIONS = {_HOP_BY_HOP, _ROUTING, _FRAGMENT, _DEST_OPTS, _AUTH}
_EXTENSION_MIN = 8  # bytes: the shortest extension header, so each step moves on this far


class MalformedPacket(ValueError):
    """The bytes are not a complete first fragment of a TCP or UDP packet from a unicast
    source."""


_V4_MAPPED = bytes(10) + b"\xff\xff"
_V4_COMPATIBLE = bytes(12)
_LOOPBACK6 = bytes(15) + b"\x01"


def can_send_from(src: bytes) -> bool:
    """Whether a host can send from `src` (4 or 16 bytes), so that a forged source is neither
    reported nor blocked. Not: 0.0.0.0/8, multicast, reserved and broadcast; IPv6 multicast;
    IPv4-mapped IPv6 (RFC 4291 2.5.5.2: never on the wire; Linux delivers it, but blocking
    `::ffff:198.18.0.12` would not stop 198.18.0.12); IPv4-compatible IPv6 (`::a.b.c.d`,
    deprecated by RFC 4291 2.5.5.1), `::` with them, but not the loopback `::1`. Shared by the
    raw modes and the classic mode's sockets."""
    if len(src) == 4:
        return 0 < src[0] < 224
    if src[0] == 0xFF or src.startswith(_V4_MAPPED):
        return False
    return not src.startswith(_V4_COMPATIBLE) or src == _LOOPBACK6


def _check_source(src: bytes) -> None:
    if not can_send_from(src):
        raise MalformedPacket(
            "source address cannot send (0/8, multicast, broadcast, ::, "
            "IPv4-mapped or IPv4-compatible)"
        )


@dataclass(frozen=True, slots=True)
class Packet:
    """The parts of an IP packet that detection looks at. Addresses are raw bytes (4 or 16)."""

    src: bytes
    dst: bytes
    proto: int
    sport: int
    dport: int
    flags: int = 0  # TCP flags byte (CWR..FIN)
    reserved: int = 0  # the 4 reserved TCP bits (nmap's ECN probe sets one)
    window: int = 0
    urgent: int = 0
    tcp_options: bytes = b""
    ip_options: bool = False  # IPv4 options, or IPv6 hop-by-hop / destination options
    payload_len: int = 0
    payload_head: bytes = b""


def parse_ipv4(data: bytes) -> Packet:
    """An IPv4 packet as a raw IPv4 socket or a packet socket delivers it."""
    if len(data) < _IPV4.size:
        raise MalformedPacket("short IPv4 header")
    ver_ihl, _, total, _, frag, _, proto, _, src, dst = _IPV4.unpack_from(data)
    header = (ver_ihl & 0x0F) * 4
    if ver_ihl >> 4 != 4 or header < _IPV4.size or header > len(data):
        raise MalformedPacket("bad IPv4 version or header length")
    if frag & 0x1FFF:
        raise MalformedPacket("non-first fragment")
    end = min(len(data), total) if total >= header else len(data)
    return parse_transport(
        proto,
        data[header:end],
        src,
        dst,
        ip_options=header > _IPV4.size,
        length=total - header if total >= header else None,
    )


def parse_ipv6(data: bytes) -> Packet:
    """An IPv6 packet with its header, following the extension-header chain as the kernel
    does, however long: bounded by the captured bytes alone, since each header moves the walk
    on by at least _EXTENSION_MIN bytes (a chain that runs past them is refused)."""
    if len(data) < _IPV6.size:
        raise MalformedPacket("short IPv6 header")
    first, length, next_header, _, src, dst = _IPV6.unpack_from(data)
    if first >> 28 != 6:
        raise MalformedPacket("not IPv6")
    offset, end = _IPV6.size, min(len(data), _IPV6.size + length)
    options = False
    while next_header in _EXTENSIONS:
        if offset + _EXTENSION_MIN > end:
            raise MalformedPacket("truncated extension header")
        following, size = _EXT.unpack_from(data, offset)
        if next_header == _FRAGMENT:
            if struct.unpack_from("!H", data, offset + 2)[0] & 0xFFF8:
                raise MalformedPacket("non-first fragment")
            size = _EXTENSION_MIN
        elif next_header == _AUTH:
            size = (size + 2) * 4
        else:
            options = options or next_header in (_HOP_BY_HOP, _DEST_OPTS)
            size = (size + 1) * 8
        offset += size
        next_header = following
    return parse_transport(
        next_header,
        data[offset:end],
        src,
        dst,
        ip_options=options,
        length=_IPV6.size + length - offset,
    )


def parse_transport(
    proto: int,
    data: bytes,
    src: bytes,
    dst: bytes,
    ip_options: bool = False,
    length: int | None = None,
) -> Packet:
    """A TCP or UDP header and what follows, as a raw IPv6 socket delivers it. `data` may be
    cut short by the capture; `length` is how long the segment is as far as known (as the IP
    header says, or as the socket delivered it), None if only `data` is known."""
    _check_source(src)
    if proto == IPPROTO_TCP:
        if len(data) < _TCP.size:
            raise MalformedPacket("short TCP header")
        sport, dport, _, _, offset_byte, flags, window, _, urgent = _TCP.unpack_from(data)
        header = (offset_byte >> 4) * 4
        if header < _TCP.size or header > len(data):
            raise MalformedPacket("bad TCP data offset")
        return Packet(
            src,
            dst,
            proto,
            sport,
            dport,
            flags,
            offset_byte & 0x0F,
            window,
            urgent,
            data[_TCP.size : header],
            ip_options,
            len(data) - header,
            data[header : header + limits.PAYLOAD_HEAD_BYTES],
        )
    if proto == IPPROTO_UDP:
        if len(data) < _UDP.size:
            raise MalformedPacket("short UDP header")
        sport, dport, claimed, _ = _UDP.unpack_from(data)
        # Raw sockets see a datagram before the kernel checks it (sensors keep CAPTURE_BYTES
        # of it): its UDP length is checked against the IP layer's as the kernel does, which
        # drops a datagram shorter than its header or longer than the packet (UdpInErrors),
        # and over IPv6 takes 0 for "the whole packet" (a jumbogram, RFC 2675).
        on_wire = len(data) if length is None else length
        if claimed == 0 and len(src) == 16:
            claimed = on_wire
        if not _UDP.size <= claimed <= on_wire:
            raise MalformedPacket("bad UDP length")
        return Packet(
            src,
            dst,
            proto,
            sport,
            dport,
            ip_options=ip_options,
            payload_len=claimed - _UDP.size,
            payload_head=data[_UDP.size : min(claimed, _UDP.size + limits.PAYLOAD_HEAD_BYTES)],
        )
    raise MalformedPacket(f"protocol {proto} is neither TCP nor UDP")


def tcp_timestamp(options: bytes) -> tuple[int, int] | None:
    """(TSval, TSecr) from TCP options, or None. Walks the options without trusting lengths."""
    i = 0
    while i < len(options):
        kind = options[i]
        if kind == 0:
            return None
        if kind == 1:
            i += 1
            continue
        if i + 1 >= len(options) or options[i + 1] < 2:
            return None
        size = options[i + 1]
        if kind == 8 and size == 10 and i + 10 <= len(options):
            return _TS.unpack_from(options, i + 2)
        i += size
    return None
