"""The packet parser on hostile bytes, and naming of scans and OS probes."""

import contextlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portwarden import limits
from portwarden.detect.probe import (
    flag_names,
    os_probe_name,
    part_of_a_connection,
    tcp_os_tool,
    tcp_scan_type,
    udp_os_tool,
)
from portwarden.net.packet import (
    ACK,
    CWR,
    ECE,
    FIN,
    PSH,
    RST,
    SYN,
    URG,
    MalformedPacket,
    can_send_from,
    parse_ipv4,
    parse_ipv6,
    parse_transport,
    tcp_timestamp,
)

SRC4, DST4 = bytes([198, 18, 0, 11]), bytes([198, 18, 0, 1])
_LAB6 = bytes.fromhex("20010db8") + bytes(11)
SRC6, DST6 = _LAB6 + b"\x0b", _LAB6 + b"\x01"  # 2001:db8::b, 2001:db8::1


def tcp(
    dport: int = 11,
    flags: int = SYN,
    options: bytes = b"",
    window: int = 1024,
    reserved: int = 0,
    urgent: int = 0,
) -> bytes:
    words = 5 + len(options) // 4
    return (
        struct.pack(
            "!HHIIBBHHH", 40000, dport, 1, 0, (words << 4) | reserved, flags, window, 0, urgent
        )
        + options
    )


def ipv4(payload: bytes, options: bytes = b"", frag: int = 0, proto: int = 6) -> bytes:
    ihl = 5 + len(options) // 4
    return (
        struct.pack(
            "!BBHHHBBH4s4s",
            0x40 | ihl,
            0,
            ihl * 4 + len(payload),
            1,
            frag,
            64,
            proto,
            0,
            SRC4,
            DST4,
        )
        + options
        + payload
    )


def ipv6(next_header: int, payload: bytes) -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), next_header, 64, SRC6, DST6) + payload


NMAP_T2_OPTIONS = bytes.fromhex("03030a0102040109080affffffff000000000402")
NMAP_SEQ1_OPTIONS = bytes.fromhex("03030a01020405b4080affffffff000000000402")
NMAP_ECN_OPTIONS = bytes.fromhex("03030a01020405b404020101")
LINUX_SYN_OPTIONS = bytes.fromhex("020405b40402080a123456780000000001030307")


def test_ipv4_tcp_with_options() -> None:
    packet = parse_ipv4(ipv4(tcp(flags=FIN | PSH | URG), options=b"\x07\x07\x04" + bytes(5)))
    assert (packet.sport, packet.dport, packet.flags) == (40000, 11, FIN | PSH | URG)
    assert packet.ip_options and packet.src == SRC4 and packet.dst == DST4


def test_ipv6_extension_chain_to_udp() -> None:
    udp = struct.pack("!HHHH", 5000, 161, 8 + 3, 0) + b"abc"
    dest_opts = struct.pack("!BB", 17, 0) + b"\x01\x04\0\0\0\0"
    hop = struct.pack("!BB", 60, 0) + b"\x01\x04\0\0\0\0"
    packet = parse_ipv6(ipv6(0, hop + dest_opts + udp))
    assert (packet.proto, packet.dport, packet.payload_head, packet.ip_options) == (
        17,
        161,
        b"abc",
        True,
    )


_HOP_BY_HOP, _ROUTING, _FRAGMENT, _AUTH, _DEST_OPTS = 0, 43, 44, 51, 60
_IPV6_HEADER = 40


def extension_chain(chain: list[tuple[int, int]], last: int = 6) -> bytes:
    """IPv6 extension headers, each (kind, its length field), each naming the next; the last
    names `last`. A fragment header is a first fragment whatever its length field."""
    data = b""
    for index, (kind, units) in enumerate(chain):
        following = chain[index + 1][0] if index + 1 < len(chain) else last
        if kind == _FRAGMENT:
            data += struct.pack("!BBHI", following, 0, 0, 1)
        else:
            size = (units + 2) * 4 if kind == _AUTH else (units + 1) * 8
            data += struct.pack("!BB", following, units) + bytes(size - 2)
    return data


@pytest.mark.parametrize("count", [9, 12, 300])
def test_a_long_extension_chain_is_followed_as_the_kernel_follows_it(count: int) -> None:
    """Linux delivers a SYN behind 9 or 12 destination-options headers, and the live daemon
    reports it: replay of the same capture must too."""
    chain = extension_chain([(_DEST_OPTS, 0)] * count)
    packet = parse_ipv6(ipv6(_DEST_OPTS, chain + tcp()))
    assert (packet.proto, packet.dport, packet.flags, packet.ip_options) == (6, 11, SYN, True)


_CHAIN_KINDS = st.sampled_from([_HOP_BY_HOP, _ROUTING, _FRAGMENT, _AUTH, _DEST_OPTS])


@given(st.lists(st.tuples(_CHAIN_KINDS, st.integers(0, 3)), max_size=100))
def test_a_well_formed_chain_of_any_length_reaches_its_segment(
    chain: list[tuple[int, int]],
) -> None:
    packet = parse_ipv6(ipv6(chain[0][0] if chain else 6, extension_chain(chain) + tcp()))
    assert (packet.proto, packet.dport) == (6, 11)
    assert packet.ip_options is any(kind in (_HOP_BY_HOP, _DEST_OPTS) for kind, _ in chain)


@given(
    st.lists(st.tuples(_CHAIN_KINDS, st.integers(0, 255)), max_size=100),
    st.integers(0, 255),
    st.binary(max_size=60),
    st.integers(0, 0xFFFF),
)
def test_any_extension_chain_parses_or_raises_malformed(
    chain: list[tuple[int, int]], last: int, tail: bytes, cut: int
) -> None:
    """Lengths that run past the packet, any protocol at the end, any capture length."""
    data = ipv6(chain[0][0] if chain else last, extension_chain(chain, last) + tail)
    with contextlib.suppress(MalformedPacket):
        parse_ipv6(data[: _IPV6_HEADER + cut])


@pytest.mark.parametrize(
    "data",
    [
        ipv4(tcp()[:12]),  # short TCP header
        ipv4(tcp(), frag=1),  # non-first fragment
        ipv4(tcp(), proto=1),  # ICMP
        ipv4(tcp())[:19],  # short IP header
        b"\x46" + ipv4(tcp())[1:],  # IHL claims options that are the TCP header
        ipv6(44, struct.pack("!BBHI", 6, 0, 8, 1) + tcp()),  # IPv6 non-first fragment
        ipv6(60, struct.pack("!BB", 6, 200) + bytes(6) + tcp()),  # length past the end
    ],
)
def test_broken_packets_are_refused_by_name(data: bytes) -> None:
    with pytest.raises(MalformedPacket):
        parse_ipv4(data) if data[0] >> 4 == 4 else parse_ipv6(data)


@given(st.binary(max_size=200))
def test_any_bytes_parse_or_raise_malformed(data: bytes) -> None:
    for parse in (parse_ipv4, parse_ipv6):
        with contextlib.suppress(MalformedPacket):
            parse(data)


@given(st.binary(max_size=80), st.integers(0, 255), st.integers(0, 15))
def test_any_ipv4_wrapped_segment_parses_or_raises(tail: bytes, flags: int, words: int) -> None:
    segment = struct.pack("!HHIIBBHHH", 1, 2, 3, 4, words << 4, flags, 5, 6, 7) + tail
    try:
        parse_ipv4(ipv4(segment))
        parse_transport(6, segment, SRC6, DST6)
    except MalformedPacket:
        pass


def udp(claimed: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", 5000, 9, claimed, 0) + payload


@pytest.mark.parametrize(
    "data",
    [
        ipv4(udp(0, b"abc"), proto=17),  # shorter than the UDP header
        ipv4(udp(7, b"abc"), proto=17),
        ipv4(udp(308, b"C" * 9), proto=17),  # longer than the datagram
        ipv6(17, udp(5, b"abc")),
        ipv6(17, udp(12, b"abc")),
    ],
)
def test_a_bad_udp_length_is_malformed_as_the_kernel_drops_it(data: bytes) -> None:
    """The kernel drops these (UdpInErrors): no service, nor classic mode, ever sees them."""
    with pytest.raises(MalformedPacket, match="bad UDP length"):
        parse_ipv4(data) if data[0] >> 4 == 4 else parse_ipv6(data)


@pytest.mark.parametrize(
    "src",
    [
        bytes(10) + b"\xff\xff" + bytes([198, 18, 0, 12]),  # ::ffff:198.18.0.12
        bytes(16),  # ::
        b"\xff\x02" + bytes(13) + b"\x01",  # ff02::1
        bytes([224, 0, 0, 1]),
        bytes([255, 255, 255, 255]),
        bytes([0, 0, 0, 0]),
        bytes([0, 1, 2, 3]),
        bytes([240, 0, 0, 5]),
        bytes(12) + bytes([198, 18, 0, 13]),  # ::198.18.0.13, IPv4-compatible (deprecated)
        bytes(15) + b"\x02",  # ::2, IPv4-compatible too
    ],
)
def test_a_source_no_host_can_send_from_is_refused(src: bytes) -> None:
    """Forged: reporting it would name nobody, blocking it would stop nobody."""
    with pytest.raises(MalformedPacket, match="source address cannot send"):
        parse_transport(6, tcp(), src, DST6 if len(src) == 16 else DST4)


def test_the_ipv6_loopback_source_is_not_forged() -> None:
    """`::1` is in the IPv4-compatible range, but it is the loopback: local probes come from it."""
    assert can_send_from(bytes(15) + b"\x01")
    assert parse_transport(6, tcp(), bytes(15) + b"\x01", DST6).dport


def test_udp_length_zero_over_ipv6_is_the_whole_datagram() -> None:
    """RFC 2675's jumbogram length, which Linux takes for any datagram, not only jumbograms."""
    assert parse_ipv6(ipv6(17, udp(0, b"abc"))).payload_len == 3
    padded = parse_ipv6(ipv6(17, udp(10, b"abc")))  # the rest is padding
    assert (padded.payload_len, padded.payload_head) == (2, b"ab")


@given(st.integers(0, 0xFFFF), st.binary(max_size=40), st.booleans())
def test_a_udp_datagram_parses_as_the_kernel_would_take_it(
    claimed: int, payload: bytes, v6: bool
) -> None:
    data = udp(claimed, payload)
    wire = len(data)
    whole = claimed or (wire if v6 else 0)  # IPv6 takes 0 for the whole datagram
    try:
        packet = parse_ipv6(ipv6(17, data)) if v6 else parse_ipv4(ipv4(data, proto=17))
    except MalformedPacket:
        assert not 8 <= whole <= wire
    else:
        assert 8 <= whole <= wire and packet.payload_len == whole - 8


@given(st.binary(max_size=60))
def test_timestamp_walk_never_raises(options: bytes) -> None:
    tcp_timestamp(options)


@pytest.mark.parametrize(
    ("flags", "name"),
    [
        (SYN, "TCP SYN/Normal scan"),
        (SYN | ECE | CWR, "TCP SYN/Normal scan"),
        (FIN, "TCP FIN scan"),
        (0, "TCP NULL scan"),
        (ECE, "TCP odd-flags scan (ECE)"),  # not NULL: a flag is set
        (CWR, "TCP odd-flags scan (CWR)"),
        (FIN | ECE, "TCP FIN scan"),
        (FIN | PSH | URG, "TCP XMAS scan"),
        (SYN | FIN, "TCP odd-flags scan (FIN+SYN)"),
        (FIN | SYN | PSH | URG, "TCP odd-flags scan (FIN+SYN+PSH+URG)"),
        (SYN | RST, "TCP odd-flags scan (SYN+RST)"),
        (0xFF, "TCP odd-flags scan (FIN+SYN+RST+PSH+ACK+URG+ECE+CWR)"),
    ],
)
def test_scan_names(flags: int, name: str) -> None:
    assert tcp_scan_type(flags) == name


@pytest.mark.parametrize(
    ("flags", "connection"),
    [
        (ACK, True),
        (RST, True),
        (RST | ACK, True),
        (FIN | ACK, True),
        (PSH | ACK, True),
        (SYN | ACK, True),  # a late answer to a connection of ours: no probe
        (SYN | ACK | ECE, True),
        (SYN | RST, False),
        (SYN | RST | ACK, False),
        (SYN | FIN | ACK, False),
        (0xFF, False),
        (SYN, False),
        (FIN, False),
        (0, False),
        (SYN | FIN, False),  # no ACK, no RST: probes
    ],
)
def test_only_forged_flag_combinations_with_ack_or_rst_are_probes(
    flags: int, connection: bool
) -> None:
    assert part_of_a_connection(flags) is connection


@pytest.mark.parametrize(
    ("data", "tool"),
    [
        (tcp(flags=0, options=NMAP_T2_OPTIONS, window=128), "nmap"),  # T2
        (tcp(flags=SYN | FIN | PSH | URG, window=256), "nmap"),  # T3 without options
        (
            tcp(
                flags=SYN | ECE | CWR, reserved=8, urgent=0xF7F5, window=3, options=NMAP_ECN_OPTIONS
            ),
            "nmap",
        ),  # ECN probe over IPv4: a reserved bit set
        (
            tcp(flags=SYN | ECE | CWR, urgent=0xF7F5, window=3, options=NMAP_ECN_OPTIONS),
            "nmap",
        ),  # ECN probe over IPv6: none
        (tcp(flags=SYN, options=NMAP_SEQ1_OPTIONS, window=1), "nmap"),  # SEQ1
        (tcp(flags=SYN | ECE | CWR), "queso"),  # no options at all
        (tcp(flags=SYN | FIN), "queso"),
        (tcp(flags=PSH), "queso"),
        # A Linux client negotiating ECN: MSS, SACK, timestamps, window scale; no reserved bit.
        (tcp(flags=SYN | ECE | CWR, options=LINUX_SYN_OPTIONS), None),
        # The same asking for Accurate ECN (RFC 9768): AE, the former reserved bit, set too.
        (tcp(flags=SYN | ECE | CWR, reserved=1, options=LINUX_SYN_OPTIONS), None),
        (tcp(flags=SYN, reserved=1, options=LINUX_SYN_OPTIONS), None),
        (tcp(flags=SYN | FIN, options=LINUX_SYN_OPTIONS), None),  # odd, but not queso's
        (tcp(flags=SYN, options=LINUX_SYN_OPTIONS), None),
        (tcp(flags=FIN), None),
    ],
)
def test_os_probe_signatures(data: bytes, tool: str | None) -> None:
    assert tcp_os_tool(parse_transport(6, data, SRC4, DST4)) == tool


def test_nmap_udp_probe() -> None:
    udp = struct.pack("!HHHH", 5000, 9, 308, 0)
    assert udp_os_tool(parse_transport(17, udp + b"C" * 300, SRC4, DST4)) == "nmap"
    # A sensor keeps CAPTURE_BYTES of each packet: the length comes from the header.
    captured = ipv4(udp + b"C" * 300, proto=17)[: limits.CAPTURE_BYTES]
    assert udp_os_tool(parse_ipv4(captured)) == "nmap"
    captured6 = ipv6(17, udp + b"C" * 300)[: limits.CAPTURE_BYTES]
    assert udp_os_tool(parse_ipv6(captured6)) == "nmap"
    assert udp_os_tool(parse_transport(17, udp + b"C" * 100, SRC6, DST6, length=308)) == "nmap"
    short = struct.pack("!HHHH", 5000, 9, 18, 0)
    assert udp_os_tool(parse_transport(17, short + b"C" * 10, SRC4, DST4)) is None
    # A 17-byte datagram whose UDP header claims 308 is no probe at all (below).


def test_flag_names() -> None:
    assert flag_names(SYN | ACK) == "SYN+ACK"
    assert flag_names(0) == "NULL"
    assert flag_names(SYN, reserved=1) == "SYN+AE"  # RFC 9768's name for the bit
    assert flag_names(SYN, reserved=0b1010) == "SYN+RES"
    assert flag_names(SYN | ECE | CWR, reserved=0b1001) == "SYN+ECE+CWR+AE+RES"


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (tcp(flags=SYN, options=NMAP_SEQ1_OPTIONS, window=1), "SEQ1"),
        (
            tcp(
                flags=SYN,
                options=bytes.fromhex("080affffffff0000000001010303050102040280"),
                window=4,
            ),
            "SEQ3",
        ),
        (
            tcp(flags=SYN, options=bytes.fromhex("0402080affffffff0000000003030a00"), window=4),
            "SEQ4",
        ),
        (tcp(flags=SYN | ECE | CWR, urgent=0xF7F5, window=3, options=NMAP_ECN_OPTIONS), "ECN"),
        (tcp(flags=0, options=NMAP_T2_OPTIONS, window=128), "T2"),
        (tcp(flags=SYN, options=NMAP_T2_OPTIONS, window=31337), "T5"),
        (tcp(flags=SYN, options=NMAP_T2_OPTIONS, window=999), ""),  # nmap's, but not one we name
    ],
)
def test_nmap_probes_are_named_as_nmap_names_them(data: bytes, name: str) -> None:
    packet = parse_transport(6, data, SRC6, DST6)
    assert os_probe_name(packet, tcp_os_tool(packet)) == name
