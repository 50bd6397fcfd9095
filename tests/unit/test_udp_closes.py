"""The notices of this host's UDP sockets closing (net.udpcloses.parse_close) and what they
leave behind (sensors.closedclients.ClosedClients): which datagrams to a free port are
replies. tests/e2e/test_client_replies.py has the kernel send real ones."""

import ipaddress
import socket
import struct

from hypothesis import given
from hypothesis import strategies as st

from portwarden import limits
from portwarden.config import load_settings
from portwarden.net.udpcloses import UdpClose, parse_close
from portwarden.sensors.closedclients import ClosedClients

SERVER = ipaddress.ip_address("198.51.100.7")


def notice(family: int, port: int, peer: bytes, peer_port: int, cookie: int = 7) -> bytes:
    """An inet_diag_msg as a destroy broadcast carries it (the netlink header left off)."""
    source = bytes(16)
    return (
        bytes([family, 7, 0, 0])
        + struct.pack("!HH", port, peer_port)
        + source
        + peer.ljust(16, b"\0")
        + struct.pack("=III", 0, cookie & 0xFFFFFFFF, cookie >> 32)
        + bytes(20)
    )


def test_a_connected_socket_names_its_peer() -> None:
    closed = parse_close(notice(socket.AF_INET, 32770, SERVER.packed, 1194, cookie=1 << 40 | 5))
    assert closed == UdpClose(32770, SERVER, 1194, 1 << 40 | 5)


def test_an_ipv4_mapped_peer_is_the_ipv4_address() -> None:
    mapped = ipaddress.IPv6Address(f"::ffff:{SERVER}").packed
    assert parse_close(notice(socket.AF_INET6, 32771, mapped, 161)) == UdpClose(
        32771, SERVER, 161, 7
    )


def test_an_unconnected_socket_has_no_peer() -> None:
    assert parse_close(notice(socket.AF_INET6, 32772, bytes(16), 0)) == UdpClose(32772, None, 0, 7)


def test_short_or_foreign_notices_are_none() -> None:
    assert parse_close(notice(socket.AF_INET, 1, SERVER.packed, 1)[:40]) is None
    assert parse_close(notice(socket.AF_UNIX, 1, SERVER.packed, 1)) is None


@given(st.binary(max_size=120))
def test_damaged_notices_never_raise(data: bytes) -> None:
    parse_close(data)


def test_a_reply_from_a_closed_connected_sockets_peer_late_or_not() -> None:
    closed = ClosedClients()
    closed.add(32770, SERVER, 1194, at=100.0)
    assert closed.replied(32770, SERVER, 1194, arrived=99.0, now=100.1)
    assert closed.replied(32770, SERVER, 1194, arrived=150.0, now=150.0)  # a late reply
    assert not closed.replied(32770, SERVER, 1195, arrived=99.0, now=100.1)  # another port
    assert not closed.replied(32771, SERVER, 1194, arrived=99.0, now=100.1)
    assert not closed.replied(32770, SERVER, 1194, 99.0, now=100.0 + limits.CLOSED_UDP_CLIENT_S)


def test_an_unconnected_socket_took_what_arrived_before_it_closed() -> None:
    closed = ClosedClients()
    closed.add(32772, None, 0, at=100.0)
    assert closed.replied(32772, SERVER, 5353, arrived=99.9, now=100.05)
    assert not closed.replied(32772, SERVER, 5353, arrived=100.2, now=100.25)  # port was free


def test_a_late_answer_from_a_reply_source_to_a_closed_unconnected_socket_is_a_reply() -> None:
    """ntpdate's unconnected socket on 123 closed, its server's answer 0.3 s later from 123
    (one of UDP_REPLY_SOURCE_PORTS): a reply, whatever the port range. From another source port,
    or long after the close, the port is free: a probe."""
    closed = ClosedClients()
    closed.add(123, None, 0, at=100.0)
    sources = frozenset({53, 123})
    assert closed.replied(123, SERVER, 123, arrived=100.3, now=100.35, reply_sources=sources)
    assert not closed.replied(123, SERVER, 40000, arrived=100.3, now=100.35, reply_sources=sources)
    assert not closed.replied(123, SERVER, 123, arrived=100.3, now=100.35)  # no reply sources
    late = 100.0 + limits.CLOSED_UDP_CLIENT_S
    assert not closed.replied(123, SERVER, 123, arrived=late, now=late, reply_sources=sources)


def test_the_table_is_bounded_and_expires_oldest_first() -> None:
    closed = ClosedClients()
    for n in range(limits.CLOSED_UDP_CLIENTS_MAX + 10):
        closed.add(n % 65536, SERVER, 53, at=float(n))
    assert len(closed) == limits.CLOSED_UDP_CLIENTS_MAX
    assert not closed.replied(0, SERVER, 53, 0.0, now=1.0)  # evicted first
    last = float(limits.CLOSED_UDP_CLIENTS_MAX + 9)
    closed.expire(now=last + limits.CLOSED_UDP_CLIENT_S - 0.5)
    assert len(closed) == 1
    closed.expire(now=last + limits.CLOSED_UDP_CLIENT_S)
    assert len(closed) == 0


def test_the_dhcp_client_ports_are_no_advanced_tripwires_by_default() -> None:
    """A DHCP client often takes its server's answers on a packet socket, which no close notice
    covers: a renewal's answer to 68 (or 546) would be a probe, and block the DHCP server."""
    assert {67, 68, 546} <= load_settings(None).advanced_exclude_udp
