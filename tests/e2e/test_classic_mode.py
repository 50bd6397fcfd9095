"""Classic mode (-tcp -udp) at its edges: datagrams that are for every host on the link, and
many ports with few file descriptors."""

import sys
from collections.abc import Iterator

import pytest

from portwarden.lab.network import NET4, Host, Lab
from tests.e2e.conftest import StartDaemon

_SEND = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.bind(("", int(sys.argv[3]) if len(sys.argv) > 3 else 0))
s.sendto(b"rwho", (sys.argv[1], int(sys.argv[2])))
"""


def send(host: Host, address: str, port: int, sport: int = 0) -> None:
    host.run([sys.executable, "-c", _SEND, address, str(port), str(sport)])


def test_a_subnet_broadcast_is_not_a_probe(lab: Lab, start_daemon: StartDaemon) -> None:
    """rwhod, NetBIOS and the like broadcast to every host: a bound socket gets those too."""
    daemon = start_daemon("-tcp", "-udp")
    attacker = lab.attackers[0]
    for address in (f"{NET4}.255", lab.target.ipv4):  # the broadcast first, then to the target
        send(attacker, address, 9)
    found = daemon.wait_for_attack(src=attacker.ipv4, kind="scan")
    assert (found["dst"], found["port"], found["mode"]) == (lab.target.ipv4, "9", "udp")
    assert len(daemon.attacks(src=attacker.ipv4)) == 1
    daemon.stop()


@pytest.fixture
def local_port_range(lab: Lab) -> Iterator[str]:
    """The target's ephemeral port range, widened to take in the tripwire 31337."""
    key = "net.ipv4.ip_local_port_range"
    old = lab.target.run(["sysctl", "-n", key]).stdout.split()
    lab.target.run(["sysctl", "-qw", f"{key}=31000 60999"])
    yield "31000-60999"
    lab.target.run(["sysctl", "-qw", f"{key}={old[0]} {old[1]}"])


def test_a_late_dns_reply_to_a_tripwire_in_the_local_port_range_is_no_probe(
    lab: Lab, start_daemon: StartDaemon, local_port_range: str
) -> None:
    """A resolver on the target that gave up has closed its port; the answer comes anyway."""
    daemon = start_daemon("-tcp", "-udp")
    daemon.wait_for(rf"udp: 1 tripwire ports are in this host's local port range "
                    rf"{local_port_range} .*: 31337; datagrams to them from source ports "
                    r"53,123 \(UDP_REPLY_SOURCE_PORTS\) are taken for late replies")  # fmt: skip
    server = lab.attackers[1]
    send(server, lab.target.ipv4, 31337, sport=53)  # the late answer
    send(server, lab.target.ipv4, 31337, sport=5300)  # anything else there is a probe
    found = daemon.wait_for_attack(src=server.ipv4, kind="scan")
    assert found["port"] == "31337"
    assert len(daemon.attacks(src=server.ipv4)) == 1
    daemon.stop()
