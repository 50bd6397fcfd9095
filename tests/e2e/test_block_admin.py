"""What the administrator changes under running blocks: a KILL_ROUTE that fails at `reapply`,
a switch to the built-in nftables blocker, the ignore file, hosts.deny lines that were there
before, and addresses copied from hosts.deny."""

import json
import signal
import sys
from pathlib import Path

import pytest

from portwarden.lab.network import Lab
from tests.e2e.conftest import SERVICE, StartDaemon, nmap
from tests.e2e.test_blocking import RECORD, blackholes, nft_elements, portwarden
from tests.lab.daemon import RunningDaemon
from tests.lab.services import can_connect

pytestmark = pytest.mark.usefixtures("echo_service")


def test_reapply_reports_a_kill_route_that_failed(
    lab: Lab, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    calls = tmp_path / "calls"  # record.py appends to it: as a folder, the command fails
    conf = f'BLOCK_TCP="1"\nKILL_ROUTE="{sys.executable} {RECORD} {calls} add $TARGET$"\n'
    daemon = start_daemon("-stcp", conf=conf)
    attacker = lab.attackers[0].ipv4
    nmap(lab.attackers[0].run, "-sS", "-p", "11", lab.target.ipv4)
    daemon.wait_for(rf"block address={attacker} actions=route:done ")
    calls.unlink()
    calls.mkdir()
    result = portwarden(lab.target, daemon, "reapply")
    assert result.returncode == 1
    assert "run again" not in result.stdout
    (line,) = [x for x in result.stderr.splitlines() if "KILL_ROUTE failed" in x]
    assert line.startswith(
        f"portwarden: error: reapply: KILL_ROUTE failed for {attacker} (exit status 1: Traceback"
    )
    daemon.stop()


def test_reapply_leaves_a_kill_route_that_never_took_effect(
    lab: Lab, start_daemon: StartDaemon
) -> None:
    """An IPv4-only KILL_ROUTE (iptables) failed for an IPv6 scanner, which our nftables
    blocker holds: after a flush of the rules, reapply runs it again for the IPv4 scanner only,
    and exits 0 (it ran the IPv6 one again too, failed, and exited 1 at every reapply)."""
    attacker = lab.attackers[1]
    conf = (
        'BLOCK_TCP="1"\nBLOCK_NFTABLES="1"\nUNBLOCK_ON_STOP="1"\n'
        'KILL_ROUTE="iptables -I INPUT -s $TARGET$ -j DROP"\n'
    )
    daemon = start_daemon("-stcp", conf=conf)
    try:
        nmap(attacker.run, "-sS", "-p", "11", lab.target.ipv4)
        daemon.wait_for(rf"block address={attacker.ipv4} actions=nft:done,route:done ")
        nmap(attacker.run, "-6", "-sS", "-p", "11", lab.target.ipv6)
        daemon.wait_for(rf"block address={attacker.ipv6} actions=nft:done,route:failed ")
        lab.target.run(["iptables", "-F", "INPUT"])
        result = portwarden(lab.target, daemon, "reapply")
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[0] == f"KILL_ROUTE run again for {attacker.ipv4}"
        assert attacker.ipv6 not in result.stdout + result.stderr
        assert lab.target.run(["iptables", "-S", "INPUT"]).stdout.count(attacker.ipv4) == 1
        daemon.stop()
    finally:
        lab.target.run(["iptables", "-F", "INPUT"])


def test_blocks_made_before_the_switch_to_nftables_are_enforced_by_it(
    lab: Lab, start_daemon: StartDaemon, started_daemons: list[RunningDaemon]
) -> None:
    """KILL_ROUTE blocks, then KILL_ROUTE commented out: a start puts the blocks made before
    in our sets, and so does a reload; `reapply` no longer runs the old KILL_ROUTE; `blocked`
    says what holds each block."""
    first, second = lab.attackers[0], lab.attackers[1]
    route = 'KILL_ROUTE="ip route add blackhole $TARGET$"\n'
    daemon = start_daemon("-stcp", conf=f'BLOCK_TCP="1"\n{route}')
    conf = daemon.log_path.with_suffix(".conf")

    def restart() -> RunningDaemon:
        again = RunningDaemon(lab.target, conf, "-stcp")
        started_daemons.append(again)
        again.wait_for("ready:")
        return again

    try:
        nmap(first.run, "-sS", "-p", "11", lab.target.ipv4)
        daemon.wait_for(rf"block address={first.ipv4} actions=route:done ")
        daemon.stop()
        conf.write_text(conf.read_text().replace(route, f"# {route}"))
        daemon = restart()
        assert nft_elements(lab.target) == {first.ipv4}
        lab.target.run(["ip", "route", "del", "blackhole", first.ipv4])
        assert not can_connect(first, lab.target.ipv4, SERVICE, timeout=1)
        listing = json.loads(portwarden(lab.target, daemon, "blocked", "--json").stdout)
        assert [b["via"] for b in listing["blocks"]] == [["nft", "route"]]
        assert "nft,route" in portwarden(lab.target, daemon, "blocked").stdout
        result = portwarden(lab.target, daemon, "reapply")
        assert result.returncode == 0, result.stderr
        assert (
            f"KILL_ROUTE not run again for {first.ipv4}: the configuration no longer has"
        ) in result.stdout
        assert "nftables: 1 block in table inet portwarden" in result.stdout
        assert first.ipv4 not in blackholes(lab.target)  # the old KILL_ROUTE did not run
        daemon.stop()
        # KILL_ROUTE again for a second block, then commented out by a reload.
        conf.write_text(conf.read_text().replace(f"# {route}", route))
        daemon = restart()
        nmap(second.run, "-sS", "-p", "11", lab.target.ipv4)
        daemon.wait_for(rf"block address={second.ipv4} actions=route:done ")
        assert nft_elements(lab.target) == {first.ipv4}
        conf.write_text(conf.read_text().replace(route, f"# {route}"))
        mark = daemon.mark()
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.wait_for(
            "nftables: 1 block made before the built-in blocker was on is now", since=mark
        )
        daemon.wait_for("nftables: 2 blocks re-applied", since=mark)
        assert nft_elements(lab.target) == {first.ipv4, second.ipv4}
        lab.target.run(["ip", "route", "del", "blackhole", second.ipv4])
        assert not can_connect(second, lab.target.ipv4, SERVICE, timeout=1)
        daemon.stop()
    finally:
        for attacker in (first, second):
            lab.target.run(["ip", "route", "del", "blackhole", attacker.ipv4], check=False)


def test_an_address_added_to_the_ignore_file_is_unblocked_at_reload(
    lab: Lab, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    ignore = tmp_path / "ignore"
    ignore.write_text("198.18.0.200\n")
    daemon = start_daemon("-stcp", conf=f'BLOCK_TCP="1"\nIGNORE_FILE="{ignore}"\n')
    attacker, other = lab.attackers[0], lab.attackers[1]
    for host in (attacker, other):
        nmap(host.run, "-sS", "-p", "11", lab.target.ipv4)
        daemon.wait_for(rf"block address={host.ipv4} actions=nft:done ")
    assert not can_connect(attacker, lab.target.ipv4, SERVICE, timeout=1)
    ignore.write_text(f"198.18.0.200\n{attacker.ipv4}/32\n")
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_for(rf"unblock address={attacker.ipv4} by=ignored")
    assert can_connect(attacker, lab.target.ipv4, SERVICE)
    assert nft_elements(lab.target) == {other.ipv4}
    assert not can_connect(other, lab.target.ipv4, SERVICE, timeout=1)
    events = (daemon.log_path.parent / "state" / "events.jsonl").read_text().splitlines()
    assert any(
        json.loads(e).get("event") == "unblock" and json.loads(e).get("by") == "ignored"
        for e in events
    )
    daemon.stop()


def test_a_hosts_deny_line_already_there_is_not_claimed_and_unblock_says_it_stays(
    lab: Lab, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """PortSentry's leftover line for an IPv6 scanner; `unblock` with the address as it is
    written there, in brackets."""
    attacker = lab.attackers[0].ipv6
    deny = tmp_path / "hosts.deny"
    line = f"ALL: [{attacker}] : DENY"
    deny.write_text(f"{line}\n")
    conf = f'BLOCK_TCP="1"\nKILL_HOSTS_DENY="ALL: $TARGET$ : DENY"\nHOSTS_DENY_FILE="{deny}"\n'
    daemon = start_daemon("-stcp", conf=conf)
    nmap(lab.attackers[0].run, "-6", "-sS", "-p", "11", lab.target.ipv6)
    daemon.wait_for(rf"block address={attacker} actions=nft:done,hosts.deny:present ")
    listing = portwarden(lab.target, daemon, "blocked").stdout
    assert "nft,hosts.deny (not ours)" in listing
    result = portwarden(lab.target, daemon, "unblock", f"[{attacker}]")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"unblocked {attacker}",
        f'left as it is: {attacker}: hosts.deny line "{line}" in {deny}: it was there before '
        "the block (not ours); remove it by hand if wanted",
    ]
    assert deny.read_text() == f"{line}\n"
    assert nft_elements(lab.target) == set()
    mark = daemon.mark()
    nmap(lab.attackers[0].run, "-6", "-sS", "-p", "11", lab.target.ipv6)
    daemon.wait_for(rf"block address={attacker} .*offence=1 ", since=mark)  # unblocked: no offence
    result = portwarden(lab.target, daemon, "unblock", "[2001:db8::]/64")
    assert result.returncode == 0 and f"unblocked {attacker}" in result.stdout
    daemon.stop()


def test_a_kill_route_whose_route_was_there_already_counts_and_unblock_leaves_it(
    lab: Lab, start_daemon: StartDaemon, started_daemons: list[RunningDaemon]
) -> None:
    """The administrator's blackhole route for the scanner, there before the block: `File
    exists` is no failure, the block is in force (not ours), survives a restart, and an
    unblock written as an IPv4-mapped address ends it but leaves the route. An ordinary route
    to the scanner (a host route, a VPN peer's) makes KILL_ROUTE say `File exists` too, but
    blocks nothing: that block fails, naming the route."""
    attacker, other = lab.attackers[0], lab.attackers[1]
    route = ["ip", "route", "add", "blackhole", attacker.ipv4]
    lab.target.run(route)
    lab.target.run(["ip", "route", "add", other.ipv4, "dev", "eth0"])
    try:
        daemon = start_daemon(
            "-stcp", conf=f'BLOCK_TCP="1"\nKILL_ROUTE="{" ".join(route[:4])} $TARGET$"\n'
        )
        nmap(attacker.run, "-sS", "-p", "11", lab.target.ipv4)
        daemon.wait_for(rf"block address={attacker.ipv4} actions=route:present ")
        assert "File exists" not in daemon.log() and " ERROR " not in daemon.log()
        assert "route (not ours)" in portwarden(lab.target, daemon, "blocked").stdout
        nmap(other.run, "-sS", "-p", "11", lab.target.ipv4)
        daemon.wait_for(rf"block-failed address={other.ipv4} actions=route:failed ")
        failed = (
            f"KILL_ROUTE for {other.ipv4} failed: a route to {other.ipv4} is there "
            "already (unicast dev eth0): KILL_ROUTE could not add its own"
        )
        assert failed in daemon.log()
        assert other.ipv4 not in portwarden(lab.target, daemon, "blocked").stdout
        assert can_connect(other, lab.target.ipv4, SERVICE)
        daemon.stop()
        again = RunningDaemon(lab.target, daemon.log_path.with_suffix(".conf"), "-stcp")
        started_daemons.append(again)
        again.wait_for("restored 1 active block from")
        result = portwarden(lab.target, again, "unblock", f"::ffff:{attacker.ipv4}")
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == [
            f"unblocked {attacker.ipv4}",
            f"left as it is: {attacker.ipv4}: KILL_ROUTE {' '.join(route)}: it was there "
            "before the block (not ours); remove it by hand if wanted",
        ]
        assert result.stderr == (
            f'portwarden: warning: unblock "::ffff:{attacker.ipv4}": an '
            "IPv4-mapped address is taken as its IPv4 form; unblocking "
            f"{attacker.ipv4}/32\n"
        )
        assert attacker.ipv4 in blackholes(lab.target)
        again.stop()
    finally:
        lab.target.run(["ip", "route", "del", "blackhole", attacker.ipv4], check=False)
        lab.target.run(["ip", "route", "del", other.ipv4, "dev", "eth0"], check=False)
