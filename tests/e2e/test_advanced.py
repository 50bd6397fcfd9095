"""Advanced modes (-atcp -audp: every port below 1024 without a service is a tripwire) against
nmap's other scan types, OS detection and masscan, IPv4 and IPv6; and benign clients, with ECN
and Accurate ECN, to real services inside that range: never reported."""

import json
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from portwarden.lab.network import Lab, masscan_args
from tests.e2e.conftest import NMAP_OS_ONCE, StartDaemon, address_of, nmap
from tests.lab.daemon import RunningDaemon
from tests.lab.drops import lab_drops, lost_in_the_lab, skip_if_lost_in_the_lab
from tests.lab.services import echo_client, tcp_echo_server, udp_echo_server

SERVICE_TCP, SERVICE_UDP = 143, 69  # inside the advanced range: services, not tripwires
CRAFT = Path(__file__).parent.parent / "lab" / "malformed.py"


@pytest.fixture(scope="module")
def daemon(lab: Lab, start_daemon: StartDaemon) -> Iterator[RunningDaemon]:
    servers = [tcp_echo_server(lab.target, SERVICE_TCP), udp_echo_server(lab.target, SERVICE_UDP)]
    yield start_daemon("-atcp", "-audp")
    for server in servers:
        server.kill()


SCANS = [
    ("-sF", "TCP FIN scan"),
    ("-sN", "TCP NULL scan"),
    ("-sX", "TCP XMAS scan"),
    ("-sT", "TCP SYN/Normal scan"),  # the connect's SYN, seen raw
]


@pytest.mark.parametrize("family", [4, 6])
@pytest.mark.parametrize(("flag", "scan_type"), SCANS, ids=[s[0] for s in SCANS])
def test_nmap_scan_types_in_advanced_mode(
    lab: Lab, daemon: RunningDaemon, family: int, flag: str, scan_type: str
) -> None:
    attacker = lab.attackers[0]
    mark = daemon.mark()
    nmap(
        attacker.run,
        *(["-6"] if family == 6 else []),
        flag,
        "-p",
        f"20-25,{SERVICE_TCP}",
        address_of(lab.target, family),
    )
    found = daemon.wait_for_attack(mark, src=address_of(attacker, family), type=scan_type)
    assert (found["mode"], found["dst"]) == ("atcp", address_of(lab.target, family))
    assert 20 <= int(found["port"]) <= 25
    assert daemon.attacks(mark, port=str(SERVICE_TCP)) == []


def test_nmap_os_detection_in_advanced_mode(lab: Lab, daemon: RunningDaemon) -> None:
    """Over IPv6 (test_os_probes has both families in stealth mode): the SEQ probes to the open
    port, and the SYN scan of the closed one, a tripwire."""
    attacker = lab.attackers[1]
    mark = daemon.mark()
    nmap(attacker.run, "-6", *NMAP_OS_ONCE, "-p", f"{SERVICE_TCP},22", lab.target.ipv6)
    summary = daemon.wait_for_attack(mark, kind="os-summary", src=attacker.ipv6, timeout=30)
    assert summary["mode"] == "atcp" and summary["type"] == "OS fingerprinting probe (nmap)"
    assert {f"SYN/SEQ{n}" for n in range(1, 7)} | {"NULL/T2", "udp/U1"} <= set(
        summary["patterns"].split()
    )
    daemon.wait_for_attack(mark, kind="scan", src=attacker.ipv6, port="22")


def test_port_0_is_a_tripwire_of_both_advanced_modes(lab: Lab, daemon: RunningDaemon) -> None:
    """PortSentry 1.2's advanced modes watch from port 0, which no service can have: a SYN and
    a datagram to it (hping3 over IPv4, nmap -p0 over IPv6) are probes, and TCP and UDP port 0
    are two ports of the source's count."""
    assert re.search(r"\batcp: watching \d+ tcp ports: 0,1,2,", daemon.log())
    assert re.search(r"\baudp: watching \d+ udp ports: 0,1,2,", daemon.log())
    attacker = lab.attackers[1]
    mark = daemon.mark()
    for flags in (["-S"], ["-2"]):
        attacker.run(["hping3", "-c", "1", *flags, "-p", "0", lab.target.ipv4], check=False)
    syn = daemon.wait_for_attack(mark, src=attacker.ipv4, proto="tcp", port="0")
    datagram = daemon.wait_for_attack(mark, src=attacker.ipv4, proto="udp", port="0")
    assert (syn["mode"], syn["type"]) == ("atcp", "TCP SYN/Normal scan")
    assert (datagram["mode"], datagram["type"]) == ("audp", "UDP scan")
    assert (datagram["probes"], datagram["ports"]) == ("2", "2")
    for scan in ("-sS", "-sU"):
        nmap(attacker.run, "-6", scan, "-p0", lab.target.ipv6)
    for proto, mode in (("tcp", "atcp"), ("udp", "audp")):
        daemon.wait_for_attack(mark, src=attacker.ipv6, proto=proto, port="0", mode=mode)


def test_benign_and_ecn_clients_of_services_in_the_advanced_range_are_never_reported(
    lab: Lab, daemon: RunningDaemon
) -> None:
    client = lab.client
    mark = daemon.mark()
    for target in (lab.target.ipv4, lab.target.ipv6):
        assert echo_client(client, target, SERVICE_TCP, SERVICE_UDP, 30) == 60
    client.run(["sysctl", "-qw", "net.ipv4.tcp_ecn=1"])  # SYN with ECE+CWR
    try:
        for target in (lab.target.ipv4, lab.target.ipv6):
            assert echo_client(client, target, SERVICE_TCP, SERVICE_UDP, 30) == 60
    finally:
        client.run(["sysctl", "-qw", "net.ipv4.tcp_ecn=2"])
    for src, target in ((client.ipv4, lab.target.ipv4), (client.ipv6, lab.target.ipv6)):
        client.run([sys.executable, str(CRAFT), "--accecn", src, target, str(SERVICE_TCP)])
    # The same log does report a scan from another host: the test can fail.
    nmap(lab.attackers[0].run, "-sS", "-p", "11", lab.target.ipv4)
    daemon.wait_for_attack(mark, src=lab.attackers[0].ipv4, port="11")
    assert daemon.attacks(mark, src=client.ipv4) == []
    assert daemon.attacks(mark, src=client.ipv6) == []


def counters(lab: Lab, daemon: RunningDaemon) -> dict[str, int]:
    conf = str(daemon.log_path.with_suffix(".conf"))
    out = lab.target.run([sys.executable, "-m", "portwarden", "status", "--json", "-c", conf])
    return json.loads(out.stdout)["counters"]


def test_masscan_against_advanced_mode(lab: Lab, daemon: RunningDaemon) -> None:
    """All 65,535 ports in about a second: each of the ~1,020 tripwires below 1024 is counted
    (attack lines are rate-limited, the engine's count is not) and the scanner is reported."""
    attacker = lab.attackers[2]
    before, drops = counters(lab, daemon), lab_drops(lab)
    mark = daemon.mark()
    attacker.run(masscan_args(attacker, lab.target, 100_000, 1), timeout=120)
    daemon.wait_for_attack(mark, src=attacker.ipv4, type="TCP SYN/Normal scan", mode="atcp")
    # masscan's 1-1023 (port 0, a tripwire too, it does not probe), less ADVANCED_EXCLUDE_TCP
    # (113, 139) and the service
    tripwires = 1023 - 2 - 1
    deadline = time.monotonic() + 10
    while True:
        now = counters(lab, daemon)
        seen = now["probes"] - before["probes"]
        if seen >= tripwires or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    # Distinct ports are counted up to 64, then shown as "at least 64".
    assert {line["ports"] for line in daemon.attacks(mark, src=attacker.ipv4)} >= {"1", "64+"}
    assert daemon.attacks(mark, port=str(SERVICE_TCP)) == []
    assert daemon.proc.poll() is None
    dropped = now["packets_dropped"] - before["packets_dropped"]
    if not dropped:  # a probe the daemon's own sockets dropped is the daemon's loss
        skip_if_lost_in_the_lab(lab, drops, tripwires - seen)
    assert seen == tripwires, (
        f"{seen} probes; {lost_in_the_lab(lab, drops)}; the daemon's sockets dropped {dropped}"
    )
