"""SmartVerify (net.ports.verify): a port held by a client's socket is no service. The kernel's
answers are stood in for; tests/lab/test_sockdiag.py asks the real kernel."""

import pytest

from portwarden.detect.probe import Proto
from portwarden.net import ports
from portwarden.net.ports import Owner, verify

HERE, PEER, STRANGER = bytes([198, 18, 0, 1]), bytes([198, 18, 0, 53]), bytes([198, 18, 0, 11])
PORT = 34555


def kernel(monkeypatch: pytest.MonkeyPatch, *, held: bool, services: set[int],
           receiver: dict[bytes, bool] | None = None) -> None:  # fmt: skip
    """A host where `PORT` is `held` by some socket, `services` have a listener or an
    unconnected UDP socket, and `receiver` maps a source to whether the socket that would get
    its datagram is connected (absent: no socket would; None: no udp_diag)."""

    def receiver_of(src: bytes, sport: int, dst: bytes, dport: int) -> bool | None:
        if receiver is None:
            raise OSError("sock_diag: No such file or directory")
        return receiver.get(src)

    monkeypatch.setattr(ports, "port_in_use", lambda proto, port: held)
    monkeypatch.setattr(ports, "bound_ports", lambda proto: frozenset(services))
    monkeypatch.setattr(ports, "udp_receiver_is_connected", receiver_of)


@pytest.mark.parametrize("proto", list(Proto))
def test_a_port_nobody_holds_is_a_tripwire(monkeypatch: pytest.MonkeyPatch, proto: Proto) -> None:
    kernel(monkeypatch, held=False, services=set(), receiver={})
    assert verify(proto, STRANGER, 40000, HERE, PORT) is Owner.NOBODY
    assert Owner.NOBODY.tripwire


@pytest.mark.parametrize("proto", list(Proto))
def test_a_service_is_no_tripwire(monkeypatch: pytest.MonkeyPatch, proto: Proto) -> None:
    kernel(monkeypatch, held=True, services={PORT}, receiver={})
    assert verify(proto, STRANGER, 40000, HERE, PORT) is Owner.SERVICE
    assert not Owner.SERVICE.tripwire


def test_the_local_port_of_an_outbound_connection_is_a_tripwire(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bind test fails (a connection or TIME_WAIT has the port) but nothing listens: the
    kernel answers a SYN with a reset, so a scanner finds it closed."""
    kernel(monkeypatch, held=True, services={22})
    owner = verify(Proto.TCP, STRANGER, 40000, HERE, PORT)
    assert owner is Owner.CLIENTS and owner.tripwire


def test_a_connected_udp_socket_gets_only_its_peers_datagrams(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kernel(monkeypatch, held=True, services=set(), receiver={PEER: True})
    reply = verify(Proto.UDP, PEER, 53, HERE, PORT)
    assert reply is Owner.PEER and not reply.tripwire
    probe = verify(Proto.UDP, STRANGER, 53, HERE, PORT)
    assert probe is Owner.CLIENTS and probe.tripwire


def test_an_unconnected_udp_socket_found_by_the_lookup_is_a_service(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One bound between the socket table read and the lookup."""
    kernel(monkeypatch, held=True, services=set(), receiver={STRANGER: False})
    assert verify(Proto.UDP, STRANGER, 9, HERE, PORT) is Owner.SERVICE


def test_without_udp_diag_a_held_udp_port_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """A reply cannot be told from a probe: PortSentry's way (held = not a tripwire), but no
    service either (no grace)."""
    kernel(monkeypatch, held=True, services=set(), receiver=None)
    assert verify(Proto.UDP, STRANGER, 9, HERE, PORT) is Owner.PEER
