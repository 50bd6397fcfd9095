"""OS-fingerprinting probes, live: nmap -O's probes recognised by what is specific to them, over
IPv4 and IPv6, even against one open port, in one summary; clients asking for Accurate ECN never
taken for a probe; one (forgeable) OS probe to a real service never blocks, while nmap -O does;
the sensors' packet counter."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from portwarden.lab.network import Host, Lab
from tests.e2e.conftest import SERVICE, StartDaemon, address_of, nmap
from tests.lab.daemon import RunningDaemon
from tests.lab.services import can_connect

CRAFT = Path(__file__).parent.parent / "lab" / "malformed.py"


pytestmark = pytest.mark.usefixtures("echo_service")


@pytest.fixture(scope="module")
def daemon(start_daemon: StartDaemon) -> RunningDaemon:
    return start_daemon("-stcp", "-sudp")


def os_detection(lab: Lab, attacker: Host, family: int, ports: str, *options: str) -> None:
    """nmap -O (with `options`) from `attacker` to `ports` of the target, over IPv`family`."""
    nmap(
        attacker.run,
        *(["-6"] if family == 6 else []),
        "-O",
        *options,
        "-p",
        ports,
        address_of(lab.target, family),
    )


@pytest.mark.parametrize("family", [4, 6])
def test_nmap_os_detection_of_one_open_port_is_one_summary_showing_each_probe(
    lab: Lab, daemon: RunningDaemon, family: int
) -> None:
    """nmap's six SEQ probes are plain SYNs to the open port: the kernel filter passes them by
    their window, and each is named by its option set; T4 is an ACK to the open port, passed by
    its data offset and timestamp. Its ECN probe sets a reserved bit over IPv4 only; over IPv6
    the urgent pointer alone marks it (and nmap sends T5-T7 to a closed port over IPv4 only,
    one of its choosing: see the next test for IPv6). nmap sends its probes in rounds about 2 s
    apart: one summary."""
    attacker = lab.attackers[1]
    src = address_of(attacker, family)
    mark = daemon.mark()
    os_detection(lab, attacker, family, str(SERVICE))
    summary = daemon.wait_for_attack(mark, kind="os-summary", src=src, timeout=30)
    assert summary["type"] == "OS fingerprinting probe (nmap)"
    expected = {f"SYN/SEQ{n}" for n in range(1, 7)} | {"NULL/T2", "FIN+SYN+PSH+URG/T3", "udp/U1"}
    expected |= {"ACK/T4"}
    if family == 4:
        expected |= {"SYN+ECE+CWR+RES/ECN", "SYN/T5", "ACK/T6", "FIN+PSH+URG/T7"}
    else:
        expected |= {"SYN+ECE+CWR/ECN"}
    assert expected <= set(summary["patterns"].split())
    # nmap had finished before this summary could come: nothing of it is left for another.
    assert len(daemon.attacks(mark, kind="os-summary", src=src)) == 1
    assert len(daemon.attacks(mark, kind="os-probe", src=src)) == 1


@pytest.mark.parametrize("family", [4, 6])
def test_os_probes_to_a_closed_tripwire_say_which_probe_they_are(
    lab: Lab, daemon: RunningDaemon, family: int
) -> None:
    """nmap -O sends T5-T7 to a closed port, here tripwire 11: T7 is named by its flags, a XMAS
    scan, and tagged as nmap's T7; nmap's own SYN scan of the port is not tagged. T6, an ACK,
    is an OS probe only, in the summary beside T4 (to the open port), never a scan probe."""
    attacker = lab.attackers[0]
    src = address_of(attacker, family)
    mark = daemon.mark()
    os_detection(lab, attacker, family, f"11,{SERVICE}", "--max-os-tries", "1")
    t7 = daemon.wait_for_attack(mark, kind="scan", src=src, type="TCP XMAS scan")
    assert (t7["port"], t7["flags"], t7.get("os")) == ("11", "FIN+PSH+URG", "nmap/T7")
    assert daemon.attacks(mark, kind="scan", src=src, port="11", os="nmap/T5")
    syns = daemon.attacks(mark, kind="scan", src=src, type="TCP SYN/Normal scan")
    assert any("os" not in line for line in syns)
    summary = daemon.wait_for_attack(mark, kind="os-summary", src=src, timeout=30)
    assert {"ACK/T4", "ACK/T6"} <= set(summary["patterns"].split())
    assert daemon.attacks(mark, kind="scan", src=src, flags="ACK") == []


@pytest.mark.parametrize("family", [4, 6])
def test_accurate_ecn_client_is_neither_reported_nor_blocked(
    lab: Lab, start_daemon: StartDaemon, family: int
) -> None:
    """A SYN with AE+CWR+ECE (RFC 9768) and a client's options, to a real service: nothing. The
    same SYN to a tripwire is then a plain SYN scan, so the sensor did see them."""
    daemon = start_daemon("-stcp", "-sudp", conf='BLOCK_TCP="1"\n')
    client, src, target = lab.client, address_of(lab.client, family), address_of(lab.target, family)
    for port in (SERVICE, SERVICE, SERVICE, 11):
        client.run([sys.executable, str(CRAFT), "--accecn", src, target, str(port)])
    found = daemon.wait_for_attack(src=src, kind="scan")
    assert (found["port"], found["type"], found["flags"]) == (
        "11",
        "TCP SYN/Normal scan",
        "SYN+ECE+CWR+AE",
    )
    assert [line["kind"] for line in daemon.attacks(src=src)] == ["scan"]
    block = daemon.wait_for(rf"block address={src} ")
    assert " port=11 " in block.string[block.start() :].splitlines()[0]


def test_one_os_probe_to_a_service_does_not_block_but_nmap_os_detection_does(
    lab: Lab, start_daemon: StartDaemon
) -> None:
    """`hping3 -S -F` once to a web server is a queso-style probe that anyone can send with
    someone else's address: reported, never blocked by itself. nmap -O also probes a closed
    port, a tripwire here: blocked once SCAN_TRIGGER is reached."""
    daemon = start_daemon("-stcp", "-sudp", conf='BLOCK_TCP="1"\nSCAN_TRIGGER="3"\n')
    attacker, target = lab.attackers[2], lab.target.ipv4
    attacker.run(["hping3", "-c", "1", "-S", "-F", "-p", str(SERVICE), target], check=False)
    probe = daemon.wait_for_attack(kind="os-probe", src=attacker.ipv4)
    assert (probe["type"], probe["port"]) == ("OS fingerprinting probe (queso)", str(SERVICE))
    # A block would be in nftables already: the loop adds it before it writes the line.
    assert can_connect(attacker, target, SERVICE)
    assert "block address=" not in daemon.log()
    scan = attacker.popen(
        ["nmap", "-n", "-Pn", "--max-retries", "1", "-O", "-p", f"11,{SERVICE}", target],
        stdout=subprocess.DEVNULL,
    )
    try:
        daemon.wait_for(rf"block address={attacker.ipv4} actions=nft:done ")
    finally:
        scan.kill()  # blocked, it would wait out its timeouts
    assert not can_connect(attacker, target, SERVICE)


def counters(lab: Lab, daemon: RunningDaemon) -> dict[str, int]:
    conf = str(daemon.log_path.with_suffix(".conf"))
    out = lab.target.run([sys.executable, "-m", "portwarden", "status", "--json", "-c", conf])
    return json.loads(out.stdout)["counters"]


def test_packets_read_counts_every_packet_the_sensors_read_probes_or_not(
    lab: Lab, daemon: RunningDaemon
) -> None:
    """FINs to a real service pass the kernel filter (a FIN may be an OS probe) and are read,
    then found to be no probe; one SYN to a tripwire is a probe."""
    attacker = lab.attackers[0]
    before = counters(lab, daemon)
    mark = daemon.mark()
    attacker.run(
        ["hping3", "-c", "5", "-i", "u1000", "-F", "-p", str(SERVICE), lab.target.ipv4], check=False
    )
    nmap(attacker.run, "-sS", "-p", "11", lab.target.ipv4)
    daemon.wait_for_attack(mark, src=attacker.ipv4, port="11")
    after = counters(lab, daemon)
    assert after["probes"] - before["probes"] == 1
    assert after["packets_read"] - before["packets_read"] >= 6
