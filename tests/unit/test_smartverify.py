"""SmartVerify (net.ports.verify): who has a port. The kernel's answers are stood in for;
tests/lab/test_sockdiag.py asks the real kernel for the socket tables."""

import pytest

from portwarden.detect.probe import Proto
from portwarden.net import ports
from portwarden.net.ports import Owner, verify

PORT = 34555


def kernel(monkeypatch: pytest.MonkeyPatch, *, held: bool, services: set[int]) -> None:
    """A host where `PORT` is `held` by some socket (the bind test fails) and `services` have
    a listener or an unconnected UDP socket."""
    monkeypatch.setattr(ports, "port_in_use", lambda proto, port, witness: held)
    monkeypatch.setattr(ports, "bound_ports", lambda proto: frozenset(services))


@pytest.mark.parametrize("proto", list(Proto))
def test_a_port_nobody_holds_is_a_tripwire(monkeypatch: pytest.MonkeyPatch, proto: Proto) -> None:
    kernel(monkeypatch, held=False, services=set())
    assert verify(proto, PORT) is Owner.NOBODY and Owner.NOBODY.tripwire


@pytest.mark.parametrize("proto", list(Proto))
def test_a_service_is_no_tripwire(monkeypatch: pytest.MonkeyPatch, proto: Proto) -> None:
    kernel(monkeypatch, held=True, services={PORT})
    assert verify(proto, PORT) is Owner.SERVICE and not Owner.SERVICE.tripwire


def test_the_local_port_of_an_outbound_connection_is_a_tripwire(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bind test fails (a connection or TIME_WAIT has the port) but nothing listens: the
    kernel answers a SYN with a reset, so a scanner finds it closed."""
    kernel(monkeypatch, held=True, services={22})
    owner = verify(Proto.TCP, PORT)
    assert owner is Owner.CLIENTS and owner.tripwire


def test_a_udp_port_only_connected_sockets_hold_is_left_alone_but_is_no_service(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A DNS query's source port: its answer cannot be told reliably from a probe while the
    socket is there (PortSentry's way), and it starts no SERVICE_GONE_GRACE either."""
    kernel(monkeypatch, held=True, services={53})
    owner = verify(Proto.UDP, PORT)
    assert owner is Owner.UDP_CLIENTS and not owner.tripwire and owner is not Owner.SERVICE
