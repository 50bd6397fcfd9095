"""An address blocked before it became protected (a default gateway, a name server, one of the
host's own addresses) is unblocked: at start, at reload and within a refresh, each logged with
why, `unblock address=A by=protected`, and the JSON `unblock` event. The scans come from
addresses nobody on the lab's bridge has (forged), so that the target may take them as its
gateway or its own."""

import json
import signal
from pathlib import Path

import pytest

from portwarden.lab.network import Lab
from tests.e2e.conftest import TCP_PORTS, StartDaemon
from tests.e2e.test_blocking import nft_elements, portwarden, spoofed_syns
from tests.lab.daemon import RunningDaemon, start_with_files, wait_for_text

GATEWAY, NAME_SERVER, LOCAL = "198.18.0.18", "198.18.0.19", "198.18.0.15"
WHY = {
    GATEWAY: "gateway (PROTECT_GATEWAYS=0 allows it)",
    NAME_SERVER: "nameserver (PROTECT_NAMESERVERS=0 allows it)",
    LOCAL: "local (nothing allows it)",
}


def scan_from(lab: Lab, source: str) -> None:
    """SYNs to three of the target's tripwires that claim to come from `source`."""
    spoofed_syns(lab.attackers[0], source, 1, lab.target.ipv4)


def unblocked(log: str, address: str) -> bool:
    """The log says the block of `address` ended because it is protected now, and why."""
    said = f"protected address={address} why={WHY[address]}: it became protected after its block"
    return said in log and f"unblock address={address} by=protected" in log


def unblock_events(state: Path) -> list[str]:
    events = (state / "events.jsonl").read_text().splitlines()
    return [
        e["src"]
        for e in map(json.loads, events)
        if e.get("event") == "unblock" and e.get("by") == "protected"
    ]


def restart(lab: Lab, daemon: RunningDaemon, started: list[RunningDaemon]) -> RunningDaemon:
    daemon.stop()
    again = RunningDaemon(lab.target, daemon.log_path.with_suffix(".conf"), "-stcp")
    started.append(again)
    again.wait_for("ready:")
    return again


def test_a_blocked_address_that_becomes_the_gateway_is_kept_with_protect_gateways_0_then_a_reload_unblocks_it(  # noqa: E501
    lab: Lab, start_daemon: StartDaemon, started_daemons: list[RunningDaemon]
) -> None:
    daemon = start_daemon("-stcp", conf='BLOCK_TCP="1"\nPROTECT_GATEWAYS="0"\n')
    scan_from(lab, GATEWAY)
    daemon.wait_for(rf"block address={GATEWAY} actions=nft:done ")
    lab.target.run(["ip", "route", "replace", "default", "via", GATEWAY])
    try:
        daemon = restart(lab, daemon, started_daemons)
        assert "restored 1 active block from" in daemon.log()
        assert nft_elements(lab.target) == {GATEWAY}
        conf = daemon.log_path.with_suffix(".conf")
        conf.write_text(conf.read_text().replace('PROTECT_GATEWAYS="0"\n', ""))
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.wait_for(rf"unblock address={GATEWAY} by=protected")
        assert unblocked(daemon.log(), GATEWAY)
        assert nft_elements(lab.target) == set()
        assert GATEWAY not in portwarden(lab.target, daemon, "blocked").stdout
        assert unblock_events(daemon.log_path.parent / "state") == [GATEWAY]
        daemon = restart(lab, daemon, started_daemons)
        assert "restored 0 active blocks" in daemon.log()
    finally:
        lab.target.run(["ip", "route", "del", "default"], check=False)


def test_a_blocked_address_that_becomes_a_local_address_is_unblocked_at_start(
    lab: Lab, start_daemon: StartDaemon, started_daemons: list[RunningDaemon]
) -> None:
    daemon = start_daemon("-stcp", conf='BLOCK_TCP="1"\n')
    scan_from(lab, LOCAL)
    daemon.wait_for(rf"block address={LOCAL} actions=nft:done ")
    daemon.stop()
    lab.target.run(["ip", "addr", "add", f"{LOCAL}/24", "dev", "eth0"])
    try:
        daemon = restart(lab, daemon, started_daemons)
        log = daemon.log()
        assert unblocked(log, LOCAL)
        assert "restored 0 active blocks" in log
        assert nft_elements(lab.target) == set()
        assert unblock_events(daemon.log_path.parent / "state") == [LOCAL]
        # The host reaches its own address again (the block dropped its own traffic to it).
        ping = lab.target.run(["ping", "-c", "1", "-W", "2", LOCAL], check=False)
        assert ping.returncode == 0, ping.stdout
    finally:
        lab.target.run(["ip", "addr", "del", f"{LOCAL}/24", "dev", "eth0"], check=False)


@pytest.mark.usefixtures("echo_service")
def test_a_blocked_address_added_to_resolv_conf_is_unblocked_within_a_refresh(
    lab: Lab, tmp_path: Path
) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 198.18.0.200\n")
    conf = tmp_path / "portwarden.conf"
    conf.write_text(
        f'STATE_DIR="{tmp_path}/state"\nTCP_PORTS="{TCP_PORTS}"\nUDP_MODE="none"\nBLOCK_TCP="1"\n'
    )
    log = tmp_path / "log"
    proc = start_with_files(lab.target, {"/etc/resolv.conf": resolv}, conf, log, "-stcp")
    try:
        scan_from(lab, NAME_SERVER)
        wait_for_text(log, f"block address={NAME_SERVER} actions=nft:done ")
        assert nft_elements(lab.target) == {NAME_SERVER}
        resolv.write_text(f"nameserver 198.18.0.200\nnameserver {NAME_SERVER}\n")  # same inode
        wait_for_text(log, f"unblock address={NAME_SERVER} by=protected", timeout=10)
        assert unblocked(log.read_text(), NAME_SERVER)
        assert nft_elements(lab.target) == set()
        assert unblock_events(tmp_path / "state") == [NAME_SERVER]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
