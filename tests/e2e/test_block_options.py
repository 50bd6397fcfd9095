"""BLOCK_FORWARD (also changed by a reload) and UNBLOCK_ON_STOP, with real nftables."""

import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from portwarden.lab.network import Host, Lab, add_veth, run
from tests.e2e.conftest import SERVICE, StartDaemon, nmap
from tests.e2e.test_blocking import RECORD, nft_elements, portwarden
from tests.lab.services import can_connect, tcp_echo_server

pytestmark = pytest.mark.usefixtures("echo_service")

BEHIND_NET = "198.19.0"  # behind the target, which routes for it


@pytest.fixture
def behind(lab: Lab) -> Iterator[Host]:
    """A host on a network behind the target (the target forwards between the two), with the
    echo service; the attackers route to it through the target."""
    host = Host(f"{lab.prefix}behind", f"{BEHIND_NET}.2", "2001:db8:1::2")
    run(["ip", "netns", "add", host.netns])
    try:
        add_veth(lab.target.netns, "eth1", host.netns)
        for netns, address in ((lab.target.netns, ".1"), (host.netns, ".2")):
            device = "eth1" if netns == lab.target.netns else "eth0"
            run(["ip", "-n", netns, "addr", "add", f"{BEHIND_NET}{address}/24", "dev", device])
            run(["ip", "-n", netns, "link", "set", device, "up"])
        run(["ip", "-n", host.netns, "link", "set", "lo", "up"])
        run(["ip", "-n", host.netns, "route", "add", "default", "via", f"{BEHIND_NET}.1"])
        lab.target.run(["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        for attacker in lab.attackers:
            attacker.run(["ip", "route", "replace", f"{BEHIND_NET}.0/24", "via", lab.target.ipv4])
        tcp_echo_server(host, SERVICE)
        yield host
    finally:
        host.stop_processes()
        for attacker in lab.attackers:
            attacker.run(["ip", "route", "del", f"{BEHIND_NET}.0/24"], check=False)
        run(["ip", "netns", "del", host.netns], check=False)


def has_forward_chain(lab: Lab) -> bool:
    listed = lab.target.run(["nft", "list", "chains", "inet"], check=False).stdout
    return "chain forward" in listed


def reload_with(daemon_conf: Path, pid: int, lab: Lab, forward: bool) -> None:
    """BLOCK_FORWARD set to `forward` by a reload; returns once the chain is as it says."""
    text = daemon_conf.read_text().replace(f'BLOCK_FORWARD="{int(not forward)}"', "")
    daemon_conf.write_text(f'{text}BLOCK_FORWARD="{int(forward)}"\n')
    lab.target.run(["kill", "-HUP", str(pid)])
    deadline = time.monotonic() + 10
    while has_forward_chain(lab) != forward:
        assert time.monotonic() < deadline, f"forward chain still {not forward}"
        time.sleep(0.05)


def test_block_forward_drops_routed_traffic_and_a_reload_adds_and_removes_the_chain(
    lab: Lab, start_daemon: StartDaemon, behind: Host
) -> None:
    attacker = lab.attackers[0]
    assert can_connect(attacker, behind.ipv4, SERVICE)
    daemon = start_daemon("-stcp", "-sudp", conf='BLOCK_TCP="1"\nBLOCK_FORWARD="0"\n')
    nmap(attacker.run, "-sS", "-p", "1-20", lab.target.ipv4)
    daemon.wait_for(rf"block address={attacker.ipv4} actions=nft:done ")
    assert not can_connect(attacker, lab.target.ipv4, SERVICE)
    assert can_connect(attacker, behind.ipv4, SERVICE)  # routed: not ours to drop
    assert not has_forward_chain(lab)
    conf = daemon.log_path.with_suffix(".conf")
    reload_with(conf, daemon.proc.pid, lab, forward=True)
    assert not can_connect(attacker, behind.ipv4, SERVICE)
    assert can_connect(lab.attackers[1], behind.ipv4, SERVICE)  # only the blocked source
    reload_with(conf, daemon.proc.pid, lab, forward=False)
    assert can_connect(attacker, behind.ipv4, SERVICE)
    assert not can_connect(attacker, lab.target.ipv4, SERVICE)  # still blocked at input
    daemon.stop()


def test_unblock_on_stop_undoes_every_block_and_removes_the_table(
    lab: Lab, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    deny = tmp_path / "hosts.deny"
    deny.write_text("sshd: 203.0.113.9\n")
    conf = (
        f'BLOCK_TCP="1"\nUNBLOCK_ON_STOP="1"\nKILL_HOSTS_DENY="ALL: $TARGET$"\n'
        f'HOSTS_DENY_FILE="{deny}"\n'
    )
    daemon = start_daemon("-stcp", "-sudp", conf=conf)
    attackers = lab.attackers[:2]
    for attacker in attackers:
        nmap(attacker.run, "-sS", "-p", "1-20", lab.target.ipv4)
        daemon.wait_for(rf"block address={attacker.ipv4} actions=nft:done,hosts.deny:done ")
    blocked_file = daemon.log_path.parent / "state" / "portsentry.blocked.stcp"
    assert len(blocked_file.read_text().splitlines()) == 2
    assert nft_elements(lab.target) == {a.ipv4 for a in attackers}
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(timeout=15) == 0
    assert deny.read_text() == "sshd: 203.0.113.9\n"
    assert blocked_file.read_text() == ""
    assert lab.target.run(["nft", "list", "table", "inet", "portwarden"], check=False).returncode
    for attacker in attackers:
        assert f"unblock address={attacker.ipv4} by=stop" in daemon.log()
        assert can_connect(attacker, lab.target.ipv4, SERVICE)
    assert portwarden(lab.target, daemon, "blocked").stdout.splitlines()[1:] == []


@pytest.mark.parametrize(
    "conf",
    ['BLOCK_TCP="2"\n', 'BLOCK_TCP="1"\nBLOCK_NFTABLES="0"\n'],
    ids=["command-only-no-command", "block-no-action"],
)
def test_blocking_with_nothing_to_do_is_no_block(
    lab: Lab, start_daemon: StartDaemon, conf: str
) -> None:
    """PortSentry recorded such a source as blocked, and said "already blocked" after, while it
    still got in: here it is a warning at start, one line at the first scan, and no block."""
    daemon = start_daemon("-stcp", conf=conf)
    assert "nothing will be done; its scans are only alerted" in daemon.log()
    attacker = lab.attackers[0]
    for _ in range(2):
        nmap(attacker.run, "-sS", "-p", "11,15", lab.target.ipv4)
    nmap(lab.attackers[1].run, "-sS", "-p", "11", lab.target.ipv4)
    daemon.wait_for_attack(src=lab.attackers[1].ipv4)
    log = daemon.log()
    (line,) = [x for x in log.splitlines() if "why=nothing-to-do" in x]  # said once
    assert f"not-blocking address={attacker.ipv4} why=nothing-to-do (BLOCK_TCP=" in line
    assert "block address=" not in log and "already-blocked" not in log
    assert can_connect(attacker, lab.target.ipv4, SERVICE)
    assert portwarden(lab.target, daemon, "blocked").stdout.splitlines()[1:] == []
    state = daemon.log_path.parent / "state"
    assert not (state / "portsentry.history").exists()
    assert (state / "portsentry.blocked.stcp").read_text() == ""
    daemon.stop()


def test_a_kill_route_with_no_known_undo_is_left_in_force_and_not_run_again(
    lab: Lab, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """A script as KILL_ROUTE: `unblock` cannot undo it and says so (exit 1) until told again
    (the administrator removed it by hand); `reapply` does not run it a second time."""
    calls = tmp_path / "calls"
    conf = f'BLOCK_TCP="1"\nKILL_ROUTE="{sys.executable} {RECORD} {calls} $TARGET$"\n'
    daemon = start_daemon("-stcp", conf=conf)
    assert "KILL_ROUTE: no known way to undo it" in daemon.log()
    attacker = lab.attackers[1].ipv4
    nmap(lab.attackers[1].run, "-sS", "-p", "11", lab.target.ipv4)
    daemon.wait_for(rf"block address={attacker} actions=route:done ")
    result = portwarden(lab.target, daemon, "reapply")
    assert result.returncode == 1
    assert (
        f"portwarden: error: reapply: KILL_ROUTE not run again for {attacker}: it has no known undo"
    ) in result.stderr
    assert len(calls.read_text().splitlines()) == 1
    result = portwarden(lab.target, daemon, "unblock", attacker)
    assert result.returncode == 1 and "unblocked" not in result.stdout
    assert (
        f"portwarden: error: unblock: left in force: {attacker}: KILL_ROUTE "
        f"{sys.executable} {RECORD} {calls} {attacker} (no known undo: remove it by hand); "
        "fix it and run unblock again"
    ) in result.stderr
    assert "left in force" in portwarden(lab.target, daemon, "blocked").stdout
    result = portwarden(lab.target, daemon, "unblock", attacker)
    assert result.returncode == 0 and f"unblocked {attacker}" in result.stdout
    assert portwarden(lab.target, daemon, "blocked").stdout.splitlines()[1:] == []
    daemon.stop()


@pytest.fixture
def own_set(lab: Lab) -> Iterator[str]:
    """An nftables table of the administrator's own in the target, whose set `scanners` is
    dropped: the table's name."""
    table = "admin_own"
    lab.target.run(["nft", "add", "table", "inet", table])
    lab.target.run(["nft", "add", "set", "inet", table, "scanners", "{ type ipv4_addr; }"])
    lab.target.run(
        ["nft", "add", "chain", "inet", table, "input", "{ type filter hook input priority 0; }"]
    )
    lab.target.run(["nft", "add", "rule", "inet", table, "input", "ip saddr @scanners drop"])
    yield table
    lab.target.run(["nft", "delete", "table", "inet", table])


def test_a_kill_route_that_adds_an_nft_element_is_undone(
    lab: Lab, start_daemon: StartDaemon, own_set: str
) -> None:
    """`nft add element ...` as KILL_ROUTE: undone with `nft delete element` (nft has no `del`,
    which every unblock ran and which left the block in force); an element gone already (a
    flushed set) is nothing to remove, and `reapply` puts it back."""
    route = f"/usr/sbin/nft add element inet {own_set} scanners {{ $TARGET$ }}"
    conf = f'BLOCK_TCP="1"\nKILL_ROUTE="{route}"\n'
    daemon = start_daemon("-stcp", conf=conf)
    assert "no known way to undo" not in daemon.log()
    attacker = lab.attackers[0]

    def scanners() -> str:
        return lab.target.run(["nft", "list", "set", "inet", own_set, "scanners"]).stdout

    for step in ("unblock", "flushed"):
        mark = daemon.mark()
        nmap(attacker.run, "-sS", "-p", "11", lab.target.ipv4)
        daemon.wait_for(rf"block address={attacker.ipv4} actions=route:done ", since=mark)
        assert attacker.ipv4 in scanners()
        assert not can_connect(attacker, lab.target.ipv4, SERVICE)
        if step == "flushed":
            lab.target.run(["nft", "flush", "set", "inet", own_set, "scanners"])
            result = portwarden(lab.target, daemon, "reapply")
            assert result.returncode == 0, result.stderr
            assert result.stdout == f"KILL_ROUTE run again for {attacker.ipv4}\n"
            assert attacker.ipv4 in scanners()
            lab.target.run(["nft", "flush", "set", "inet", own_set, "scanners"])
        result = portwarden(lab.target, daemon, "unblock", attacker.ipv4)
        assert result.returncode == 0, result.stderr
        assert result.stdout == f"unblocked {attacker.ipv4}\n"
        assert attacker.ipv4 not in scanners()
        assert can_connect(attacker, lab.target.ipv4, SERVICE)
    assert "KILL_ROUTE undo: nothing to remove for 1 block " in daemon.log()
    assert portwarden(lab.target, daemon, "blocked").stdout.splitlines()[1:] == []
    daemon.stop()


@pytest.mark.parametrize("verb", ["add", "create"])
def test_an_nft_element_there_before_the_kill_route_is_left_by_the_unblock(
    lab: Lab, start_daemon: StartDaemon, own_set: str, verb: str
) -> None:
    """The administrator's own element for the scanner in a set that guards port 22, there
    before the block: `nft add element` exits 0 for it, `create element` says `File exists`
    (once a failure said to be a route's). Either way the block is in force, not ours: the
    unblock leaves the element and says so."""
    attacker = lab.attackers[0]
    lab.target.run(["nft", "add", "set", "inet", own_set, "ssh_banned", "{ type ipv4_addr; }"])
    rule = ["ip", "saddr", "@ssh_banned", "tcp", "dport", "22", "drop"]
    lab.target.run(["nft", "add", "rule", "inet", own_set, "input", *rule])
    element = ["inet", own_set, "ssh_banned", f"{{ {attacker.ipv4} }}"]
    lab.target.run(["nft", "add", "element", *element])
    route = f"/usr/sbin/nft {verb} element inet {own_set} ssh_banned {{ $TARGET$ }}"
    daemon = start_daemon("-stcp", conf=f'BLOCK_TCP="1"\nKILL_ROUTE="{route}"\n')
    nmap(attacker.run, "-sS", "-p", "11", lab.target.ipv4)
    daemon.wait_for(rf"block address={attacker.ipv4} actions=route:present ")
    assert " ERROR " not in daemon.log()
    assert "route (not ours)" in portwarden(lab.target, daemon, "blocked").stdout
    result = portwarden(lab.target, daemon, "unblock", attacker.ipv4)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"unblocked {attacker.ipv4}",
        f"left as it is: {attacker.ipv4}: KILL_ROUTE {route.replace('$TARGET$', attacker.ipv4)}: "
        "it was there before the block (not ours); remove it by hand if wanted",
    ]
    held = lab.target.run(["nft", "list", "set", "inet", own_set, "ssh_banned"]).stdout
    assert attacker.ipv4 in held
    daemon.stop()
