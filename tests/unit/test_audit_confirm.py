"""The confirmations used without sock_diag (audit/confirm.py), on real loopback sockets:
connect() accepted, refused, or dropped (a full accept queue drops the SYN, as a firewall
would); the UDP bind test on a port in use, a free one, and an address not on the host."""

import ipaddress
import socket
import time
from collections.abc import Iterator

import pytest

from portwarden.audit.confirm import tcp_accepts, udp_taken
from portwarden.audit.interfaces import Interface

LOOPBACK = Interface(ipaddress.ip_address("127.0.0.1"), "lo", 1)


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(0)
        yield sock


def test_a_listener_accepts_a_closed_port_refuses(listener: socket.socket) -> None:
    assert tcp_accepts(LOOPBACK, listener.getsockname()[1]) is True
    assert tcp_accepts(LOOPBACK, free_port(socket.SOCK_STREAM)) is False


def test_a_dropped_connection_is_unknown_within_the_time_limit(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    with socket.create_connection(("127.0.0.1", port), timeout=1):  # fills a queue of 0
        started = time.monotonic()
        assert tcp_accepts(LOOPBACK, port, timeout=0.3) is None  # the queue is full: dropped
        assert time.monotonic() - started < 1


def test_the_udp_bind_test_tells_a_port_in_use_from_a_free_one() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        assert udp_taken(LOOPBACK, taken.getsockname()[1]) is True
    assert udp_taken(LOOPBACK, free_port(socket.SOCK_DGRAM)) is False
    elsewhere = Interface(ipaddress.ip_address("198.18.255.254"), "eth9", 99)  # not ours
    assert udp_taken(elsewhere, 5353) is None  # a bind test only: nothing is sent
