"""A gateway's other addresses from the neighbour table (net.local._router_addresses), with
the kernel's answer made up (no privileges): whatever the dump holds, nothing but IPv6
addresses with the gateway's link-layer address on its device come out, and nothing raises."""

import ipaddress
import socket
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portwarden.net import local, netlink

ROUTER_MAC, OTHER_MAC = bytes.fromhex("020000000001"), bytes.fromhex("02000000000c")
GATEWAY = local._NextHop(ipaddress.ip_address("fe80::1"), 2)


def neighbour(address: str, lladdr: bytes, ifindex: int = 2, state: int = 0x02) -> bytes:
    """An RTM_NEWNEIGH body as the kernel sends it (state 0x02: reachable)."""
    ip = ipaddress.ip_address(address)
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    attributes = b""
    for kind, value in ((1, ip.packed), (2, lladdr)):
        if value:
            attributes += struct.pack("=HH", 4 + len(value), kind) + value
            attributes += b"\0" * (netlink.align(len(value)) - len(value))
    return struct.pack("=BxxxiHBB", family, ifindex, state, 0, 1) + attributes


def found(monkeypatch: pytest.MonkeyPatch, messages: list[bytes]) -> set[str]:
    monkeypatch.setattr(netlink, "dump", lambda protocol, requests, name: messages)
    return {str(a) for a in local._router_addresses({GATEWAY})}


def test_the_routers_global_address_is_found_by_its_link_layer_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    messages = [
        neighbour("fe80::1", ROUTER_MAC),
        neighbour("2001:db8::fe", ROUTER_MAC, state=0x04),  # stale: still known
        neighbour("2001:db8::c", OTHER_MAC),
        neighbour("198.18.0.254", ROUTER_MAC),  # IPv4: left out (proxy ARP)
        neighbour("2001:db8:1::fe", ROUTER_MAC, ifindex=3),  # another device
        neighbour("2001:db8::fb", ROUTER_MAC, state=0x40),  # NOARP
        neighbour("2001:db8::fa", b"", state=0x01),  # incomplete: no link-layer address
    ]
    assert found(monkeypatch, messages) == {"fe80::1", "2001:db8::fe"}


def test_without_the_gateways_own_entry_nothing_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    assert found(monkeypatch, [neighbour("2001:db8::fe", ROUTER_MAC)]) == set()


@given(st.lists(st.binary(max_size=64), max_size=8))
def test_any_dump_gives_ipv6_addresses_only_and_never_raises(messages: list[bytes]) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(netlink, "dump", lambda protocol, requests, name: messages)
        assert all(a.version == 6 for a in local._router_addresses({GATEWAY}))
