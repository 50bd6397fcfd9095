"""Send hand-made packets from a lab host (run inside its namespace as a script).

usage: malformed.py SRC4 DST4 SRC6 DST6 PORT UDP_PORT broken packets, none of them a probe
       malformed.py --options SRC6 DST6 PORT [COUNT]   one IPv6 SYN behind COUNT (1)
                                                       destination-options headers
       malformed.py --accecn SRC DST PORT              one Accurate ECN SYN (RFC 9768), IPv4 or
                                                       IPv6, as a client would open a connection
       malformed.py --spoofed FIRST COUNT DST PORTS    a SYN to each of PORTS (1,11,15) from each
                                                       of COUNT forged IPv4 sources from FIRST on
       malformed.py --udp DST PORT SRC...              one datagram to DST:PORT from each SRC
                                                       (any source: IPv4-mapped, 0/8, ...), with
                                                       its checksum
"""

import ipaddress
import socket
import struct
import sys


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF


def tcp(port: int, offset_words: int = 5, flags: int = 0x02) -> bytes:
    return struct.pack("!HHIIBBHHH", 40000, port, 1, 0, offset_words << 4, flags, 1024, 0, 0)


def udp(port: int, claimed: int, payload: bytes = b"abc") -> bytes:
    """A UDP header claiming `claimed` bytes in all, and `payload`; no checksum (IPv4 only)."""
    return struct.pack("!HHHH", 40000, port, claimed, 0) + payload


def ipv4(src: str, dst: str, payload: bytes, proto: int = 6) -> bytes:
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(payload),
        1,
        0,
        64,
        proto,
        0,
        socket.inet_aton(src),
        socket.inet_aton(dst),
    )
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + payload


def ipv6(src: str, dst: str, next_header: int, payload: bytes) -> bytes:
    return (
        struct.pack(
            "!IHBB16s16s",
            6 << 28,
            len(payload),
            next_header,
            64,
            socket.inet_pton(socket.AF_INET6, src),
            socket.inet_pton(socket.AF_INET6, dst),
        )
        + payload
    )


def with_checksum(src: str, dst: str, proto: int, segment: bytes, at: int) -> bytes:
    """`segment` (TCP or UDP) with its checksum, over the pseudo-header, at offset `at`."""
    family = socket.AF_INET6 if ":" in dst else socket.AF_INET
    addresses = socket.inet_pton(family, src) + socket.inet_pton(family, dst)
    if family == socket.AF_INET:
        pseudo = addresses + struct.pack("!BBH", 0, proto, len(segment))
    else:
        pseudo = addresses + struct.pack("!I3xB", len(segment), proto)
    return segment[:at] + struct.pack("!H", checksum(pseudo + segment)) + segment[at + 2 :]


def send_raw(src: str, dst: str, proto: int, segment: bytes) -> None:
    if ":" in dst:
        socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW).sendto(
            ipv6(src, dst, proto, segment), (dst, 0)
        )
    else:
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW).sendto(
            ipv4(src, dst, segment, proto), (dst, 0)
        )


def accecn_syn(src: str, dst: str, port: int) -> bytes:
    """SYN with AE, CWR and ECE set (RFC 9768's request for Accurate ECN) and the options a Linux
    client sends: MSS, SACK permitted, a timestamp, window scale; with its checksum."""
    options = bytes.fromhex("020405b40402080a1a2b3c4d0000000001030307")
    words = 5 + len(options) // 4
    segment = (
        struct.pack("!HHIIBBHHH", 40001, port, 7, 0, (words << 4) | 0x1, 0xC2, 64240, 0, 0)
        + options
    )
    return with_checksum(src, dst, 6, segment, 16)


def send_udp(dst: str, port: int, sources: list[str]) -> None:
    for src in sources:
        send_raw(src, dst, 17, with_checksum(src, dst, 17, udp(port, 8 + 3), 6))


def dest_options_chain(count: int, last: int, payload: bytes) -> tuple[int, bytes]:
    """`count` destination-options headers (8 bytes each, PadN) in front of `payload`."""
    chain = b""
    for i in range(count):
        following = last if i == count - 1 else 60
        chain += struct.pack("!BB", following, 0) + b"\x01\x04\0\0\0\0"
    return 60, chain + payload


def send_with_options(src6: str, dst6: str, port: int, count: int) -> None:
    s6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s6.sendto(ipv6(src6, dst6, *dest_options_chain(count, 6, tcp(port))), (dst6, 0))


def send_spoofed(first: str, count: int, dst: str, ports: list[int]) -> None:
    s4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    for number in range(count):
        src = str(ipaddress.ip_address(first) + number)
        for port in ports:
            s4.sendto(ipv4(src, dst, tcp(port)), (dst, 0))


def main() -> None:
    if sys.argv[1] == "--spoofed":
        first, sources, dst, ports = sys.argv[2:6]
        send_spoofed(first, int(sources), dst, [int(p) for p in ports.split(",")])
        return
    if sys.argv[1] == "--options":
        count = int(sys.argv[5]) if len(sys.argv) > 5 else 1
        send_with_options(sys.argv[2], sys.argv[3], int(sys.argv[4]), count)
        return
    if sys.argv[1] == "--accecn":
        send_raw(
            sys.argv[2], sys.argv[3], 6, accecn_syn(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        )
        return
    if sys.argv[1] == "--udp":
        send_udp(sys.argv[2], int(sys.argv[3]), sys.argv[4:])
        return
    src4, dst4, src6, dst6 = sys.argv[1:5]
    port, udp_port = int(sys.argv[5]), int(sys.argv[6])
    s4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    v4 = [
        ipv4(src4, dst4, tcp(port)[:10]),  # TCP header cut short
        ipv4(src4, dst4, tcp(port, offset_words=15)),  # data offset beyond the packet
        ipv4(src4, dst4, tcp(port, offset_words=2)),  # data offset below the minimum
        # (An IP total length shorter than the packet cannot be sent: Linux rewrites it.)
        ipv4(src4, dst4, b"\x01\x02\x03"),  # three bytes of nothing
        # UDP lengths the kernel drops (UdpInErrors): shorter than the header, longer than
        # the datagram.
        ipv4(src4, dst4, udp(udp_port, 4), proto=17),
        ipv4(src4, dst4, udp(udp_port, 300), proto=17),
    ]
    for packet in v4:
        s4.sendto(packet, (dst4, 0))
    s6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
    fragment = struct.pack("!BBHI", 6, 0, (1 << 3), 7)  # offset 8: a non-first fragment
    v6 = [
        ipv6(src6, dst6, 6, tcp(port)[:8]),
        ipv6(src6, dst6, 6, tcp(port, offset_words=15)),
        ipv6(src6, dst6, *dest_options_chain(12, 6, tcp(port)[:12])),
        ipv6(src6, dst6, 44, fragment + tcp(port)),
        ipv6(src6, dst6, *dest_options_chain(3, 60, b"")),  # chain that runs off the end
        ipv6(src6, dst6, 17, udp(udp_port, 5)),
        ipv6(src6, dst6, 17, udp(udp_port, 300)),
        ipv6(f"::ffff:{src4}", dst6, 6, tcp(port)),  # IPv4-mapped: never on the wire, forged
    ]
    for packet in v6:
        s6.sendto(packet, (dst6, 0))
    print(len(v4) + len(v6))


if __name__ == "__main__":
    main()
