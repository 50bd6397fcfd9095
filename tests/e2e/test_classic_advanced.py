"""Classic (-tcp -udp) and advanced (-atcp -audp) modes against real scans."""

import sys

import pytest

from portwarden.lab.network import Lab
from tests.e2e.conftest import StartDaemon, nmap
from tests.lab.services import tcp_echo_server

BANNER = "** UNAUTHORIZED ACCESS PROHIBITED **"

_READ_BANNER = """
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5) as c:
    print(c.recv(200).decode())
"""


@pytest.mark.parametrize("family", [4, 6])
def test_classic_modes(lab: Lab, start_daemon: StartDaemon, family: int) -> None:
    server = tcp_echo_server(lab.target, 11)  # a service owns one configured port
    daemon = start_daemon("-tcp", "-udp", conf=f'PORT_BANNER="{BANNER}"\n')
    try:
        daemon.wait_for(
            r"tcp: not watching ports in use by a service: 11 \(Address already in use\)"
        )
        target = lab.target.ipv4 if family == 4 else lab.target.ipv6
        attacker = lab.attackers[0]
        src = attacker.ipv4 if family == 4 else attacker.ipv6
        six = ["-6"] if family == 6 else []
        nmap(attacker.run, *six, "-sT", "-p", "1-200", target)
        found = daemon.wait_for_attack(kind="scan", src=src, type="TCP connect scan")
        assert found["mode"] == "tcp" and found["dst"] == target
        assert daemon.attacks(src=src, port="11") == []  # not ours: never a tripwire
        nmap(attacker.run, *six, "-sU", "-p", "1,7,9", target)
        found = daemon.wait_for_attack(kind="scan", src=src, type="UDP scan")
        assert found["mode"] == "udp" and found["dst"] == target
        banner = attacker.run([sys.executable, "-c", _READ_BANNER, target, "15"]).stdout
        assert banner.strip() == BANNER
    finally:
        server.kill()
        daemon.stop()


@pytest.mark.parametrize("family", [4, 6])
def test_advanced_modes_follow_the_live_system(
    lab: Lab, start_daemon: StartDaemon, family: int
) -> None:
    daemon = start_daemon("-atcp", "-audp", conf='ADVANCED_EXCLUDE_TCP="113,139,600"\n')
    target = lab.target.ipv4 if family == 4 else lab.target.ipv6
    attacker = lab.attackers[1]
    src = attacker.ipv4 if family == 4 else attacker.ipv6
    six = ["-6"] if family == 6 else []
    mark = daemon.mark()
    nmap(attacker.run, *six, "-sS", "-p", "599-601", target)
    nmap(attacker.run, *six, "-sU", "-p", "530", target)
    daemon.wait_for_attack(mark, src=src, port="599", mode="atcp")
    daemon.wait_for_attack(mark, src=src, port="530", mode="audp", type="UDP scan")
    assert daemon.attacks(mark, port="600") == []  # excluded
    nmap(attacker.run, *six, "-sS", "-p", "1100", target)  # above ADVANCED_PORTS_TCP
    # A service started while the daemon runs is not a tripwire, without a restart.
    server = tcp_echo_server(lab.target, 700)
    try:
        mark = daemon.mark()
        nmap(attacker.run, *six, "-sS", "-p", "700,701", target)
        daemon.wait_for_attack(mark, src=src, port="701")
        assert daemon.attacks(mark, port="700") == []
        assert daemon.attacks(port="1100") == []
    finally:
        server.kill()
    daemon.stop()
