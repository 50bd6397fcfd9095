"""Reaction-time probe, run inside the attacker's namespace by benchmarks/reaction.py.

usage: synprobe.py SRC DST TRIPWIRE_PORT SERVICE_PORT COUNT INTERVAL_US

Sends one SYN to the tripwire port, then COUNT SYNs to the open service, one every INTERVAL_US
microseconds, each from a new source port; prints how many of them the service answered with
SYN+ACK, i.e. how many got through before the block took hold.
"""

import socket
import struct
import sys
import time


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total >> 16) + (total & 0xFFFF)
    return ~total & 0xFFFF


def syn(src: str, dst: str, sport: int, dport: int) -> bytes:
    header = struct.pack("!HHIIBBHHH", sport, dport, 1000, 0, 5 << 4, 0x02, 64240, 0, 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, 20)
    value = checksum(pseudo + header)
    return header[:16] + struct.pack("!H", value) + header[18:]


def main() -> None:
    src, dst = sys.argv[1], sys.argv[2]
    tripwire, service, count, interval = (int(a) for a in sys.argv[3:7])
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
    sock.bind((src, 0))
    sock.setblocking(False)
    sock.sendto(syn(src, dst, 40000, tripwire), (dst, 0))
    start = time.perf_counter()
    for i in range(count):
        while time.perf_counter() < start + (i + 1) * interval / 1e6:
            pass
        sock.sendto(syn(src, dst, 41000 + i, service), (dst, 0))
    deadline = time.monotonic() + 0.5
    answered = set()
    while time.monotonic() < deadline:
        try:
            packet = sock.recv(200)
        except BlockingIOError:
            time.sleep(0.001)
            continue
        header = (packet[0] & 0x0F) * 4
        sport, dport = struct.unpack_from("!HH", packet, header)
        flags = packet[header + 13]
        if sport == service and packet[12:16] == socket.inet_aton(dst) and flags & 0x12 == 0x12:
            answered.add(dport)
    print(len(answered))


if __name__ == "__main__":
    main()
