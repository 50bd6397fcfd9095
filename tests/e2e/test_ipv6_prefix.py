"""IPV6_SOURCE_PREFIX against a real scanner that sends each probe from a new address of its
/64 (nmap -6 -S): the trigger is reached across the addresses, every report names the real
address, the summary names the prefix, and each address is blocked on its own."""

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from portwarden.lab.network import Host, Lab
from tests.e2e.conftest import StartDaemon, nmap_runs
from tests.e2e.test_blocking import nft_elements
from tests.lab.daemon import RunningDaemon

# Addresses of the lab's 2001:db8::/64, none of them a lab host's.
ADDRESSES = ["2001:db8::5:a", "2001:db8::5:b", "2001:db8::5:c", "2001:db8::5:d"]
CONF = 'SCAN_TRIGGER="3"\nSCAN_END_QUIET="2"\nBLOCK_TCP="1"\n'


@pytest.fixture
def scanner(lab: Lab) -> Iterator[Host]:
    """An attacker that owns ADDRESSES too, removed after the test."""
    attacker = lab.attackers[2]
    for address in ADDRESSES:
        attacker.run(["ip", "-6", "addr", "add", f"{address}/64", "dev", "eth0", "nodad"])
    yield attacker
    for address in ADDRESSES:
        attacker.run(["ip", "-6", "addr", "del", f"{address}/64", "dev", "eth0"], check=False)


def probes_from(scanner: Host, target: str, *probes: tuple[str, int]) -> None:
    """One SYN from each (address, port), in order, as a scanner that rotates its source address
    sends them: one nmap run each, one right after the other (nmap_runs)."""
    nmap_runs(
        scanner,
        *(
            ["-6", "-sS", "-S", address, "-e", "eth0", "-p", str(port), target]
            for address, port in probes
        ),
    )


def events(daemon: RunningDaemon) -> list[dict]:
    path = Path(daemon.log_path.parent, "state", "events.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_probes_from_several_addresses_of_a_64_reach_the_trigger(
    lab: Lab, start_daemon: StartDaemon, scanner: Host
) -> None:
    daemon = start_daemon("-stcp", conf=CONF + 'IPV6_SOURCE_PREFIX="64"\n')
    # All four probes at once: the summary comes SCAN_END_QUIET after the last, however long
    # the test's checks between them would take.
    probes_from(scanner, lab.target.ipv6, *zip(ADDRESSES, (1, 11, 15, 79), strict=True))
    scan = daemon.wait_for_attack(kind="scan", src=ADDRESSES[2])
    assert scan["prefix"] == "2001:db8::/64" and scan["probes"] == "3" and scan["first"] == "yes"
    # A fourth address of the prefix, past the trigger: reported and blocked at its one probe.
    fourth = daemon.wait_for_attack(kind="scan", src=ADDRESSES[3])
    assert fourth["first"] == "yes" and fourth["probes"] == "4"
    for address in ADDRESSES[2:]:
        daemon.wait_for(rf"block address={address} actions=nft:done ")
    # The two first addresses stayed below the trigger: never blocked.
    assert nft_elements(lab.target) == {ADDRESSES[2], ADDRESSES[3]}
    # One summary for the prefix, naming the last probe's address and how many were seen.
    summary = daemon.wait_for_attack(kind="scan-summary", timeout=20)
    assert summary["src"] == ADDRESSES[3] and summary["prefix"] == "2001:db8::/64"
    assert summary["addresses"] == "4" and summary["probes"] == "4"
    assert len(daemon.attacks(kind="scan-summary")) == 1
    written = events(daemon)
    scans = [e for e in written if e["event"] == "scan"]
    assert [e["src"] for e in scans] == ADDRESSES[2:]
    assert {e["prefix"] for e in scans} == {"2001:db8::/64"}
    (summary_event,) = [e for e in written if e["event"] == "scan-summary"]
    assert summary_event["src"] == ADDRESSES[3] and summary_event["addresses"] == 4
    assert [e["src"] for e in written if e["event"] == "block"] == ADDRESSES[2:]
    assert wait_for_scanners(lab.target, daemon, 4) == {"2001:db8::/64": 4}


def test_by_default_each_address_is_a_source_of_its_own(
    lab: Lab, start_daemon: StartDaemon, scanner: Host
) -> None:
    daemon = start_daemon("-stcp", conf=CONF)
    mark = daemon.mark()
    # A fifth probe, from the first address again, is that address's second: still below 3.
    probes = [*zip(ADDRESSES, (1, 11, 15, 79), strict=True), (ADDRESSES[0], 111)]
    probes_from(scanner, lab.target.ipv6, *probes)
    seen = wait_for_scanners(lab.target, daemon, 5)
    assert seen == {ADDRESSES[0]: 2, **dict.fromkeys(ADDRESSES[1:], 1)}
    assert daemon.attacks(mark) == []
    assert nft_elements(lab.target) == set()


def wait_for_scanners(host: Host, daemon: RunningDaemon, probes: int) -> dict[str, int]:
    """`portwarden status`'s top scanners ({address: probes}) once they add up to `probes`."""
    conf = str(daemon.log_path.with_suffix(".conf"))
    deadline = time.monotonic() + 10
    while True:
        out = host.run([sys.executable, "-m", "portwarden", "status", "-c", conf, "--json"])
        seen = {s["address"]: s["probes"] for s in json.loads(out.stdout)["scanners"]}
        if sum(seen.values()) >= probes or time.monotonic() > deadline:
            return seen
        time.sleep(0.1)
