"""Elements of our nftables sets that the store does not list, with the kernel's real sets: a
ruleset saved earlier and restored brings back blocks that had ended (and loses those made
since); `unblock` and `reapply` through the running daemon put that right. An instance that
never blocked with nftables leaves the table of the daemon that does alone."""

import sys
import time
from pathlib import Path

import pytest

from portwarden.lab.network import Lab
from tests.e2e.conftest import SERVICE, StartDaemon, nmap
from tests.e2e.test_blocking import blackholes, nft_elements, portwarden
from tests.lab.daemon import RunningDaemon
from tests.lab.services import can_connect

pytestmark = pytest.mark.usefixtures("echo_service")


def test_a_restored_old_ruleset_is_put_right_by_unblock_and_reapply(
    lab: Lab, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """Blocks of the first two attackers, the ruleset saved, the first unblocked, the third
    blocked, then the saved ruleset restored: the first is blocked again by an ended block, the
    third free. The table check (every 2 s) sees nothing missing. `unblock` of the first,
    through the daemon, removes its element (exit 0); `reapply` puts the third back and
    removes the first's element again after a second restore."""
    daemon = start_daemon("-stcp", conf='BLOCK_TCP="1"\n')
    first, second, third = lab.attackers
    for attacker in (first, second):
        nmap(attacker.run, "-sS", "-p", "11", lab.target.ipv4)
        daemon.wait_for(rf"block address={attacker.ipv4} actions=nft:done ")
    saved = tmp_path / "saved.nft"
    saved.write_text("flush ruleset\n" + lab.target.run(["nft", "list", "ruleset"]).stdout)
    result = portwarden(lab.target, daemon, "unblock", first.ipv4)
    assert result.returncode == 0 and result.stdout == f"unblocked {first.ipv4}\n"
    nmap(third.run, "-sS", "-p", "11", lab.target.ipv4)
    daemon.wait_for(rf"block address={third.ipv4} actions=nft:done ")
    lab.target.run(["nft", "-f", str(saved)])
    assert nft_elements(lab.target) == {first.ipv4, second.ipv4}
    assert not can_connect(first, lab.target.ipv4, SERVICE)
    mark = daemon.mark()
    result = portwarden(lab.target, daemon, "unblock", first.ipv4)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"removed 1 nftables element for {first.ipv4} that the store did not list\n"
    )
    daemon.wait_for(
        f"nftables: unblock {first.ipv4}: removed 1 element of table inet portwarden "
        "that the store did not list",
        since=mark,
    )
    assert nft_elements(lab.target) == {second.ipv4}
    assert can_connect(first, lab.target.ipv4, SERVICE)
    lab.target.run(["nft", "-f", str(saved)])
    result = portwarden(lab.target, daemon, "reapply")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "nftables: 2 blocks in table inet portwarden",
        "removed 1 nftables element that the store did not list",
    ]
    assert nft_elements(lab.target) == {second.ipv4, third.ipv4}
    assert can_connect(first, lab.target.ipv4, SERVICE)
    assert not can_connect(third, lab.target.ipv4, SERVICE)
    assert "missing:" not in daemon.log()  # the 2 s check saw nothing wrong
    daemon.stop()


def test_an_instance_without_nftables_beside_one_with_leaves_its_table_alone(
    lab: Lab, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """A KILL_ROUTE instance (BLOCK_NFTABLES auto: no nftables) beside a daemon that blocks with
    the default table: it starts, and its `unblock` and `reapply` work with its daemon and
    without, and its `unblock NET` and `--all`, and its stop with UNBLOCK_ON_STOP, leave the
    other's table and elements alone."""
    nft_daemon = start_daemon("-stcp", conf='BLOCK_TCP="1"\n')
    theirs, ours = lab.attackers[1], lab.attackers[0]
    nmap(theirs.run, "-sS", "-p", "11", lab.target.ipv4)
    nft_daemon.wait_for(rf"block address={theirs.ipv4} actions=nft:done ")
    conf = tmp_path / "routes.conf"
    conf.write_text(
        f'STATE_DIR="{tmp_path}/state"\nTCP_MODE="stcp"\nUDP_MODE="none"\nTCP_PORTS="2"\n'
        'BLOCK_TCP="1"\nUNBLOCK_ON_STOP="1"\nKILL_ROUTE="ip route add blackhole $TARGET$"\n'
    )
    routes = RunningDaemon(lab.target, conf)
    try:
        routes.wait_for("ready:")
        nmap(ours.run, "-sS", "-p", "2", lab.target.ipv4)
        routes.wait_for(rf"block address={ours.ipv4} actions=route:done ")
        result = portwarden(lab.target, routes, "unblock", "198.18.0.0/24")
        assert result.returncode == 0 and result.stdout == f"unblocked {ours.ipv4}\n"
        assert ours.ipv4 not in blackholes(lab.target)
        assert nft_elements(lab.target) == {theirs.ipv4}
        mark = routes.mark()
        nmap(ours.run, "-sS", "-p", "2", lab.target.ipv4)
        routes.wait_for(rf"block address={ours.ipv4} actions=route:done ", since=mark)
        routes.stop()  # UNBLOCK_ON_STOP: its blocks end; the other's table stays
        assert nft_elements(lab.target) == {theirs.ipv4}
        assert ours.ipv4 not in blackholes(lab.target)
        routes = RunningDaemon(lab.target, conf)
        routes.wait_for("ready:")
        nmap(ours.run, "-sS", "-p", "2", lab.target.ipv4)
        routes.wait_for(rf"block address={ours.ipv4} actions=route:done ")
        routes.proc.kill()  # no unblock at stop: its block stays for the commands below
        routes.proc.wait()
        for command in (["reapply"], ["unblock", "198.18.0.0/24"], ["unblock", "--all"]):
            result = lab.target.run(
                [sys.executable, "-m", "portwarden", *command, "-c", str(conf)], check=False
            )
            assert result.returncode == 0, (command, result.stderr)
        assert ours.ipv4 not in blackholes(lab.target)
        assert nft_elements(lab.target) == {theirs.ipv4}
        time.sleep(2.5)  # the other daemon's table check: nothing was missing
        assert "missing:" not in nft_daemon.log()
        assert not can_connect(theirs, lab.target.ipv4, SERVICE)
    finally:
        if routes.proc.poll() is None:
            routes.stop()
        lab.target.run(["ip", "route", "del", "blackhole", ours.ipv4], check=False)
    nft_daemon.stop()
