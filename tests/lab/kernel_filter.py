"""Which crafted packets the raw sensors' kernel filters pass, asked of the real kernel.

Run as `python -m tests.lab.kernel_filter` in a network namespace of its own (`unshare -n`),
with a JSON request on stdin: {"tcp_ports": [...], "udp_ports": [...], "cases": [[family,
proto, packet_hex, via_packet_socket], ...]}. Prints a JSON list of booleans: was each
packet passed? Each packet is sent over loopback to a raw socket carrying the filter
(net/bpf.py), as the sensors use them, then a sentinel packet the filter always passes; the
packet passed if it was read before the sentinel. Packets are told apart by their source port
(the first two bytes after the IP header), unique per case. A non-first IPv4 fragment never
reaches a raw IP socket whole (the kernel holds it for reassembly), so such cases go to a
packet socket on loopback (AF_PACKET, SOCK_DGRAM), whose filter sees the IPv4 header first, as
a raw IPv4 socket's does.
"""

import json
import socket
import struct
import subprocess
import sys

from portwarden.net import bpf

SENTINEL_SPORT = 39999
ETH_P_IP = 0x0800
_PORTS = struct.Struct("!H")


def sentinel(family: int, proto: str, udp_port: int) -> bytes:
    """A FIN (always passed: it may be an OS probe) or a datagram to a tripwire."""
    if proto == "tcp":
        transport = struct.pack("!HHIIBBHHH", SENTINEL_SPORT, 80, 0, 0, 5 << 4, 0x01, 1024, 0, 0)
    else:
        transport = struct.pack("!HHHH", SENTINEL_SPORT, udp_port, 8, 0)
    return ip_packet(family, 6 if proto == "tcp" else 17, transport)


def ip_packet(family: int, number: int, transport: bytes, frag: int = 0) -> bytes:
    """`transport` behind an IPv4 (fragment field `frag`) or IPv6 header, loopback to loopback."""
    if family == 4:
        loopback = socket.inet_aton("127.0.0.1")
        return (
            struct.pack(
                "!BBHHHBBH4s4s",
                0x45,
                0,
                20 + len(transport),
                1,
                frag,
                64,
                number,
                0,
                loopback,
                loopback,
            )
            + transport
        )
    loopback = socket.inet_pton(socket.AF_INET6, "::1")
    return (
        struct.pack("!IHBB16s16s", 6 << 28, len(transport), number, 64, loopback, loopback)
        + transport
    )


def source_port(data: bytes, with_ip_header: bool) -> int:
    offset = (data[0] & 0x0F) * 4 if with_ip_header else 0
    return _PORTS.unpack_from(data, offset)[0] if len(data) >= offset + 2 else -1


def passed(
    receiver: socket.socket,
    with_ip_header: bool,
    sender: socket.socket,
    packet: bytes,
    mark: bytes,
    destination: str,
) -> bool:
    sport = _PORTS.unpack_from(packet, 20 if destination == "127.0.0.1" else 40)[0]
    sender.sendto(packet, (destination, 0))
    sender.sendto(mark, (destination, 0))
    seen = False
    while True:
        found = source_port(receiver.recv(65535), with_ip_header)
        if found == SENTINEL_SPORT:
            return seen
        seen = seen or found == sport


def main() -> None:
    request = json.load(sys.stdin)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    senders = {
        4: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW),
        6: socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW),
    }
    results = []
    for family, proto, packet_hex, via_packet_socket in request["cases"]:
        ports = request[f"{proto}_ports"]
        make = bpf.tcp_filter if proto == "tcp" else bpf.udp_filter
        number = socket.IPPROTO_TCP if proto == "tcp" else socket.IPPROTO_UDP
        if via_packet_socket:
            receiver = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
            receiver.bind(("lo", ETH_P_IP))
        else:
            receiver = socket.socket(
                socket.AF_INET if family == 4 else socket.AF_INET6, socket.SOCK_RAW, number
            )
        with receiver:
            bpf.attach(receiver, make(ports, family == 4))
            receiver.settimeout(2.0)
            destination = "127.0.0.1" if family == 4 else "::1"
            mark = sentinel(family, proto, ports[0])
            results.append(
                passed(
                    receiver,
                    family == 4,
                    senders[family],
                    bytes.fromhex(packet_hex),
                    mark,
                    destination,
                )
            )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
