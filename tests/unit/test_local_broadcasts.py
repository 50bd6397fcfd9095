"""This host's subnet broadcast and network addresses, read from the kernel (no privileges)."""

import ipaddress

import pytest

from portwarden.net.local import broadcast_addresses, interface_addresses


def test_the_broadcast_and_network_addresses_of_loopbacks_8_are_found() -> None:
    """Every namespace has lo with 127.0.0.1/8 (the kernel makes it when lo comes up)."""
    loopback = ipaddress.ip_address("127.0.0.1")
    if loopback not in {entry.address for entry in interface_addresses()}:
        pytest.skip("lo is down here: nothing to look at")
    found = broadcast_addresses()
    assert ipaddress.IPv4Address("127.255.255.255") in found
    assert ipaddress.IPv4Address("127.0.0.0") in found
    assert loopback not in found
    assert all(a.version == 4 for a in found)
