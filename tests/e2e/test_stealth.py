"""Stealth modes (-stcp -sudp) against real nmap and hping3 scans, IPv4 and IPv6, and benign
clients that must never be reported."""

from collections.abc import Iterator

import pytest

from portwarden.lab.network import Lab
from tests.e2e.conftest import NMAP_OS_ONCE, StartDaemon, address_of, nmap
from tests.lab.daemon import RunningDaemon
from tests.lab.services import echo_client, tcp_echo_server, udp_echo_server

SERVICE_TCP, SERVICE_UDP = 8080, 5353


@pytest.fixture(scope="module")
def daemon(lab: Lab, start_daemon: StartDaemon) -> Iterator[RunningDaemon]:
    tcp_echo_server(lab.target, SERVICE_TCP)
    udp_echo_server(lab.target, SERVICE_UDP)
    yield start_daemon("-stcp", "-sudp")


SCANS = [
    (["-sS", "-p", "1-200"], "TCP SYN/Normal scan", "tcp"),
    (["-sT", "-p", "1-200"], "TCP SYN/Normal scan", "tcp"),  # the connect's SYN, seen raw
    (["-sF", "-p", "1-200"], "TCP FIN scan", "tcp"),
    (["-sN", "-p", "1-200"], "TCP NULL scan", "tcp"),
    (["-sX", "-p", "1-200"], "TCP XMAS scan", "tcp"),
    (["-sU", "-p", "1,7,9,161"], "UDP scan", "udp"),
    # Flags that never come together in a real connection, though they carry ACK or RST.
    (["--scanflags", "SYNRST", "-p", "1-200"], "TCP odd-flags scan (SYN+RST)", "tcp"),
    (["--scanflags", "SYNFINACK", "-p", "1-200"], "TCP odd-flags scan (FIN+SYN+ACK)", "tcp"),
    (
        ["--scanflags", "ALL", "-p", "1-200"],
        "TCP odd-flags scan (FIN+SYN+RST+PSH+ACK+URG+ECE+CWR)",
        "tcp",
    ),
]
SCAN_IDS = [s[0][1] if s[0][0] == "--scanflags" else s[0][0] for s in SCANS]


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize(("args", "scan_type", "proto"), SCANS, ids=SCAN_IDS)
def test_nmap_scan_is_detected_with_source_and_type(
    lab: Lab, daemon: RunningDaemon, family: int, args: list[str], scan_type: str, proto: str
) -> None:
    attacker = lab.attackers[0]
    mark = daemon.mark()
    six = ["-6"] if family == 6 else []
    # No second try (retries=0): the first probe to a tripwire is what is detected, and odd
    # flags get no answer, so nmap's second try at each of the 200 ports would only be waited out.
    nmap(attacker.run, *six, *args, address_of(lab.target, family), retries=0)
    found = daemon.wait_for_attack(
        mark, kind="scan", src=address_of(attacker, family), type=scan_type
    )
    assert found["dst"] == address_of(lab.target, family)
    assert found["proto"] == proto
    assert found["mode"] == ("stcp" if proto == "tcp" else "sudp")
    assert int(found["port"]) in {1, 11, 15, 79, 111, 7, 9, 161}


@pytest.mark.parametrize("family", [4, 6])
def test_nmap_os_detection_is_reported_as_nmap(
    lab: Lab, daemon: RunningDaemon, family: int
) -> None:
    attacker = lab.attackers[1]
    mark = daemon.mark()
    six = ["-6"] if family == 6 else []
    nmap(
        attacker.run,
        *six,
        *NMAP_OS_ONCE,
        "-p",
        f"1,11,{SERVICE_TCP}",
        address_of(lab.target, family),
    )
    src = address_of(attacker, family)
    daemon.wait_for_attack(mark, kind="os-probe", src=src, type="OS fingerprinting probe (nmap)")
    summary = daemon.wait_for_attack(mark, kind="os-summary", src=src, timeout=30)
    patterns = summary["patterns"].split()
    # T2 (no flags) and T3 go to the open port, so the kernel filter must pass odd flags anywhere.
    assert "NULL/T2" in patterns
    assert "FIN+SYN+PSH+URG/T3" in patterns
    assert "udp/U1" in patterns  # U1: 300 bytes to a closed UDP port, IPv4 and IPv6
    # The ECN probe, with a reserved bit over IPv4 only.
    assert ("SYN+ECE+CWR+RES/ECN" if family == 4 else "SYN+ECE+CWR/ECN") in patterns


def test_hping3_odd_flags_and_ip_options(lab: Lab, daemon: RunningDaemon) -> None:
    attacker = lab.attackers[2]
    mark = daemon.mark()
    attacker.run(["hping3", "-c", "2", "-i", "u10000", "-S", "-F", "-p", "11", lab.target.ipv4])
    found = daemon.wait_for_attack(mark, src=attacker.ipv4, type="TCP odd-flags scan (FIN+SYN)")
    assert found["flags"] == "FIN+SYN"
    attacker.run(
        ["hping3", "-c", "2", "-i", "u10000", "-S", "--rroute", "-p", "15", lab.target.ipv4]
    )
    found = daemon.wait_for_attack(mark, src=attacker.ipv4, port="15")
    assert found["ip_options"] == "yes"


def test_benign_clients_are_never_reported(lab: Lab, daemon: RunningDaemon) -> None:
    client = lab.client
    mark = daemon.mark()
    assert echo_client(client, lab.target.ipv4, SERVICE_TCP, SERVICE_UDP, 100) == 200
    assert echo_client(client, lab.target.ipv6, SERVICE_TCP, SERVICE_UDP, 100) == 200
    client.run(["sysctl", "-qw", "net.ipv4.tcp_ecn=1"])  # SYN with ECE+CWR, no reserved bit
    try:
        assert echo_client(client, lab.target.ipv4, SERVICE_TCP, SERVICE_UDP, 50) == 100
        assert echo_client(client, lab.target.ipv6, SERVICE_TCP, SERVICE_UDP, 50) == 100
    finally:
        client.run(["sysctl", "-qw", "net.ipv4.tcp_ecn=2"])
    # The same log does report a scan from the same host: the test can fail.
    nmap(lab.attackers[0].run, "-sS", "-p", "11", lab.target.ipv4)
    daemon.wait_for_attack(mark, src=lab.attackers[0].ipv4, port="11")
    assert daemon.attacks(mark, src=client.ipv4) == []
    assert daemon.attacks(mark, src=client.ipv6) == []


def test_service_started_on_a_tripwire_port_stops_being_one(
    lab: Lab, daemon: RunningDaemon
) -> None:
    attacker = lab.attackers[0]
    mark = daemon.mark()
    nmap(attacker.run, "-sS", "-p", "79", lab.target.ipv4)
    daemon.wait_for_attack(mark, src=attacker.ipv4, port="79")
    server = tcp_echo_server(lab.target, 79)
    udp = udp_echo_server(lab.target, 7)
    try:
        mark = daemon.mark()
        # At once, before any periodic refresh: the check at probe time must catch it.
        nmap(attacker.run, "-sS", "-p", "79", lab.target.ipv4)
        nmap(attacker.run, "-sU", "-p", "7", lab.target.ipv4)
        nmap(attacker.run, "-sS", "-p", "111", lab.target.ipv4)  # still a tripwire
        daemon.wait_for_attack(mark, src=attacker.ipv4, port="111")
        assert daemon.attacks(mark, port="79") == []
        assert daemon.attacks(mark, port="7") == []
    finally:
        server.kill()
        udp.kill()
