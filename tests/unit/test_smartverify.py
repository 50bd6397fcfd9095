"""SmartVerify (net.ports.verify): who has a port, at the probe's destination address. The
kernel's answers are stood in for; tests/lab/test_sockdiag.py asks the real kernel for the
socket tables and tests/e2e/test_service_addresses.py runs the sensors on real sockets."""

import ipaddress

import pytest

from portwarden.net import ports
from portwarden.net.addresses import Proto
from portwarden.net.ports import ANY4, ANY6, Owner, Service, serves, verify

PORT = 34555
OUTSIDE4 = ipaddress.ip_address("198.18.0.1").packed
OUTSIDE6 = ipaddress.ip_address("2001:db8::1").packed
LOOPBACK4 = ipaddress.ip_address("127.0.0.1").packed


def kernel(monkeypatch: pytest.MonkeyPatch, *, held: bool, services: set[Service]) -> None:
    """A host where `PORT` is `held` by some socket (the bind test fails) and `services` have
    a listener or an unconnected UDP socket."""
    monkeypatch.setattr(ports, "port_in_use", lambda proto, address, port, witness: held)
    monkeypatch.setattr(
        ports, "services", lambda proto, port: frozenset(s for s in services if s[0] == port)
    )


@pytest.mark.parametrize("proto", list(Proto))
def test_a_port_nobody_holds_is_a_tripwire(monkeypatch: pytest.MonkeyPatch, proto: Proto) -> None:
    kernel(monkeypatch, held=False, services=set())
    assert verify(proto, OUTSIDE4, PORT) is Owner.NOBODY and Owner.NOBODY.tripwire


@pytest.mark.parametrize("proto", list(Proto))
@pytest.mark.parametrize("address", [ANY4, OUTSIDE4])
def test_a_service_is_no_tripwire(
    monkeypatch: pytest.MonkeyPatch, proto: Proto, address: bytes
) -> None:
    kernel(monkeypatch, held=True, services={(PORT, address)})
    assert verify(proto, OUTSIDE4, PORT) is Owner.SERVICE and not Owner.SERVICE.tripwire


def test_a_loopback_service_is_none_for_another_address(monkeypatch: pytest.MonkeyPatch) -> None:
    """exim4's localhost:25: the bind test to the loopback address fails, not to another."""
    kernel(monkeypatch, held=True, services={(PORT, LOOPBACK4)})
    assert verify(Proto.TCP, LOOPBACK4, PORT) is Owner.SERVICE
    assert verify(Proto.TCP, OUTSIDE4, PORT) is Owner.CLIENTS


def test_the_local_port_of_an_outbound_connection_is_a_tripwire(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bind test fails (a connection or TIME_WAIT has the port) but nothing listens: the
    kernel answers a SYN with a reset, so a scanner finds it closed."""
    kernel(monkeypatch, held=True, services={(22, ANY4)})
    owner = verify(Proto.TCP, OUTSIDE4, PORT)
    assert owner is Owner.CLIENTS and owner.tripwire


def test_a_udp_port_only_connected_sockets_hold_is_left_alone_but_is_no_service(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A DNS query's source port: its answer cannot be told reliably from a probe while the
    socket is there (PortSentry's way), and it starts no SERVICE_GONE_GRACE either."""
    kernel(monkeypatch, held=True, services={(53, ANY4)})
    owner = verify(Proto.UDP, OUTSIDE4, PORT)
    assert owner is Owner.UDP_CLIENTS and not owner.tripwire


def test_a_wildcard_serves_its_own_family_only() -> None:
    """An IPv4-only service is closed over IPv6, and the other way round; net.ports.services
    adds both wildcards for an IPv6 one without IPV6_V6ONLY."""
    assert serves(frozenset({(PORT, ANY4)}), PORT, OUTSIDE4)
    assert not serves(frozenset({(PORT, ANY4)}), PORT, OUTSIDE6)
    assert serves(frozenset({(PORT, ANY6)}), PORT, OUTSIDE6)
    assert not serves(frozenset({(PORT, ANY6)}), PORT, OUTSIDE4)
    assert not serves(frozenset({(PORT, OUTSIDE4)}), PORT + 1, OUTSIDE4)
