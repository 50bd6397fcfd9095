"""A service is open only at the addresses it is bound to: a loopback-only TCP listener or UDP
socket (exim4's localhost:25, systemd-resolved's 127.0.0.53:53) and an IPv4-only listener
probed over IPv6 leave their ports tripwires for a scanner outside, in the stealth and the
advanced modes, both when the services were there at the daemon's start (the kernel filter, the
refresh) and when they start a moment before the probe (SmartVerify at probe time). A wildcard
(dual-stack) listener is still no tripwire."""

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from subprocess import Popen

import pytest

from portwarden import limits
from portwarden.lab.network import Lab
from tests.e2e.conftest import StartDaemon, nmap
from tests.e2e.test_operations import status_json
from tests.lab.daemon import RunningDaemon

LOOPBACK_TCP, IPV4_ONLY_TCP, WILDCARD_TCP = 79, 540, 111  # in TCP_PORTS and below 1024
LOOPBACK_UDP, WILDCARD_UDP = 161, 69  # in UDP_PORTS and below 1024

_SOCKETS = """
import socket, sys, time
def tcp(family, address, port, v6only=None):
    s = socket.socket(family, socket.SOCK_STREAM)
    if v6only is not None:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, v6only)
    s.bind((address, port)); s.listen(8)
    return s
def udp(family, address, port, v6only=None):
    s = socket.socket(family, socket.SOCK_DGRAM)
    if v6only is not None:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, v6only)
    s.bind((address, port))
    return s
loopback_tcp, ipv4_only_tcp, wildcard_tcp, loopback_udp, wildcard_udp = map(int, sys.argv[1:])
held = [
    tcp(socket.AF_INET, "127.0.0.1", loopback_tcp),
    tcp(socket.AF_INET, "0.0.0.0", ipv4_only_tcp),
    tcp(socket.AF_INET6, "::", wildcard_tcp, 0),
    udp(socket.AF_INET, "127.0.0.53", loopback_udp),
    udp(socket.AF_INET6, "::", wildcard_udp, 0),
]
print("listening", flush=True)
time.sleep(3600)
"""


def start_services(lab: Lab) -> Popen:
    ports = (LOOPBACK_TCP, IPV4_ONLY_TCP, WILDCARD_TCP, LOOPBACK_UDP, WILDCARD_UDP)
    proc = lab.target.popen(
        [sys.executable, "-c", _SOCKETS, *map(str, ports)], stdout=-1, text=True
    )
    assert proc.stdout is not None
    assert "listening" in proc.stdout.readline()
    return proc


@pytest.fixture
def services(lab: Lab) -> Iterator[Popen]:
    proc = start_services(lab)
    yield proc
    proc.kill()
    proc.wait()


def probe_and_check(lab: Lab, daemon: RunningDaemon, tcp_mode: str, udp_mode: str) -> None:
    """nmap from an attacker: over IPv4 the loopback ports are tripwires, over IPv6 the
    IPv4-only one too; the wildcard ones never."""
    attacker = lab.attackers[0]
    tcp_ports = f"{LOOPBACK_TCP},{IPV4_ONLY_TCP},{WILDCARD_TCP}"
    udp_ports = f"{LOOPBACK_UDP},{WILDCARD_UDP}"
    mark = daemon.mark()
    for target in (lab.target.ipv4, lab.target.ipv6):
        six = ["-6"] if ":" in target else []
        nmap(attacker.run, *six, "-sS", "-p", tcp_ports, target)
        nmap(attacker.run, *six, "-sU", "-p", udp_ports, target)
    for src, dst, port, mode in (
        (attacker.ipv4, lab.target.ipv4, LOOPBACK_TCP, tcp_mode),
        (attacker.ipv6, lab.target.ipv6, LOOPBACK_TCP, tcp_mode),
        (attacker.ipv6, lab.target.ipv6, IPV4_ONLY_TCP, tcp_mode),
        (attacker.ipv4, lab.target.ipv4, LOOPBACK_UDP, udp_mode),
        (attacker.ipv6, lab.target.ipv6, LOOPBACK_UDP, udp_mode),
    ):
        found = daemon.wait_for_attack(mark, kind="scan", src=src, port=str(port))
        assert (found["dst"], found["mode"]) == (dst, mode)
    assert daemon.attacks(mark, src=attacker.ipv4, port=str(IPV4_ONLY_TCP)) == []
    assert daemon.attacks(mark, port=str(WILDCARD_TCP)) == []
    assert daemon.attacks(mark, port=str(WILDCARD_UDP)) == []


MODES = [("-atcp", "-audp"), ("-stcp", "-sudp")]


@pytest.mark.parametrize("modes", MODES, ids=["advanced", "stealth"])
def test_services_there_at_start_are_judged_per_address(
    lab: Lab, start_daemon: StartDaemon, services: Popen, modes: tuple[str, str]
) -> None:
    daemon = start_daemon(*modes)
    probe_and_check(lab, daemon, modes[0][1:], modes[1][1:])


@pytest.mark.parametrize("modes", MODES, ids=["advanced", "stealth"])
def test_services_started_a_moment_ago_are_judged_per_address_at_probe_time(
    lab: Lab, start_daemon: StartDaemon, modes: tuple[str, str]
) -> None:
    """The services start after the daemon's last refresh and the probes follow at once:
    the kernel filter still passes every port, and SmartVerify decides."""
    daemon = start_daemon(*modes)
    daemon.wait_for("ready:")
    time.sleep(limits.REFRESH_S / 4)  # away from the start's refresh
    proc = start_services(lab)
    try:
        probe_and_check(lab, daemon, modes[0][1:], modes[1][1:])
    finally:
        proc.kill()
        proc.wait()


def test_one_watched_port_is_said_in_the_singular(
    lab: Lab, tmp_path: Path, started_daemons: list[RunningDaemon]
) -> None:
    config = tmp_path / "portwarden.conf"
    config.write_text(f'STATE_DIR="{tmp_path}/state"\nUDP_PORTS="7"\n')
    daemon = RunningDaemon(lab.target, config, "-sudp")
    started_daemons.append(daemon)
    daemon.wait_for("ready:")
    assert "sudp: watching 1 udp port: 7\n" in daemon.log()


def test_a_stealth_mode_with_every_port_served_says_so(
    lab: Lab, tmp_path: Path, services: Popen, started_daemons: list[RunningDaemon]
) -> None:
    """`stcp: watching 0 tcp ports:` at INFO hid a mode that watched nothing (a reload's
    blind spot went unnoticed that way): a warning says why."""
    config = tmp_path / "portwarden.conf"
    config.write_text(
        f'STATE_DIR="{tmp_path}/state"\nTCP_PORTS="{WILDCARD_TCP}"\nUDP_PORTS="{WILDCARD_UDP}"\n'
    )
    daemon = RunningDaemon(lab.target, config, "-stcp", "-sudp")
    started_daemons.append(daemon)
    daemon.wait_for("ready:")
    for mode, proto in (("stcp", "tcp"), ("sudp", "udp")):
        assert (
            f"WARNING {mode}: no {proto} port to watch now: a service has each of them"
        ) in daemon.log()
    assert "watching 0" not in daemon.log()


_ONE_ADDRESS_SERVICE = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
print("listening", flush=True)
time.sleep(3600)
"""

_CLIENT = """
import socket, sys
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    for _ in range(500):
        s.sendto(b"query", (sys.argv[1], int(sys.argv[2])))
"""


def test_a_service_on_one_of_two_addresses_costs_its_clients_nothing(
    lab: Lab, start_daemon: StartDaemon
) -> None:
    """A UDP service bound to one of the target's two addresses (a DNS server's `listen-on`):
    its port is kept out of the kernel filter, so its clients' 500 datagrams are not read by
    the daemon at all (with the port in the filter each one would be read and judged)."""
    lab.target.run(["ip", "addr", "add", "198.18.0.99/24", "dev", "eth0"])
    service = lab.target.popen(
        [sys.executable, "-c", _ONE_ADDRESS_SERVICE, lab.target.ipv4, str(LOOPBACK_UDP)],
        stdout=-1,
        text=True,
    )
    try:
        assert service.stdout is not None and "listening" in service.stdout.readline()
        daemon = start_daemon("-sudp")
        daemon.wait_for("ready:")
        before = status_json(lab, daemon)["counters"]["packets_read"]
        lab.client.run([sys.executable, "-c", _CLIENT, lab.target.ipv4, str(LOOPBACK_UDP)])
        nmap(lab.attackers[0].run, "-sU", "-p", "7", lab.target.ipv4)  # after the queries
        daemon.wait_for_attack(kind="scan", src=lab.attackers[0].ipv4, port="7")
        read = status_json(lab, daemon)["counters"]["packets_read"] - before
        assert 1 <= read <= 4, read  # nmap's probe (and a retry), not the 500 queries
        assert daemon.attacks(src=lab.client.ipv4) == []
    finally:
        service.kill()
        service.wait()
        lab.target.run(["ip", "addr", "del", "198.18.0.99/24", "dev", "eth0"], check=False)
