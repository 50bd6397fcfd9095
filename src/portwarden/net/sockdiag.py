"""Which local ports have a socket, asked of the kernel over sock_diag (NETLINK_SOCK_DIAG).

/proc/net/tcp walks every bucket of the kernel's connection hash table, whose size follows the
machine's memory, not the number of sockets: 3.4 ms per file on a 24 GiB host with seven
sockets, and the daemon's loop asks every REFRESH_S. A sock_diag dump that asks for listening
sockets only walks the listening table: a few dozen microseconds.

The audit also needs what /proc/net does not show: the device a socket is bound to
(SO_BINDTODEVICE, `idiag_if`) and, for an IPv6 socket, whether it takes IPv4 too (IPV6_V6ONLY,
the INET_DIAG_SKV6ONLY attribute the kernel adds for listening and unconnected sockets).

Message layout from linux/sock_diag.h and linux/inet_diag.h.
"""

import ipaddress
import socket
import struct
from collections.abc import Iterator
from typing import NamedTuple

from portwarden.net import netlink
from portwarden.net.addresses import IPAddress
from portwarden.net.local import unmapped

NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_REQUEST = struct.Struct("=BBBBI48x")  # inet_diag_req_v2: family, protocol, ext, pad, states, id
_SPORT = struct.Struct("!4xH")  # inet_diag_msg: family, state, timer, retrans, the source port
# inet_diag_msg: family, state, timer, retrans; id: source port, destination port (both network
# order), source and destination address (16 bytes each), device, cookie; expires, rqueue,
# wqueue, uid, inode.
_MESSAGE = struct.Struct("=BBBB4x16s16xI8x12xII")
_PORT = struct.Struct("!H")
_ATTRIBUTE = struct.Struct("=HH")  # rtattr: length (header included), type
_SKV6ONLY = 11  # INET_DIAG_SKV6ONLY: a u8
_REQ_BYTECODE = 1  # INET_DIAG_REQ_BYTECODE: a filter program the kernel runs on each socket
TCP_LISTEN_ONLY = 1 << 10  # TCPF_LISTEN
UDP_UNCONNECTED = 1 << 7  # TCPF_CLOSE: a UDP socket that is not connected to one peer


class DiagSocket(NamedTuple):
    """One socket as sock_diag reports it."""

    address: IPAddress  # an IPv4-mapped IPv6 address comes as the IPv4 address
    port: int
    uid: int
    inode: int
    device: int  # the index of the device it is bound to (SO_BINDTODEVICE); 0: none
    v6only: bool  # an IPv6 socket that takes no IPv4; False for IPv4 sockets


def _requests(protocol: int, states: int, bytecode: bytes = b"") -> list[tuple[int, bytes]]:
    """A dump per family; `bytecode` (diagfilter) goes as the INET_DIAG_REQ_BYTECODE attribute."""
    attribute = _ATTRIBUTE.pack(_ATTRIBUTE.size + len(bytecode), _REQ_BYTECODE) + bytecode
    extra = attribute if bytecode else b""
    return [
        (_SOCK_DIAG_BY_FAMILY, _REQUEST.pack(family, protocol, 0, 0, states) + extra)
        for family in (socket.AF_INET, socket.AF_INET6)
    ]


def socket_ports(protocol: int, states: int) -> frozenset[int]:
    """Local ports of the IPv4 and IPv6 sockets of `protocol` in `states` (a bit mask of TCP
    states). Raises OSError when the kernel cannot answer (no inet_diag support)."""
    return source_ports(netlink.dump(NETLINK_SOCK_DIAG, _requests(protocol, states), "sock_diag"))


def sockets(protocol: int, states: int, bytecode: bytes = b"") -> Iterator[DiagSocket]:
    """The IPv4 and IPv6 sockets of `protocol` in `states`, with their device and V6ONLY, as
    the kernel sends them; only those `bytecode` (a diagfilter program) accepts, if given.
    Raises OSError when the kernel cannot answer (no inet_diag, or no udp_diag for UDP)."""
    answers = netlink.dump_each(
        NETLINK_SOCK_DIAG, _requests(protocol, states, bytecode), "sock_diag"
    )
    return (found for found in map(parse_message, answers) if found is not None)


def parse_message(data: bytes) -> DiagSocket | None:
    """One inet_diag_msg with its attributes; None when it is cut short or of another family."""
    if len(data) < _MESSAGE.size:
        return None
    family, _, _, _, source, device, uid, inode = _MESSAGE.unpack_from(data)
    port = _PORT.unpack_from(data, 4)[0]
    if family == socket.AF_INET:
        address: IPAddress = ipaddress.IPv4Address(source[:4])
    elif family == socket.AF_INET6:
        address = ipaddress.IPv6Address(source)
    else:
        return None
    v6only = _attribute(data, _SKV6ONLY) not in (None, b"\0")
    plain = unmapped(address)
    if plain != address:  # bound to ::ffff:a.b.c.d: that IPv4 address only
        address, v6only = plain, False
    return DiagSocket(address, port, uid, inode, device, v6only)


def _attribute(data: bytes, wanted: int) -> bytes | None:
    """The payload of the first attribute of type `wanted` after the message, if any."""
    offset = _MESSAGE.size
    while offset + _ATTRIBUTE.size <= len(data):
        length, kind = _ATTRIBUTE.unpack_from(data, offset)
        if length < _ATTRIBUTE.size or offset + length > len(data):
            return None
        if kind & 0x3FFF == wanted:  # without the NLA_F_NESTED and byte-order flags
            return data[offset + _ATTRIBUTE.size : offset + length]
        offset += netlink.align(length)
    return None


def source_ports(answers: list[bytes]) -> frozenset[int]:
    """The local ports in inet_diag_msg payloads (a shorter one is skipped)."""
    return frozenset(_SPORT.unpack_from(a)[0] for a in answers if len(a) >= _SPORT.size)
