"""A service that stops or restarts in the advanced modes: its clients reconnecting are not
scanners (SERVICE_GONE_GRACE), while a port that never had a service is still a tripwire."""

import sys
import time
from collections.abc import Iterator

import pytest

from portwarden import limits
from portwarden.lab.network import Host, Lab
from tests.e2e.conftest import StartDaemon
from tests.lab.daemon import RunningDaemon
from tests.lab.services import echo_client, tcp_echo_server, udp_echo_server

TCP_SERVICE, UDP_SERVICE = 80, 69  # inside the advanced range (below 1024)
NEVER_SERVED_TCP, NEVER_SERVED_UDP = 81, 70

_KNOCK = """
import socket, sys
host, proto, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
if proto == "tcp":
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        pass  # refused: the service is gone
else:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"hello again", (host, port))
"""


def knock(client: Host, target: str, proto: str, port: int) -> None:
    """What a client of a service does: connect (TCP) or send a request (UDP)."""
    client.run([sys.executable, "-c", _KNOCK, target, proto, str(port)])


@pytest.fixture(scope="module")
def daemon(lab: Lab, start_daemon: StartDaemon) -> Iterator[RunningDaemon]:
    yield start_daemon("-atcp", "-audp")


def test_clients_of_a_stopped_service_are_not_scanners(lab: Lab, daemon: RunningDaemon) -> None:
    servers = [tcp_echo_server(lab.target, TCP_SERVICE), udp_echo_server(lab.target, UDP_SERVICE)]
    time.sleep(limits.REFRESH_S + 1)  # the daemon has seen the services
    assert echo_client(lab.client, lab.target.ipv4, TCP_SERVICE, UDP_SERVICE, 2) == 4
    for server in servers:
        server.kill()
        server.wait()
    time.sleep(limits.REFRESH_S + 1)  # and that they are gone (without grace: tripwires)
    mark = daemon.mark()
    knock(lab.client, lab.target.ipv4, "tcp", TCP_SERVICE)
    knock(lab.client, lab.target.ipv4, "udp", UDP_SERVICE)
    # Ports that never had a service are tripwires still; their lines come after any line for
    # the ports above would have.
    knock(lab.client, lab.target.ipv4, "tcp", NEVER_SERVED_TCP)
    knock(lab.client, lab.target.ipv4, "udp", NEVER_SERVED_UDP)
    daemon.wait_for_attack(mark, src=lab.client.ipv4, port=str(NEVER_SERVED_TCP), mode="atcp")
    daemon.wait_for_attack(mark, src=lab.client.ipv4, port=str(NEVER_SERVED_UDP), mode="audp")
    assert daemon.attacks(mark, port=str(TCP_SERVICE)) == []
    assert daemon.attacks(mark, port=str(UDP_SERVICE)) == []
