"""What SmartVerify sees between two refreshes (every 2 s): a service that came and went in
between still keeps its clients' reconnections out (SERVICE_GONE_GRACE); and a classic TCP
listener's handshakes cut short (nmap -sS) are no packets the sensors lost."""

import json
import re
import time

from portwarden import limits
from portwarden.lab.network import Lab
from tests.e2e.conftest import StartDaemon
from tests.e2e.test_blocking import portwarden
from tests.lab.services import can_connect, tcp_echo_server

SHORT_LIVED = 84
NEVER_SERVED = 86


def test_a_service_gone_between_two_refreshes_leaves_its_clients_alone(
    lab: Lab, start_daemon: StartDaemon
) -> None:
    daemon = start_daemon("-atcp")
    client = lab.client
    server = tcp_echo_server(lab.target, SHORT_LIVED)  # up for well under a refresh
    try:
        assert can_connect(client, lab.target.ipv4, SHORT_LIVED)
    finally:
        server.kill()
        server.wait()
    # The client reconnects to the stopped service: resets, and no probes. Each after
    # SmartVerify's answer for the port has aged out (PORT_FREE_CACHE_S), well before the next
    # refresh: only the grace at probe time keeps them out.
    for _ in range(3):
        time.sleep(2 * limits.PORT_FREE_CACHE_S)
        assert not can_connect(client, lab.target.ipv4, SHORT_LIVED)
    # The same client at a port that never had a service is seen; by its line any probe
    # before it would have been reported (the daemon handles packets in order).
    assert not can_connect(client, lab.target.ipv4, NEVER_SERVED)
    found = daemon.wait_for_attack(src=client.ipv4)
    assert (found["port"], found["type"]) == (str(NEVER_SERVED), "TCP SYN/Normal scan")
    assert {a["port"] for a in daemon.attacks(src=client.ipv4)} == {str(NEVER_SERVED)}


def _listener_drops(lab: Lab, port: int) -> int:
    """The kernel's drop counter of the target's TCP listener on `port` (ss's skmem d<n>)."""
    shown = lab.target.run(["ss", "-Hltnm", f"sport = :{port}"]).stdout
    return sum(int(n) for n in re.findall(r"\bd(\d+)\)", shown))


def test_half_open_handshakes_to_a_classic_listener_are_no_sensor_drops(
    lab: Lab, start_daemon: StartDaemon
) -> None:
    daemon = start_daemon("-tcp")
    lab.attackers[0].run(
        ["nmap", "-sS", "-n", "-Pn", "-p", "15", "--max-retries", "0", lab.target.ipv4], timeout=60
    )
    assert _listener_drops(lab, 15) > 0  # the kernel counted the reset handshake as a drop
    status = portwarden(lab.target, daemon, "status", "--json")
    assert json.loads(status.stdout)["counters"]["packets_dropped"] == 0
    daemon.stop()
    assert "sensors fall behind" not in daemon.log()
