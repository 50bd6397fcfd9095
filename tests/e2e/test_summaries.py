"""Floods of spoofed sources: a real scanner keeps its SCAN_TRIGGER count and still gets its
summary, and the summaries of a thousand one-packet sources that go quiet together do not become
a thousand lines in one loop turn, yet all go out (or are counted as dropped)."""

import json
import subprocess
import time

from portwarden import limits
from portwarden.lab.network import Lab
from tests.e2e.conftest import StartDaemon, nmap
from tests.e2e.test_operations import status_json


def test_a_spoofed_flood_neither_hides_a_real_scanner_nor_floods_the_log(
    lab: Lab, start_daemon: StartDaemon
) -> None:
    daemon = start_daemon("-stcp", "-sudp", conf='SCAN_END_QUIET="2"\n')
    target = lab.target.ipv4
    # More one-packet sources than the table of scans waiting for their summary holds (about
    # one in seven random sources is a martian the kernel drops).
    flood = limits.OS_PROBE_PENDING_MAX + 400
    lab.attackers[2].run(
        ["hping3", "--rand-source", "-c", str(flood), "-i", "u100", "-S", "-p", "11", target],
        check=False,
    )
    scanner = lab.attackers[0]
    nmap(scanner.run, "-sS", "-p", "1-20", target)  # at once, before the flood's summaries
    summary = daemon.wait_for_attack(kind="scan-summary", src=scanner.ipv4)
    assert (summary["ports"], summary["probes"]) == ("3", "3")  # 1, 11, 15: the tripwires
    daemon.wait_for(r"WARNING \d+ summar(y|ies) dropped \(a flood of sources")
    # The table of scans waiting pushed some out (counted and said); every other summary goes
    # out, 20 a loop turn, before the stop: each source the daemon knows (its status says how
    # many) is in the event log, summarised or counted as dropped. (Not every spoofed packet
    # arrives: the kernel drops martians.)
    sources = status_json(lab, daemon)["counters"]["sources_tracked"]
    events = daemon.log_path.parent / "state" / "events.jsonl"
    deadline = time.monotonic() + 60
    while True:
        text = events.read_text()  # whole lines only: the daemon may be writing one
        written = [json.loads(line) for line in text[: text.rfind("\n") + 1].splitlines()]
        summaries = sum(e["event"] == "scan-summary" for e in written)
        dropped = sum(e["count"] for e in written if e["event"] == "summary-suppressed")
        if summaries + dropped >= sources or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert daemon.stop()[0] == 0
    stopped = int(daemon.wait_for(r"stopped: .* sources=(\d+) evicted=0").group(1))
    assert summaries + dropped == sources == stopped > limits.OS_PROBE_PENDING_MAX
    assert 0 < dropped < flood // 4


def test_a_spoofed_flood_between_its_probes_cannot_reset_a_scanners_count(
    lab: Lab, start_daemon: StartDaemon
) -> None:
    """SCAN_TRIGGER=3: a scanner probes two tripwires; hping3 --flood --rand-source fills the
    source table until the daemon says so (the scanner was its oldest entry); then the
    scanner's third probe is reported, and its scan summarised with all three. A second flood
    within limits.SOURCES_FULL_QUIET_S is the same episode: the table full is said once."""
    daemon = start_daemon("-stcp", conf='SCAN_TRIGGER="3"\nSCAN_END_QUIET="2"\n')
    target, scanner = lab.target.ipv4, lab.attackers[0]
    probe = ["hping3", "-S", "-c", "1", target, "-p"]  # exits 1 when nothing answers
    for port in ("1", "11"):
        scanner.run([*probe, port], check=False)
    flood = lab.attackers[2].popen(
        ["hping3", "--flood", "--rand-source", "-S", "-p", "15", target], stderr=subprocess.DEVNULL
    )
    try:
        daemon.wait_for(f"WARNING source table full \\({limits.SOURCES_MAX} sources\\)", 60)
    finally:
        flood.kill()
        flood.wait()
    mark = daemon.mark()
    scanner.run([*probe, "79"], check=False)
    found = daemon.wait_for_attack(mark, kind="scan", src=scanner.ipv4)
    assert (found["port"], found["probes"], found["first"]) == ("79", "3", "yes")
    summary = daemon.wait_for_attack(mark, kind="scan-summary", src=scanner.ipv4)
    assert (summary["ports"], summary["probes"]) == ("3", "3")
    # 2,000 new sources, each evicts one (the table is still full); a new scanner after them
    # tells when the daemon has read them all.
    lab.attackers[2].run(
        ["hping3", "--rand-source", "-c", "2000", "-i", "u100", "-S", "-p", "15", target],
        check=False,
    )
    mark, second = daemon.mark(), lab.attackers[1]
    for port in ("1", "11", "15"):
        second.run([*probe, port], check=False)
    daemon.wait_for_attack(mark, kind="scan", src=second.ipv4)
    assert daemon.log().count("source table full") == 1
