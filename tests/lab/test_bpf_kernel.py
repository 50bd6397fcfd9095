"""The raw sensors' hand-assembled kernel filters (net/bpf.py), run by the real kernel: one
crafted packet per branch, each either passed or dropped (tests/lab/kernel_filter.py sends
them, in a network namespace of its own)."""

import json
import struct
import subprocess
import sys
from pathlib import Path

from portwarden.net.nmap_probes import NMAP_T_OPTIONS
from portwarden.net.packet import ACK, CWR, ECE, FIN, PSH, RST, SYN, URG
from tests.conftest import require_lab
from tests.lab.kernel_filter import ip_packet

TCP_TRIPWIRE, UDP_TRIPWIRE, OTHER = 11, 9, 80
LINUX_SYN_OPTIONS = bytes.fromhex("020405b40402080a123456780000000001030307")
NMAP_ECN_OPTIONS = bytes.fromhex("03030a01020405b404020101")
ALL = FIN | SYN | RST | PSH | ACK | URG | ECE | CWR
LINUX_ACK_OPTIONS = bytes.fromhex("0101080a1234567887654321")  # NOP, NOP, timestamp
OTHER_TSVAL = NMAP_T_OPTIONS.replace(b"\xff" * 4, bytes.fromhex("12345678"))
TSECR_SET = NMAP_T_OPTIONS.replace(bytes(4), bytes.fromhex("00000001"))
MORE_FRAGMENTS, OFFSET_8 = 0x2000, 1

# (what, flags, destination port, window, TCP options, reserved bits, urgent pointer, passed?)
TCP_CASES = [
    ("SYN to a port that is no tripwire", SYN, OTHER, 64240, LINUX_SYN_OPTIONS, 0, 0, False),
    ("SYN to a tripwire", SYN, TCP_TRIPWIRE, 64240, LINUX_SYN_OPTIONS, 0, 0, True),
    *[
        (f"SYN with nmap's window {w}", SYN, OTHER, w, b"", 0, 0, True)
        for w in (1, 4, 16, 63, 512, 31337)
    ],
    ("ECN SYN of a client", SYN | ECE | CWR, OTHER, 64240, LINUX_SYN_OPTIONS, 0, 0, False),
    (
        "Accurate ECN SYN (AE, a reserved bit)",
        SYN | ECE | CWR,
        OTHER,
        64240,
        LINUX_SYN_OPTIONS,
        1,
        0,
        False,
    ),
    ("ECN SYN to a tripwire", SYN | ECE | CWR, TCP_TRIPWIRE, 64240, LINUX_SYN_OPTIONS, 0, 0, True),
    (
        "nmap's ECN probe (reserved bit, urgent 0xF7F5)",
        SYN | ECE | CWR,
        OTHER,
        3,
        NMAP_ECN_OPTIONS,
        8,
        0xF7F5,
        True,
    ),
    ("queso's SYN+ECE+CWR without options", SYN | ECE | CWR, OTHER, 4096, b"", 0, 0, True),
    ("ACK", ACK, TCP_TRIPWIRE, 1024, b"", 0, 0, False),
    ("ACK with a connection's timestamp", ACK, TCP_TRIPWIRE, 1024, LINUX_ACK_OPTIONS, 0, 0, False),
    ("nmap's T4 (ACK with its T options)", ACK, OTHER, 1024, NMAP_T_OPTIONS, 0, 0, True),
    ("nmap's T6 (ACK with its T options)", ACK, OTHER, 32768, NMAP_T_OPTIONS, 0, 0, True),
    ("ACK with nmap's options, another TSval", ACK, OTHER, 1024, OTHER_TSVAL, 0, 0, False),
    ("ACK with nmap's options, TSecr not 0", ACK, OTHER, 1024, TSECR_SET, 0, 0, False),
    ("ACK with nmap's options and a reserved bit", ACK, OTHER, 1024, NMAP_T_OPTIONS, 1, 0, False),
    ("PSH+ACK with nmap's T options", PSH | ACK, OTHER, 1024, NMAP_T_OPTIONS, 0, 0, False),
    ("RST with nmap's T options", RST, OTHER, 1024, NMAP_T_OPTIONS, 0, 0, False),
    ("SYN+ACK with nmap's T options", SYN | ACK, OTHER, 1024, NMAP_T_OPTIONS, 0, 0, False),
    ("RST", RST, TCP_TRIPWIRE, 0, b"", 0, 0, False),
    ("RST+ACK", RST | ACK, TCP_TRIPWIRE, 0, b"", 0, 0, False),
    ("SYN+ACK (maybe a late answer)", SYN | ACK, TCP_TRIPWIRE, 1024, b"", 0, 0, False),
    ("FIN+ACK (Maimon)", FIN | ACK, TCP_TRIPWIRE, 1024, b"", 0, 0, False),
    ("SYN+RST", SYN | RST, OTHER, 1024, b"", 0, 0, True),
    ("SYN+FIN+ACK", SYN | FIN | ACK, OTHER, 1024, b"", 0, 0, True),
    ("every flag", ALL, OTHER, 1024, b"", 0, 0, True),
    ("SYN+FIN", SYN | FIN, OTHER, 1024, b"", 0, 0, True),
    ("FIN", FIN, OTHER, 1024, b"", 0, 0, True),
    ("NULL", 0, OTHER, 1024, b"", 0, 0, True),
]


def tcp(
    sport: int, flags: int, dport: int, window: int, options: bytes, reserved: int, urgent: int
) -> bytes:
    offset = (5 + len(options) // 4) << 4 | reserved
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, offset, flags, window, 0, urgent) + options


def udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def ask_kernel(cases: list[tuple[int, str, bytes, bool]]) -> list[bool]:
    request = {
        "tcp_ports": [TCP_TRIPWIRE, 31337],
        "udp_ports": [UDP_TRIPWIRE, 31337],
        "cases": [[f, p, packet.hex(), via] for f, p, packet, via in cases],
    }
    out = subprocess.run(
        ["unshare", "-n", sys.executable, "-m", "tests.lab.kernel_filter"],
        input=json.dumps(request),
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parent.parent.parent,
    )
    return json.loads(out.stdout)


def test_each_branch_of_the_kernel_filters_passes_or_drops_as_meant() -> None:
    require_lab()
    cases, expected = [], []
    sport = 40000
    for family in (4, 6):
        for what, flags, dport, window, options, reserved, urgent, passes in TCP_CASES:
            sport += 1
            segment = tcp(sport, flags, dport, window, options, reserved, urgent)
            cases.append((family, "tcp", ip_packet(family, 6, segment), False))
            expected.append((f"IPv{family} {what}", passes))
        for what, dport, payload, passes in (
            ("datagram to a tripwire", UDP_TRIPWIRE, b"x", True),
            ("datagram to a port that is no tripwire", OTHER, b"x", False),
            ("nmap's U1 (300 bytes) to a port that is no tripwire", OTHER, b"C" * 300, True),
        ):
            sport += 1
            cases.append((family, "udp", ip_packet(family, 17, udp(sport, dport, payload)), False))
            expected.append((f"IPv{family} {what}", passes))
    for proto, number, make in (
        ("tcp", 6, lambda port: tcp(port, FIN, OTHER, 1024, b"", 0, 0)),
        ("udp", 17, lambda port: udp(port, UDP_TRIPWIRE, b"x")),
    ):
        for what, frag, passes in (("first", MORE_FRAGMENTS, True), ("later", OFFSET_8, False)):
            sport += 1
            cases.append((4, proto, ip_packet(4, number, make(sport), frag), True))
            expected.append((f"IPv4 {proto} {what} fragment", passes))
    got = ask_kernel(cases)
    assert [(what, passed) for (what, _), passed in zip(expected, got, strict=True)] == expected
