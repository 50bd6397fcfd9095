"""How OS probes are named, live: queso's shapes (SYN+FIN, a lone PSH) only to an open port;
to tripwires they are scans named by their flags, to a closed port not watched nothing. nmap
-O's probes to a tripwire count in the scan summary as OS probes, not as an XMAS scan."""

import json
import sys
import time
from collections.abc import Iterator

import pytest

from portwarden.lab.network import Lab
from tests.e2e.conftest import NMAP_OS_ONCE, SERVICE, StartDaemon, nmap
from tests.lab.daemon import RunningDaemon

pytestmark = pytest.mark.usefixtures("echo_service")


@pytest.fixture(scope="module")
def daemon(start_daemon: StartDaemon) -> Iterator[RunningDaemon]:
    yield start_daemon("-stcp", "-sudp", conf='SCAN_END_QUIET="2"\n')


def test_queso_shapes_to_closed_ports_are_scans_not_os_probes(
    lab: Lab, daemon: RunningDaemon
) -> None:
    attacker, target = lab.attackers[0], lab.target.ipv4
    mark = daemon.mark()
    for port in (1, 11, 15, 79, 5000):  # four tripwires, one closed port not watched
        attacker.run(["hping3", "-c", "1", "-S", "-F", "-p", str(port), target], check=False)
    nmap(attacker.run, "--scanflags", "PSH", "-p", "540", target)
    psh = daemon.wait_for_attack(mark, kind="scan", src=attacker.ipv4, port="540")
    assert psh["type"] == "TCP odd-flags scan (PSH)" and "os" not in psh
    synfin = daemon.attacks(mark, kind="scan", src=attacker.ipv4, flags="FIN+SYN")
    assert sorted(int(line["port"]) for line in synfin) == [1, 11, 15, 79]
    assert all(
        line["type"] == "TCP odd-flags scan (FIN+SYN)" and "os" not in line for line in synfin
    )
    assert daemon.attacks(mark, kind="os-probe", src=attacker.ipv4) == []
    assert daemon.attacks(mark, port="5000") == []
    # The same SYN+FIN to the open service is queso's probe, and counts itself.
    attacker.run(["hping3", "-c", "1", "-S", "-F", "-p", str(SERVICE), target], check=False)
    queso = daemon.wait_for_attack(mark, kind="os-probe", src=attacker.ipv4)
    assert (queso["type"], queso["port"]) == ("OS fingerprinting probe (queso)", str(SERVICE))


def test_a_tripwire_os_probe_is_counted_as_itself_and_summarised_under_nmap(
    lab: Lab, daemon: RunningDaemon
) -> None:
    """nmap -O against a closed tripwire: its T7 line is `TCP XMAS scan` with os=nmap/T7, but
    the scan summary lists `OS fingerprinting probe (nmap)`, not an XMAS scan. (A pause of
    nmap's longer than SCAN_END_QUIET, on a loaded machine, may summarise its port scan apart:
    every summary is looked at.)"""
    attacker = lab.attackers[1]
    mark = daemon.mark()
    nmap(attacker.run, *NMAP_OS_ONCE, "-p", f"11,{SERVICE}", lab.target.ipv4)
    t7 = daemon.wait_for_attack(mark, kind="scan", src=attacker.ipv4, os="nmap/T7")
    assert t7["type"] == "TCP XMAS scan"
    deadline = time.monotonic() + 30
    while True:
        summaries = daemon.attacks(mark, kind="scan-summary", src=attacker.ipv4)
        types = [set(summary["type"].split(", ")) for summary in summaries]
        if any("OS fingerprinting probe (nmap)" in named for named in types):
            break
        assert time.monotonic() < deadline, daemon.log()[mark:]
        time.sleep(0.1)
    assert not any("TCP XMAS scan" in named for named in types), summaries


def test_an_os_probe_to_a_tripwire_as_a_sources_first_packet_counts_itself(
    lab: Lab, daemon: RunningDaemon
) -> None:
    """nmap's T3 shape (SYN+FIN+PSH+URG, window 256) to tripwire 15 from a new source: the
    os-probe line says probes=1 ports=1, not 0."""
    attacker = lab.attackers[2]
    mark = daemon.mark()
    attacker.run(
        ["hping3", "-c", "1", "-S", "-F", "-P", "-U", "-w", "256", "-p", "15", lab.target.ipv4],
        check=False,
    )
    found = daemon.wait_for_attack(mark, kind="os-probe", src=attacker.ipv4)
    assert (found["port"], found["probes"], found["ports"]) == ("15", "1", "1")


def test_status_lists_each_os_probing_tool_once_by_the_reports_name(
    lab: Lab, daemon: RunningDaemon
) -> None:
    """queso's shape (`hping3 -S -X -Y`) to the service, then nmap -O, whose probes to closed
    tripwire 11 make `OS fingerprinting probe (nmap)` one of the source's scan types: `status`
    names each tool once, as the reports do, never also as `OS probe (nmap)`."""
    attacker = lab.attackers[2]
    mark = daemon.mark()
    attacker.run(
        ["hping3", "-c", "1", "-S", "-X", "-Y", "-p", str(SERVICE), lab.target.ipv4], check=False
    )
    daemon.wait_for_attack(
        mark, kind="os-probe", src=attacker.ipv4, type="OS fingerprinting probe (queso)"
    )
    nmap(attacker.run, *NMAP_OS_ONCE, "-p", f"11,{SERVICE}", lab.target.ipv4)
    daemon.wait_for_attack(mark, kind="scan", src=attacker.ipv4, os="nmap/T7")
    conf = str(daemon.log_path.with_suffix(".conf"))
    out = lab.target.run([sys.executable, "-m", "portwarden", "status", "--json", "-c", conf])
    (source,) = [s for s in json.loads(out.stdout)["scanners"] if s["address"] == attacker.ipv4]
    tools = [kind for kind in source["types"] if "probe (" in kind]
    assert sorted(tools) == ["OS fingerprinting probe (nmap)", "OS fingerprinting probe (queso)"]
