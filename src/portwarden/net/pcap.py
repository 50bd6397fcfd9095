"""Classic pcap files, as `tcpdump -w` writes them: the IP packets in them, with their times.

Link types: Ethernet (with 802.1Q tags), raw IP, and Linux "cooked" captures v1 and v2 (what
`tcpdump -i any` writes). Frames that carry no IPv4 or IPv6 are skipped. pcapng is not read;
`tcpdump -r FILE -w OUT` turns one into a classic file.
"""

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, NamedTuple

from portwarden import limits

_MAGIC_US, _MAGIC_NS, _MAGIC_PCAPNG = 0xA1B2C3D4, 0xA1B23C4D, 0x0A0D0D0A
_ETHERNET, _RAW, _RAW_OLD, _SLL, _SLL2 = 1, 101, 12, 113, 276
_LINKS = frozenset({_ETHERNET, _RAW, _RAW_OLD, _SLL, _SLL2})
_ETH_IPV4, _ETH_IPV6, _ETH_VLAN, _ETH_QINQ = 0x0800, 0x86DD, 0x8100, 0x88A8


class PcapError(ValueError):
    """The file is not a classic pcap file, or is damaged; the message names file and offset."""


class Frame(NamedTuple):
    time: float  # seconds since the epoch, as the capture recorded it
    ip: bytes  # the IPv4 or IPv6 packet, from its header on (as much as was captured)


def _ethernet_payload(frame: bytes) -> bytes:
    offset = 12
    while offset + 2 <= len(frame):
        kind = struct.unpack_from("!H", frame, offset)[0]
        if kind in (_ETH_VLAN, _ETH_QINQ):
            offset += 4
            continue
        return frame[offset + 2 :] if kind in (_ETH_IPV4, _ETH_IPV6) else b""
    return b""


def _cooked_payload(frame: bytes, header: int, protocol_at: int) -> bytes:
    if len(frame) < header:
        return b""
    kind = struct.unpack_from("!H", frame, protocol_at)[0]
    return frame[header:] if kind in (_ETH_IPV4, _ETH_IPV6) else b""


def ip_payload(link: int, frame: bytes) -> bytes | None:
    """The IP packet in one frame of link type `link`, or None if it carries none."""
    if link == _ETHERNET:
        packet = _ethernet_payload(frame)
    elif link == _SLL:
        packet = _cooked_payload(frame, 16, 14)
    elif link == _SLL2:
        packet = _cooked_payload(frame, 20, 0)
    else:
        packet = frame
    return packet if packet and packet[0] >> 4 in (4, 6) else None


def frames(path: Path) -> Iterator[Frame]:
    """The IP packets of a capture, in file order. Raises PcapError (and OSError)."""
    with path.open("rb") as stream:
        yield from read_frames(stream, str(path))


def read_frames(stream: BinaryIO, name: str) -> Iterator[Frame]:
    """The same from an open stream; `name` is for the error messages."""
    header = stream.read(24)
    if len(header) < 24:
        raise PcapError(f"{name}: too short for a pcap file ({len(header)} bytes)")
    for order in "<>":
        magic = struct.unpack(order + "I", header[:4])[0]
        if magic in (_MAGIC_US, _MAGIC_NS):
            break
    else:
        if struct.unpack("<I", header[:4])[0] == _MAGIC_PCAPNG:
            raise PcapError(f"{name}: pcapng is not read; convert it: tcpdump -r {name} -w OUT")
        raise PcapError(f"{name}: not a pcap file (magic {header[:4].hex()})")
    unit = 1e-9 if magic == _MAGIC_NS else 1e-6
    link = struct.unpack(order + "I", header[20:24])[0] & 0x0FFFFFFF
    if link not in _LINKS:
        raise PcapError(f"{name}: link type {link} is not read (Ethernet, raw IP, Linux SLL)")
    record = struct.Struct(order + "IIII")
    offset = 24
    while head := stream.read(record.size):
        if len(head) < record.size:
            raise PcapError(f"{name}: truncated record header at byte {offset}")
        seconds, fraction, captured, _ = record.unpack(head)
        if captured > limits.PCAP_RECORD_BYTES_MAX:
            raise PcapError(f"{name}: record of {captured} bytes at byte {offset}: damaged file")
        frame = stream.read(captured)
        if len(frame) < captured:
            raise PcapError(f"{name}: truncated record at byte {offset}")
        offset += record.size + captured
        packet = ip_payload(link, frame)
        if packet is not None:
            yield Frame(seconds + fraction * unit, packet)
