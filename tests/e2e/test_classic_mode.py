"""Classic mode (-tcp -udp) at its edges: datagrams that are for every host on the link, and
many ports with few file descriptors."""

import sys

from portwarden.lab.network import NET4, Lab
from tests.e2e.conftest import StartDaemon

_SEND = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.sendto(b"rwho", (sys.argv[1], int(sys.argv[2])))
"""


def test_a_subnet_broadcast_is_not_a_probe(lab: Lab, start_daemon: StartDaemon) -> None:
    """rwhod, NetBIOS and the like broadcast to every host: a bound socket gets those too."""
    daemon = start_daemon("-tcp", "-udp")
    attacker = lab.attackers[0]
    for address in (f"{NET4}.255", lab.target.ipv4):  # the broadcast first, then to the target
        attacker.run([sys.executable, "-c", _SEND, address, "9"])
    found = daemon.wait_for_attack(src=attacker.ipv4, kind="scan")
    assert (found["dst"], found["port"], found["mode"]) == (lab.target.ipv4, "9", "udp")
    assert len(daemon.attacks(src=attacker.ipv4)) == 1
    daemon.stop()
