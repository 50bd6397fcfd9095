"""What must not grow or be blocked: BLOCKS_MAX under a spoofed burst, and this host's subnet
broadcast and network addresses as forged sources."""

import json
import time
from pathlib import Path

import pytest

from portwarden import limits
from portwarden.lab.network import Lab
from tests.e2e.conftest import SERVICE, TCP_PORTS, StartDaemon, nmap
from tests.e2e.test_blocking import blackholes, nft_elements, portwarden, spoofed_syns
from tests.e2e.test_operations import status_json
from tests.lab.services import can_connect

pytestmark = pytest.mark.usefixtures("echo_service")


def test_blocks_max_holds_under_a_spoofed_burst_said_once_and_detection_goes_on(
    lab: Lab, start_daemon: StartDaemon
) -> None:
    """30 forged sources, each on 3 tripwires, well within BLOCKS_PER_MINUTE: 5 are blocked,
    the rest only detected; one line and one event; no block is evicted. Once one ends, a real
    scanner is blocked again."""
    daemon = start_daemon("-stcp", conf='BLOCK_TCP="1"\nBLOCKS_PER_MINUTE="1000"\nBLOCKS_MAX="5"\n')
    forger, scanner = lab.attackers[2], lab.attackers[0]
    spoofed_syns(forger, "198.18.2.1", 30, lab.target.ipv4)
    daemon.wait_for("block-max reached: 5 active blocks")
    daemon.wait_for_attack(src="198.18.2.30", port="15")  # every forged probe still detected
    nmap(scanner.run, "-sS", "-p", TCP_PORTS, lab.target.ipv4)
    daemon.wait_for_attack(src=scanner.ipv4)
    assert nft_elements(lab.target) == {f"198.18.2.{n}" for n in range(1, 6)}
    assert can_connect(scanner, lab.target.ipv4, SERVICE)
    events = Path(daemon.log_path.parent, "state", "events.jsonl").read_text().splitlines()
    capped = [json.loads(e) for e in events if '"event":"block-max"' in e]
    assert [e["active"] for e in capped] == [5]
    assert daemon.log().count("block-max reached") == 1

    assert portwarden(lab.target, daemon, "unblock", "198.18.2.1").returncode == 0
    daemon.wait_for(r"block-max ended: 4 active blocks now; \d+ sources were not blocked")
    nmap(scanner.run, "-sS", "-p", TCP_PORTS, lab.target.ipv4)
    daemon.wait_for(rf"block address={scanner.ipv4} ")
    assert not can_connect(scanner, lab.target.ipv4, SERVICE)
    daemon.stop()


def test_forged_sources_at_this_hosts_subnet_broadcast_and_network_are_never_blocked(
    lab: Lab, start_daemon: StartDaemon
) -> None:
    """198.18.0.255 and 198.18.0.0 (the target's /24), then the broadcast of an address added
    while the daemon runs: detected, never blocked (a blackhole route for the subnet broadcast
    cut this host off its own broadcasts)."""
    conf = 'BLOCK_TCP="1"\nKILL_ROUTE="ip route add blackhole $TARGET$"\n'
    daemon = start_daemon("-stcp", conf=conf)
    forger = lab.attackers[2]
    lab.target.run(["ip", "addr", "add", "198.18.5.1/24", "dev", "eth0"])
    try:
        # The daemon reads the addresses every REFRESH_S; once its status shows the new one,
        # the response policy has it too (the same refresh, before the loop answers).
        deadline = time.monotonic() + 10 * limits.REFRESH_S
        while "198.18.5.1" not in status_json(lab, daemon)["addresses"]:
            assert time.monotonic() < deadline, "the daemon never saw 198.18.5.1"
            time.sleep(0.2)
        for address in ("198.18.0.255", "198.18.0.0", "198.18.5.255"):
            spoofed_syns(forger, address, 1, lab.target.ipv4)
            daemon.wait_for(
                f"not-blocking address={address} why=broadcast "
                r"\(nothing allows it\)"
            )
        nmap(lab.attackers[0].run, "-sS", "-p", "11", lab.target.ipv4)  # a real one still is
        daemon.wait_for(rf"block address={lab.attackers[0].ipv4} ")
        routes = blackholes(lab.target)
        assert "198.18.0.255" not in routes and "198.18.0.0 " not in routes
        assert "198.18.5.255" not in routes
        assert "block address=198.18.0.255" not in daemon.log()
    finally:
        lab.target.run(["ip", "addr", "del", "198.18.5.1/24", "dev", "eth0"])
    daemon.stop()
