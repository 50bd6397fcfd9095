"""This host's own short-lived UDP clients (SNMP, RADIUS, Kerberos, OpenVPN...): a query, the
reply, the socket closed at once. The daemon reads its copy of the reply after the close, when
the port looks free; the reply is no probe. A real `nmap -sU` against the same ports still is.

The target's local port range is Debian's tripwires 32770-32774, so in stealth mode every
client socket sits on a watched port; in advanced mode every port is watched."""

import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from portwarden.lab.network import Lab
from tests.e2e.test_operations import status_json
from tests.lab.daemon import RunningDaemon
from tests.lab.drops import lab_drops, lost_in_the_lab, skip_if_lost_in_the_lab
from tests.lab.services import udp_echo_server

DEBIAN_UDP_PORTS = (
    "1,7,9,69,161,162,513,635,640,641,700,37444,34555,31335,32770,32771,32772,32773,32774,"
    "31337,54321"
)
SERVER_PORT = 1194  # OpenVPN's
ROUNDS = 10  # per address family and kind of socket

# Each query from a new socket, connected or not, closed the moment the reply is in.
_ASK_AND_CLOSE = """
import socket, sys
server, port, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
family = socket.AF_INET6 if ":" in server else socket.AF_INET
answered = 0
for i in range(rounds):
    for connected in (True, False):
        s = socket.socket(family, socket.SOCK_DGRAM)
        s.settimeout(5)
        if connected:
            s.connect((server, port))
            s.send(b"q%d" % i)
        else:
            s.sendto(b"q%d" % i, (server, port))
        answered += s.recv(100) == b"q%d" % i
        s.close()
print(answered)
"""


@pytest.fixture
def debian_tripwire_range(lab: Lab) -> Iterator[None]:
    key = "net.ipv4.ip_local_port_range"
    old = lab.target.run(["sysctl", "-n", key]).stdout.split()
    lab.target.run(["sysctl", "-qw", f"{key}=32770 32774"])
    yield
    lab.target.run(["sysctl", "-qw", f"{key}={old[0]} {old[1]}"])


@pytest.fixture
def answering_server(lab: Lab) -> Iterator[None]:
    server = udp_echo_server(lab.client, SERVER_PORT, delay_s=0.05)
    yield
    server.kill()
    server.wait()


@pytest.mark.parametrize(
    ("flag", "conf"),
    [
        ("-sudp", f'UDP_PORTS="{DEBIAN_UDP_PORTS}"\n'),
        ("-audp", 'UDP_PORTS="1"\nADVANCED_PORTS_UDP="65535"\n'),
    ],
    ids=["stealth", "advanced"],
)
def test_replies_to_clients_that_close_at_once_are_no_probes(
    lab: Lab,
    tmp_path: Path,
    started_daemons: list[RunningDaemon],
    debian_tripwire_range: None,
    answering_server: None,
    flag: str,
    conf: str,
) -> None:
    config = tmp_path / "portwarden.conf"
    # No grace: an unconnected client socket that SmartVerify or a refresh sees open is a
    # service, whose port would stay out of the tripwires for SERVICE_GONE_GRACE, the scan's
    # ports with it. Without it nothing but the notices of closing sockets keeps replies out.
    config.write_text(f'STATE_DIR="{tmp_path}/state"\nSERVICE_GONE_GRACE="0"\n{conf}')
    daemon = RunningDaemon(lab.target, config, flag)
    started_daemons.append(daemon)
    daemon.wait_for("ready:")
    for server in (lab.client.ipv4, lab.client.ipv6):
        ask = [sys.executable, "-c", _ASK_AND_CLOSE, server, str(SERVER_PORT), str(ROUNDS)]
        assert lab.target.run(ask, timeout=60).stdout.strip() == str(2 * ROUNDS)
    # A real scan of the same ports, from the same host, after the clients: still seen. The
    # daemon handles what it reads in order, so by the scan's line any reply taken for a probe
    # would have been reported.
    mark = daemon.mark()
    lab.client.run(
        ["nmap", "-sU", "-n", "-Pn", "-p", "32770-32774", "--max-retries", "0", lab.target.ipv4],
        timeout=60,
    )
    found = daemon.wait_for_attack(since=mark, src=lab.client.ipv4, kind="scan")
    assert found["mode"] == flag[1:]
    assert daemon.attacks(src=lab.client.ipv4) == daemon.attacks(since=mark, src=lab.client.ipv4)
    assert daemon.attacks(src=lab.client.ipv6) == []


_BURST = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for port in range(1, int(sys.argv[2]) + 1):
    s.sendto(b"x", (sys.argv[1], port))
"""


def test_a_burst_to_many_free_ports_is_counted_whole(
    lab: Lab, tmp_path: Path, started_daemons: list[RunningDaemon]
) -> None:
    """SmartVerify's own bind tests close a socket per port; one whose close notice was taken
    for a client's made any datagram held for its port a "reply": a burst to more ports than
    the daemon remembered of its own tests (256) hid most of itself."""
    config = tmp_path / "portwarden.conf"
    config.write_text(f'STATE_DIR="{tmp_path}/state"\nADVANCED_PORTS_UDP="2000"\n')
    daemon = RunningDaemon(lab.target, config, "-audp")
    started_daemons.append(daemon)
    daemon.wait_for("ready:")
    drops = lab_drops(lab)
    lab.attackers[0].run([sys.executable, "-c", _BURST, lab.target.ipv4, "1999"], timeout=60)
    # The kernel filter passes the free ports only (the target has services on a few).
    deadline = time.monotonic() + 10
    while (read := status_json(lab, daemon)["counters"]["packets_read"]) < 1990:
        if time.monotonic() > deadline:
            skip_if_lost_in_the_lab(lab, drops, 1990 - read)
            pytest.fail(f"the burst was not read whole: {read}; {lost_in_the_lab(lab, drops)}")
        time.sleep(0.1)
    daemon.stop()  # every held datagram is judged before the stop's line
    stopped = re.search(r"stopped: probes=(\d+) packets=(\d+)", daemon.log())
    assert stopped is not None, daemon.log()
    assert int(stopped[1]) == int(stopped[2]), daemon.log()[-2000:]
