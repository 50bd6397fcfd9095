"""A real late UDP reply in stealth mode: the target's client sends from a port that is a
tripwire inside its local port range and closes the socket; the answer, from one of
UDP_REPLY_SOURCE_PORTS, arrives after. No probe; the same answer from another port is one."""

import sys

from portwarden.lab.network import Lab
from tests.e2e.conftest import StartDaemon

_ANSWER_LATE = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
print("listening", flush=True)
data, peer = s.recvfrom(100)
time.sleep(0.5)  # the client has given up by now
s.sendto(b"answer", peer)
"""

_ASK_AND_GIVE_UP = """
import socket, sys
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    s.bind(("0.0.0.0", 31337))
    s.sendto(b"question", (sys.argv[1], int(sys.argv[2])))
"""


def test_a_late_answer_from_quic_is_no_probe(
    lab: Lab, start_daemon: StartDaemon, local_port_range: str
) -> None:
    # No grace for ports that had a socket: the exemption alone must keep the answer out.
    daemon = start_daemon("-sudp", conf='SERVICE_GONE_GRACE="0"\n')
    server = lab.attackers[2]
    for sport in (443, 5300):  # QUIC, then a port that is no reply source: the test can fail
        answering = server.popen(
            [sys.executable, "-c", _ANSWER_LATE, str(sport)], stdout=-1, text=True
        )
        assert answering.stdout is not None and "listening" in answering.stdout.readline()
        lab.target.run([sys.executable, "-c", _ASK_AND_GIVE_UP, server.ipv4, str(sport)])
        assert answering.wait(timeout=10) == 0
    found = daemon.wait_for_attack(src=server.ipv4, kind="scan")
    assert (found["port"], found["mode"]) == ("31337", "sudp")
    assert len(daemon.attacks(src=server.ipv4)) == 1


def test_a_reserved_tripwire_is_watched_from_every_source_port(
    lab: Lab, start_daemon: StartDaemon, local_port_range: str
) -> None:
    """With the tripwire in ip_local_reserved_ports no client of the target is given it, so no
    late reply can land there: a datagram from port 53 is a probe, and no late-reply line."""
    key = "net.ipv4.ip_local_reserved_ports"
    lab.target.run(["sysctl", "-qw", f"{key}=31337"])
    try:
        daemon = start_daemon("-sudp")
        server = lab.attackers[2]
        server.run([sys.executable, "-c", _SEND_FROM_53, lab.target.ipv4])
        found = daemon.wait_for_attack(src=server.ipv4, kind="scan")
        assert (found["port"], found["mode"]) == ("31337", "sudp")
        assert "UDP_REPLY_SOURCE_PORTS" not in daemon.log()
        daemon.stop()
    finally:
        lab.target.run(["sysctl", "-qw", f"{key}="])


_SEND_FROM_53 = """
import socket, sys
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    s.bind(("0.0.0.0", 53))
    s.sendto(b"late?", (sys.argv[1], 31337))
"""
