"""Scan summaries under a flood of spoofed sources: a real scanner still gets its summary, and
the summaries of a thousand one-packet sources that go quiet together do not become a thousand
lines."""

from portwarden import limits
from portwarden.lab.network import Lab
from tests.e2e.conftest import StartDaemon, nmap


def test_a_spoofed_flood_neither_hides_a_real_scanner_nor_floods_the_log(
    lab: Lab, start_daemon: StartDaemon
) -> None:
    daemon = start_daemon("-stcp", "-sudp", conf='SCAN_END_QUIET="2"\n')
    target = lab.target.ipv4
    # More one-packet sources than the table of scans waiting for their summary holds.
    flood = limits.OS_PROBE_PENDING_MAX + 200
    lab.attackers[2].run(["hping3", "--rand-source", "-c", str(flood), "-i", "u100", "-S", "-p",
                          "11", target], check=False)  # fmt: skip
    scanner = lab.attackers[0]
    nmap(scanner.run, "-sS", "-p", "1-20", target)  # at once, before the flood's summaries
    summary = daemon.wait_for_attack(kind="scan-summary", src=scanner.ipv4)
    assert (summary["ports"], summary["probes"]) == ("3", "3")  # 1, 11, 15: the tripwires
    daemon.wait_for(r"WARNING \d+ summaries suppressed \(a flood of sources")
    assert len(daemon.attacks(kind="scan-summary")) < flood // 4
    assert daemon.proc.poll() is None
