"""Classic mode's sockets: which peers are real sources (the raw modes' rule, and the forged
IPv4-mapped source that only the destination gives away on a dual-stack socket)."""

import ipaddress

import pytest

from portwarden.sensors.listener import _sender

TARGET4_SHOWN = "::ffff:198.18.0.1"  # an IPv4 datagram's destination on a dual-stack socket
TARGET6 = "2001:db8::1"


def sender(peer: str, local: str) -> str | None:
    found = _sender(ipaddress.ip_address(peer), ipaddress.ip_address(local))
    return None if found is None else str(found)


def test_a_real_ipv4_peer_is_unmapped() -> None:
    assert sender("::ffff:198.18.0.13", TARGET4_SHOWN) == "198.18.0.13"
    assert sender("198.18.0.13", "198.18.0.1") == "198.18.0.13"  # an IPv4-only socket


def test_a_native_ipv6_peer_is_itself() -> None:
    assert sender("2001:db8::d", TARGET6) == "2001:db8::d"
    assert sender("::1", "::1") == "::1"


def test_an_ipv6_datagram_forged_from_an_ipv4_mapped_source_is_dropped() -> None:
    """Seen as ::ffff:198.18.0.13 like a real IPv4 peer, but sent to a native IPv6 address:
    blocking 198.18.0.13 for it would block a bystander."""
    assert sender("::ffff:198.18.0.13", TARGET6) is None


@pytest.mark.parametrize(
    "peer",
    [
        "::ffff:0.1.2.3",
        "::ffff:240.0.0.5",
        "::ffff:0.0.0.7",
        "::ffff:224.0.0.1",
        "::ffff:255.255.255.255",
    ],
)
def test_an_ipv4_source_no_host_can_send_from_is_dropped(peer: str) -> None:
    assert sender(peer, TARGET4_SHOWN) is None


@pytest.mark.parametrize("peer", ["::", "::198.18.0.13", "::2", "ff02::1"])
def test_an_ipv6_source_no_host_can_send_from_is_dropped(peer: str) -> None:
    assert sender(peer, TARGET6) is None
