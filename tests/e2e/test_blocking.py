"""Blocking that really stops traffic, is undone exactly, and survives restarts."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from portwarden.lab.network import Host, Lab
from tests.e2e.conftest import SERVICE, TCP_PORTS, StartDaemon, address_of, nmap
from tests.lab.daemon import (
    RunningDaemon,
    start_with_files,
    start_with_hosts_file,
    wait_for_text,
)
from tests.lab.services import can_connect

RECORD = Path(__file__).parent.parent / "lab" / "record.py"
CRAFT = Path(__file__).parent.parent / "lab" / "malformed.py"


pytestmark = pytest.mark.usefixtures("echo_service")


def portwarden(host: Host, daemon: RunningDaemon, *args: str) -> subprocess.CompletedProcess:
    conf = str(daemon.log_path.with_suffix(".conf"))
    return host.run([sys.executable, "-m", "portwarden", *args, "-c", conf], check=False)


def spoofed_syns(host: Host, first: str, count: int, target: str, ports: str = "1,11,15") -> None:
    """From `host`, a SYN to each of `ports` of `target` from each of `count` forged IPv4
    sources from `first` on, in one process (tests/lab/malformed.py --spoofed)."""
    host.run([sys.executable, str(CRAFT), "--spoofed", first, str(count), target, ports])


def nft_elements(host: Host, table: str = "portwarden") -> set[str]:
    found = set()
    for name in ("blocked4", "blocked6"):
        out = host.run(["nft", "-j", "list", "set", "inet", table, name], check=False)
        if out.returncode == 0:
            for item in json.loads(out.stdout)["nftables"]:
                for element in item.get("set", {}).get("elem", []):
                    found.add(element["elem"]["val"] if isinstance(element, dict) else element)
    return found


def store_sql(host: Host, daemon: RunningDaemon, sql: str) -> list[str]:
    """Run one SQL statement on the daemon's store (committed); the first column of each row."""
    code = (
        "import sqlite3, sys\n"
        "with sqlite3.connect(sys.argv[1]) as db:\n"
        "    print('\\n'.join(str(r[0]) for r in db.execute(sys.argv[2])))\n"
    )
    store = daemon.log_path.parent / "state" / "portwarden.db"
    return host.run([sys.executable, "-c", code, str(store), sql]).stdout.split()


def blackholes(host: Host) -> str:
    return host.run(["ip", "route", "show", "type", "blackhole"]).stdout


def wait_for_file(path: Path, timeout: float = 15.0) -> str:
    """The file's text once it has a whole line."""
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text().endswith("\n")):
        assert time.monotonic() < deadline, f"{path} not written"
        time.sleep(0.02)
    return path.read_text()


def slow_command(pid_file: Path, seconds: int) -> str:
    """A KILL_RUN_CMD that writes its pid, then takes `seconds`."""
    return f"sh -c 'echo $$ > {pid_file}; exec sleep {seconds}'"


def gated_command(pid_file: Path, gate: Path) -> str:
    """A KILL_RUN_CMD that writes its pid, then waits until the test creates `gate`: the test,
    not a guess of how long its own steps take, says when the worker is free again."""
    return f"sh -c 'echo $$ > {pid_file}; until [ -e {gate} ]; do sleep 0.05; done'"


@pytest.mark.parametrize("family", [4, 6])
def test_scanner_is_cut_off_benign_client_is_not_and_unblock_restores(
    lab: Lab, start_daemon: StartDaemon, family: int
) -> None:
    daemon = start_daemon("-stcp", "-sudp", conf='BLOCK_TCP="1"\nBLOCK_UDP="1"\n')
    attacker, target = lab.attackers[0], address_of(lab.target, family)
    assert can_connect(attacker, target, SERVICE)
    six = ["-6"] if family == 6 else []
    nmap(attacker.run, *six, "-sS", "-p", "1-20", target)
    line = daemon.wait_for(rf"block address={address_of(attacker, family)} actions=nft:done ")
    assert "until=forever offence=1" in line.string[line.start() :].splitlines()[0]
    assert not can_connect(attacker, target, SERVICE)
    assert can_connect(lab.client, target, SERVICE)
    assert nft_elements(lab.target) == {address_of(attacker, family)}
    listing = portwarden(lab.target, daemon, "blocked").stdout
    assert address_of(attacker, family) in listing and "TCP SYN/Normal scan (tcp" in listing
    blocked_file = Path(daemon.log_path.parent, "state", "portsentry.blocked.stcp").read_text()
    assert (
        f"/{address_of(attacker, family)} Port: " in blocked_file and " TCP Blocked" in blocked_file
    )
    # Its later probes never reach the sensors (the set drops them), so no "already blocked"
    # line here: test_alerts.py checks that line with a block that lets probes through.
    result = portwarden(lab.target, daemon, "unblock", address_of(attacker, family))
    assert result.returncode == 0 and f"unblocked {address_of(attacker, family)}" in result.stdout
    # The running daemon sees the block end and says so, in its log and its event log.
    daemon.wait_for(rf"unblock address={address_of(attacker, family)} by=command")
    events = Path(daemon.log_path.parent, "state", "events.jsonl").read_text().splitlines()
    assert {"event": "unblock", "src": address_of(attacker, family), "by": "command"}.items() <= [
        json.loads(e) for e in events if '"unblock"' in e
    ][-1].items()
    assert can_connect(attacker, target, SERVICE)
    assert nft_elements(lab.target) == set()
    assert Path(daemon.log_path.parent, "state", "portsentry.blocked.stcp").read_text() == ""
    mark = daemon.mark()
    # The running daemon follows the store: a new scan blocks again, as a first offence still
    # (the administrator's unblock said the block was a mistake: no offence).
    nmap(attacker.run, *six, "-sS", "-p", "1-20", target)
    daemon.wait_for(rf"block address={address_of(attacker, family)} .* offence=1 ", since=mark)
    daemon.stop()


def test_a_firewall_reload_that_flushes_the_ruleset_does_not_free_the_scanner(
    lab: Lab, start_daemon: StartDaemon
) -> None:
    daemon = start_daemon("-stcp", "-sudp", conf='BLOCK_TCP="1"\n')
    attacker, target = lab.attackers[1], lab.target.ipv4
    nmap(attacker.run, "-sS", "-p", "1-20", target)
    daemon.wait_for(rf"block address={attacker.ipv4} actions=nft:done ")
    mark = daemon.mark()
    # What `systemctl reload nftables` does first, twice in a row; then a flush of our chain.
    flushes = (["ruleset"], ["ruleset"], ["chain", "inet", "portwarden", "input"])
    for number, flush in enumerate(flushes, 1):
        # The daemon checks its table every REFRESH_S: stopped meanwhile, it cannot put the
        # block back before the test has seen that the flush really freed the scanner.
        with daemon.paused():
            lab.target.run(["nft", "flush", *flush])
            assert can_connect(attacker, target, SERVICE)  # for now
            assert daemon.log()[mark:].count("nftables: 1 block re-applied") == number - 1
        deadline = time.monotonic() + 10
        while daemon.log()[mark:].count("nftables: 1 block re-applied") < number:
            assert time.monotonic() < deadline, daemon.log()[mark:]
            time.sleep(0.1)
        assert nft_elements(lab.target) == {attacker.ipv4}
        assert not can_connect(attacker, target, SERVICE)
    assert can_connect(lab.client, target, SERVICE)
    assert daemon.log()[mark:].count("missing: table inet portwarden") == 2
    assert daemon.log()[mark:].count("missing: the rules of chain input of table inet") == 1
    # `unblock --all` removes the table on purpose: nothing is put back, nothing is alerted...
    assert portwarden(lab.target, daemon, "unblock", "--all").returncode == 0
    time.sleep(2 * 2.0 + 0.5)  # two REFRESH_S
    assert daemon.log()[mark:].count("missing: table inet portwarden") == 2
    assert nft_elements(lab.target) == set()
    # ...and the next block makes the table again.
    nmap(lab.attackers[2].run, "-sS", "-p", "1-20", target)
    daemon.wait_for(rf"block address={lab.attackers[2].ipv4} actions=nft:done ")
    assert not can_connect(lab.attackers[2], target, SERVICE)
    daemon.stop()


def test_kill_route_hosts_deny_and_command_order(
    lab: Lab, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    calls, deny = tmp_path / "calls", tmp_path / "hosts.deny"
    deny.write_text("# admin's own line\nsshd: 203.0.113.9\n")
    original = deny.read_text()
    command = f"{sys.executable} {RECORD} {calls} cmd $TARGET$ $PORT$ $MODE$"
    conf = (
        f'BLOCK_TCP="1"\nKILL_ROUTE="ip route add blackhole $TARGET$"\n'
        f'KILL_HOSTS_DENY="ALL: $TARGET$ : spawn /bin/echo \\%d $PORT$ : DENY"\n'
        f'HOSTS_DENY_FILE="{deny}"\n'
        f'KILL_RUN_CMD="{command}"\n'
    )
    daemon = start_daemon("-stcp", "-sudp", conf=conf)
    attacker = lab.attackers[1]
    nmap(attacker.run, "-sS", "-p", "11", lab.target.ipv4)
    daemon.wait_for(
        rf"block address={attacker.ipv4} actions=hosts.deny:done,route:done,"
        "command:done "
    )  # PortSentry 1.2's order
    routes = lab.target.run(["ip", "route", "show", "type", "blackhole"]).stdout
    assert attacker.ipv4 in routes
    assert not can_connect(attacker, lab.target.ipv4, SERVICE)  # like PortSentry's KILL_ROUTE
    assert nft_elements(lab.target) == set()  # KILL_ROUTE given: no built-in blocker
    # The literal text (Debian's comment asks for \%), as PortSentry wrote it.
    assert deny.read_text() == original + f"ALL: {attacker.ipv4} : spawn /bin/echo \\%d 11 : DENY\n"
    assert calls.read_text().split()[1:] == ["'cmd'", f"'{attacker.ipv4}'", "'11'", "'stcp'"]
    portwarden(lab.target, daemon, "unblock", attacker.ipv4)
    assert attacker.ipv4 not in lab.target.run(["ip", "route", "show", "type", "blackhole"]).stdout
    assert deny.read_text() == original  # exactly our line removed
    assert can_connect(attacker, lab.target.ipv4, SERVICE)
    daemon.stop()


@pytest.mark.parametrize("first", [0, 1])
def test_block_2_runs_only_the_command_and_run_cmd_first_orders(
    lab: Lab, start_daemon: StartDaemon, tmp_path: Path, first: int
) -> None:
    calls = tmp_path / "calls"
    record = f"{sys.executable} {RECORD} {calls}"
    conf = (
        f'BLOCK_TCP="1"\nBLOCK_UDP="2"\nKILL_ROUTE="{record} route $TARGET$"\n'
        f'KILL_RUN_CMD="{record} cmd $TARGET$ $MODE$"\n'
        f'KILL_RUN_CMD_FIRST="{first}"\n'
    )
    daemon = start_daemon("-stcp", "-sudp", conf=conf)
    tcp_attacker, udp_attacker = lab.attackers[0], lab.attackers[2]
    nmap(tcp_attacker.run, "-sS", "-p", "11", lab.target.ipv4)
    nmap(udp_attacker.run, "-sU", "-p", "7", lab.target.ipv4)
    daemon.wait_for(rf"block address={udp_attacker.ipv4} actions=command:done ")
    daemon.wait_for(rf"block address={tcp_attacker.ipv4} ")
    lines = [line.split(maxsplit=1)[1] for line in calls.read_text().splitlines()]
    tcp_calls = [line for line in lines if tcp_attacker.ipv4 in line]
    expected = [f"'route' '{tcp_attacker.ipv4}'", f"'cmd' '{tcp_attacker.ipv4}' 'stcp'"]
    assert tcp_calls == (expected[::-1] if first else expected)
    assert [line for line in lines if udp_attacker.ipv4 in line] == [
        f"'cmd' '{udp_attacker.ipv4}' 'sudp'"
    ]  # BLOCK_UDP=2: the command only, no route
    daemon.stop()


def test_hostile_hostname_runs_nothing_and_breaks_no_line(lab: Lab, tmp_path: Path) -> None:
    attacker = lab.attackers[2]
    evil = "evil$(touch${IFS}/tmp/pw-pwned);`id`|x\x1b[31m"
    hosts = tmp_path / "hosts"
    hosts.write_text(f"127.0.0.1 localhost\n{attacker.ipv4} {evil}\n")
    conf = tmp_path / "portwarden.conf"
    calls = tmp_path / "calls"
    conf.write_text(
        f'STATE_DIR="{tmp_path}/state"\nTCP_PORTS="11"\nUDP_MODE="none"\n'
        'BLOCK_TCP="1"\nRESOLVE_HOST="1"\n'
        f'KILL_RUN_CMD="{sys.executable} {RECORD} {calls} $TARGET$"\n'
    )
    Path("/tmp/pw-pwned").unlink(missing_ok=True)
    log = tmp_path / "log"
    proc = start_with_hosts_file(lab.target, hosts, conf, log, "-stcp")
    try:
        nmap(attacker.run, "-sS", "-p", "11", lab.target.ipv4)
        wait_for_text(log, "block address=")
        time.sleep(0.5)
        blocked = (tmp_path / "state" / "portsentry.blocked.stcp").read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert not Path("/tmp/pw-pwned").exists()
    assert calls.read_text().split()[1:] == [f"'{attacker.ipv4}'"]
    assert "\x1b" not in blocked and "\x1b" not in log.read_text()
    assert blocked.count("\n") == 1
    assert (
        f"Host: evil$(touch${{IFS}}\\x2ftmp\\x2fpw-pwned);`id`|x\\x1b[31m/{attacker.ipv4}"
        in blocked
    )
    for line in log.read_text().splitlines():
        assert line.startswith("20"), line  # every line is a whole log line


def test_expiry_and_escalation(lab: Lab, start_daemon: StartDaemon) -> None:
    """4 s, then 4 x 2 capped at 6 s: the durations are the store's (until - since), and each
    block ends at its time (expiry runs every second), not before. Blocks of some seconds
    leave room for the checks that the scanner is cut off meanwhile."""
    daemon = start_daemon(
        "-stcp",
        "-sudp",
        conf='BLOCK_TCP="1"\nBLOCK_DURATION="4"\nBLOCK_ESCALATION="2"\nBLOCK_DURATION_MAX="6"\n',
    )
    attacker = lab.attackers[1]
    mark = 0
    for offence, seconds in ((1, 4), (2, 6)):
        nmap(attacker.run, "-sS", "-p", "11", lab.target.ipv4)
        daemon.wait_for(
            rf"block address={attacker.ipv4} actions=nft:done until=20\S* "
            f"offence={offence} ",
            since=mark,
        )
        assert not can_connect(attacker, lab.target.ipv4, SERVICE, timeout=1)
        daemon.wait_for(
            rf"unblock address={attacker.ipv4} by=expired", since=mark, timeout=seconds + 15
        )
        (row,) = store_sql(
            lab.target,
            daemon,
            f"select since || ',' || until || ',' || ended from blocks where offence = {offence}",
        )
        since, until, ended = map(float, row.split(","))
        assert until - since == pytest.approx(seconds, abs=0.01)
        assert 0 <= ended - until < 5  # at its time; a late tick on a loaded machine
        assert can_connect(attacker, lab.target.ipv4, SERVICE)
        mark = daemon.mark()
    daemon.stop()


@pytest.mark.parametrize("reboot", [False, True], ids=["restart", "reboot"])
def test_kill_9_during_a_burst_then_restart_enforces_every_block_once(
    lab: Lab, start_daemon: StartDaemon, tmp_path: Path, reboot: bool
) -> None:
    """kill -9 in the middle of a burst of blocks (nftables, hosts.deny, KILL_ROUTE), then a
    start, with or without our table gone as after a reboot: the set, the routes, hosts.deny,
    BLOCKED_FILE and HISTORY_FILE agree with the store, every block once."""
    deny = tmp_path / "hosts.deny"
    conf = (
        f'BLOCK_TCP="1"\nBLOCKS_PER_MINUTE="100000"\nKILL_HOSTS_DENY="ALL: $TARGET$"\n'
        f'HOSTS_DENY_FILE="{deny}"\nBLOCK_NFTABLES="1"\n'
        'KILL_ROUTE="ip route add blackhole $TARGET$"\n'
    )
    daemon = start_daemon("-stcp", "-sudp", conf=conf)
    flood = lab.attackers[2].popen(
        ["hping3", "--rand-source", "-S", "-p", "11", "-i", "u500", lab.target.ipv4],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        daemon.wait_for("block address=")
        time.sleep(1.0)
        daemon.proc.kill()  # kill -9 in the middle of the burst
        daemon.proc.wait()
    finally:
        flood.kill()
    state = daemon.log_path.parent / "state"
    store_rows = store_sql(lab.target, daemon, "select address from blocks where ended is null")
    assert len(store_rows) > 50 and len(store_rows) == len(set(store_rows))
    if reboot:
        lab.target.run(["nft", "delete", "table", "inet", "portwarden"])
    again = RunningDaemon(lab.target, daemon.log_path.with_suffix(".conf"), "-stcp", "-sudp")
    try:
        restored = int(again.wait_for(r"restored (\d+) active blocks? from").group(1))
        again.wait_for("ready:")
        active = store_sql(lab.target, again, "select address from blocks where ended is null")
        assert restored == len(active) and set(active) <= set(store_rows)
        assert nft_elements(lab.target) == set(active)
        routed = re.findall(r"^blackhole (\S+)", blackholes(lab.target), re.MULTILINE)
        assert sorted(routed) == sorted(active)  # none twice: a restart runs no route again
        assert sorted(deny.read_text().splitlines()) == sorted(f"ALL: {a}" for a in active)
        blocked_file = (state / "portsentry.blocked.stcp").read_text().splitlines()
        assert sorted(_hosts(blocked_file)) == sorted(active)
        # Every block that took effect has its history line, once (a block the full queue
        # made the loop give up on never took effect: ended `failed`, no line).
        in_force = store_sql(
            lab.target,
            again,
            "select address from blocks where ended is null or ended_by != 'failed'",
        )
        history = (state / "portsentry.history").read_text().splitlines()
        assert sorted(_hosts(history)) == sorted(in_force)
        assert store_sql(lab.target, again, "select count(*) from blocks where not history") == [
            "0"
        ]
    finally:
        again.stop()
        lab.target.run(["ip", "route", "flush", "type", "blackhole"], check=False)


def _hosts(lines: list[str]) -> list[str]:
    """The addresses of PortSentry's `... Host: <name>/<ip> Port: 11 TCP Blocked` lines."""
    found = [re.search(r" Host: \S+/(\S+) Port: 11 TCP Blocked$", line) for line in lines]
    assert all(found), lines
    return [m.group(1) for m in found if m]


def test_spoofed_flood_hits_the_cap_and_a_real_scanner_is_still_blocked(
    lab: Lab, start_daemon: StartDaemon
) -> None:
    daemon = start_daemon("-stcp", "-sudp", conf='BLOCK_TCP="1"\nBLOCKS_PER_MINUTE="20"\n')
    # Tens of thousands of packets a second, every one from a new address, every one a probe
    # (the kernel filter cannot drop them: they go to a tripwire). `--flood` (over 100,000 a
    # second here) is more than the daemon reads; see README, "Limits under attack".
    flood = lab.attackers[2].popen(
        ["hping3", "--rand-source", "-i", "u20", "-S", "-p", "11", lab.target.ipv4],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        daemon.wait_for("block-cap reached: 20 blocks in a minute")
        scanner = lab.attackers[0]
        assert can_connect(scanner, lab.target.ipv4, SERVICE)
        # Its 8 tripwires by name: 3 ports take the first slot past the cap (see
        # ResponsePolicy._within_cap); once blocked, nmap's back-off on filtered ports stays
        # short (on 200 ports, during the flood, it outlasted 120 s under load).
        nmap(scanner.run, "-sS", "-p", TCP_PORTS, lab.target.ipv4)
        daemon.wait_for(rf"block address={scanner.ipv4} ")
        assert not can_connect(scanner, lab.target.ipv4, SERVICE)
        time.sleep(2)
        rss_kib = int(
            next(
                line.split()[1]
                for line in Path(f"/proc/{daemon.proc.pid}/status").read_text().splitlines()
                if line.startswith("VmRSS:")
            )
        )
    finally:
        flood.kill()
    assert daemon.proc.poll() is None
    assert len(nft_elements(lab.target)) <= 40  # 20, plus 20 for sources seen on many ports
    assert daemon.log().count("block-cap reached") == 1
    assert rss_kib < 120 * 1024  # the per-source table is bounded
    daemon.stop()
    probes = int(daemon.wait_for(r"stopped: probes=(\d+)").group(1))
    assert probes > 20_000  # the flood really was processed, not dropped unseen


def test_kill_9_during_a_slow_command_then_unblock_without_the_daemon_undoes_everything(
    lab: Lab, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """The daemon is killed while KILL_RUN_CMD runs (route and hosts.deny line done): the
    store knows all of it, so `unblock` with no daemon running removes both."""
    deny, pid = tmp_path / "hosts.deny", tmp_path / "command.pid"
    deny.write_text("sshd: 203.0.113.9\n")
    original = deny.read_text()
    conf = (
        f'BLOCK_TCP="1"\nKILL_ROUTE="ip route add blackhole $TARGET$"\n'
        f'KILL_HOSTS_DENY="ALL: $TARGET$"\nHOSTS_DENY_FILE="{deny}"\n'
        f'KILL_RUN_CMD="{slow_command(pid, 30)}"\n'
    )
    daemon = start_daemon("-stcp", "-sudp", conf=conf)
    attacker = lab.attackers[0]
    nmap(attacker.run, "-sS", "-p", "11", lab.target.ipv4)
    command = int(wait_for_file(pid))
    daemon.proc.kill()
    daemon.proc.wait()
    os.kill(command, signal.SIGKILL)
    assert attacker.ipv4 in blackholes(lab.target)
    assert deny.read_text() == original + f"ALL: {attacker.ipv4}\n"
    result = portwarden(lab.target, daemon, "unblock", attacker.ipv4)
    assert result.returncode == 0 and f"unblocked {attacker.ipv4}" in result.stdout
    assert attacker.ipv4 not in blackholes(lab.target)
    assert deny.read_text() == original
    assert can_connect(attacker, lab.target.ipv4, SERVICE)


def test_kill_9_while_a_slow_command_delays_the_worker_leaves_no_block_the_store_does_not_know(
    lab: Lab, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """The loop adds each block's element and records the block right after (the element
    first: it is the fast part of the reaction); a KILL_RUN_CMD that takes seconds delays the
    worker, not the records. After a kill -9, `blocked` lists every element in the firewall,
    and `unblock NET` without the daemon removes each one, also one added just before a kill
    and never recorded."""
    pid = tmp_path / "command.pid"
    conf = f'BLOCK_TCP="1"\nKILL_RUN_CMD="{slow_command(pid, 30)}"\n'
    daemon = start_daemon("-stcp", "-sudp", conf=conf)
    scanners = [a.ipv4 for a in lab.attackers] + [lab.attackers[0].ipv6]
    for attacker in lab.attackers:
        nmap(attacker.run, "-sS", "-p", "11", lab.target.ipv4)
    nmap(lab.attackers[0].run, "-6", "-sS", "-p", "11", lab.target.ipv6)
    command = int(wait_for_file(pid))

    # Each element, and each block recorded (a moment after its element; the kill of a block
    # not yet recorded is the other case, made below).
    def blocked() -> tuple[set[str], list[str]]:
        return nft_elements(lab.target), store_sql(
            lab.target, daemon, "select count(*) from blocks"
        )

    deadline = time.monotonic() + 10
    while (found := blocked()) != (set(scanners), [str(len(scanners))]):
        assert time.monotonic() < deadline, found
        time.sleep(0.05)
    daemon.proc.kill()
    daemon.proc.wait()
    os.kill(command, signal.SIGKILL)
    listed = portwarden(lab.target, daemon, "blocked").stdout
    assert {line.split()[0] for line in listed.splitlines()[1:]} == set(scanners)
    # An element added just before a kill, before its block was recorded (a fraction of a
    # millisecond): `unblock NET` without the daemon removes it too.
    lab.target.run(["nft", "add", "element", "inet", "portwarden", "blocked4", "{ 198.18.0.77 }"])
    outputs = []
    for network, inside in (("198.18.0.0/24", scanners[:3]), ("2001:db8::/64", scanners[3:])):
        result = portwarden(lab.target, daemon, "unblock", network)
        assert result.returncode == 0, result.stderr
        unblocked = [
            line.split()[1] for line in result.stdout.splitlines() if line.startswith("unblocked ")
        ]
        assert sorted(unblocked) == sorted(inside)
        outputs.append(result.stdout)
    swept = "removed 1 nftables element inside 198.18.0.0/24 that the store did not list"
    assert swept in outputs[0] and "removed" not in outputs[1]
    assert nft_elements(lab.target) == set()
    assert can_connect(lab.attackers[0], lab.target.ipv4, SERVICE)


def test_restarts_run_kill_route_once_and_a_reboot_runs_it_again(
    lab: Lab, start_daemon: StartDaemon, started_daemons: list[RunningDaemon]
) -> None:
    attacker = lab.attackers[1]
    rule = ["-s", f"{attacker.ipv4}/32", "-j", "DROP"]

    def rules() -> int:
        return lab.target.run(["iptables", "-S", "INPUT"]).stdout.count(" ".join(rule))

    def restart() -> RunningDaemon:
        again = RunningDaemon(lab.target, daemon.log_path.with_suffix(".conf"), "-stcp")
        started_daemons.append(again)
        again.wait_for("ready:")
        return again

    conf = 'BLOCK_TCP="1"\nKILL_ROUTE="iptables -I INPUT -s $TARGET$ -j DROP"\n'
    daemon = start_daemon("-stcp", conf=conf)
    try:
        nmap(attacker.run, "-sS", "-p", "11", lab.target.ipv4)
        daemon.wait_for(rf"block address={attacker.ipv4} actions=route:done ")
        daemon.stop()
        for _ in range(2):
            restart().stop()
        assert rules() == 1
        assert not can_connect(attacker, lab.target.ipv4, SERVICE, timeout=1)
        # As after a reboot: the rule is gone, and the store's blocks are of another boot.
        lab.target.run(["iptables", "-D", "INPUT", *rule])
        store_sql(lab.target, daemon, "update blocks set boot = 'an earlier boot'")
        again = restart()
        assert rules() == 1
        assert not can_connect(attacker, lab.target.ipv4, SERVICE, timeout=1)
        # Flushed by hand: `reapply` puts it back, once, through the running daemon or not.
        lab.target.run(["iptables", "-F", "INPUT"])
        for _ in range(2):
            result = portwarden(lab.target, again, "reapply")
            assert f"KILL_ROUTE run again for {attacker.ipv4}" in result.stdout
            assert rules() == 1
        again.stop()
        restart().stop()
        assert portwarden(lab.target, again, "reapply").returncode == 0
        assert rules() == 1
    finally:
        lab.target.run(["iptables", "-F", "INPUT"], check=False)


def test_hosts_deny_lines_removed_by_hand_come_back_at_start_and_it_is_said(
    lab: Lab, start_daemon: StartDaemon, started_daemons: list[RunningDaemon], tmp_path: Path
) -> None:
    """Lines of active blocks removed from hosts.deny while the daemon was stopped: the start
    puts them back (a block ends by `unblock` or expiry only) and says how many, in which file.
    Before, they came back without a word."""
    deny = tmp_path / "hosts.deny"
    daemon = start_daemon(
        "-stcp",
        conf=(f'BLOCK_TCP="1"\nKILL_HOSTS_DENY="ALL: $TARGET$"\nHOSTS_DENY_FILE="{deny}"\n'),
    )
    attackers = [attacker.ipv4 for attacker in lab.attackers[:2]]
    for attacker, address in zip(lab.attackers, attackers, strict=False):
        nmap(attacker.run, "-sS", "-p", "11", lab.target.ipv4)
        daemon.wait_for(rf"block address={address} actions=nft:done,hosts.deny:done ")
    daemon.stop()
    deny.write_text("sshd: 198.18.0.99\n")  # the administrator's own line stays
    again = RunningDaemon(lab.target, daemon.log_path.with_suffix(".conf"), "-stcp")
    started_daemons.append(again)
    again.wait_for("ready:")
    said = [line for line in again.log().splitlines() if "put back" in line]
    assert len(said) == 1, again.log()
    assert said[0].endswith(
        f"hosts.deny: 2 lines of active blocks put back in {deny} (they were missing: removed "
        "by hand or by another program; `portwarden unblock ADDR` ends a block)"
    )
    assert deny.read_text().splitlines() == ["sshd: 198.18.0.99"] + [f"ALL: {a}" for a in attackers]
    again.stop()


def test_a_block_that_failed_is_not_kept_and_the_next_probe_tries_again(
    lab: Lab, start_daemon: StartDaemon
) -> None:
    daemon = start_daemon("-stcp", conf='BLOCK_TCP="1"\nKILL_ROUTE="/bin/false $TARGET$"\n')
    attacker = lab.attackers[2]
    nmap(attacker.run, "-sS", "-p", "11", lab.target.ipv4)
    daemon.wait_for(rf"block-failed address={attacker.ipv4} actions=route:failed ")
    mark = daemon.mark()
    nmap(attacker.run, "-sS", "-p", "11", lab.target.ipv4)
    daemon.wait_for(rf"block-failed address={attacker.ipv4} actions=route:failed ", since=mark)
    assert "already-blocked" not in daemon.log()
    assert attacker.ipv4 not in portwarden(lab.target, daemon, "blocked").stdout
    daemon.stop()


def log_of_scans(
    lab: Lab,
    tmp_path: Path,
    files: dict[str, Path],
    scans: list[tuple[Host, str]],
    tmpfs: tuple[str, ...] = (),
) -> str:
    """The log of a daemon (stealth TCP on port 11, blocking) started with `files` over system
    files (see start_with_files), once every scan in `scans` (a host, the target's address)
    and then the client's, which nothing protects, have been seen."""
    conf = tmp_path / "portwarden.conf"
    conf.write_text(
        f'STATE_DIR="{tmp_path}/state"\nTCP_PORTS="11"\nUDP_MODE="none"\nBLOCK_TCP="1"\n'
    )
    log = tmp_path / "log"
    proc = start_with_files(lab.target, files, conf, log, "-stcp", tmpfs=tmpfs)
    try:
        for host, address in scans:
            nmap(host.run, *(["-6"] if ":" in address else []), "-sS", "-p", "11", address)
        nmap(lab.client.run, "-sS", "-p", "11", lab.target.ipv4)
        wait_for_text(log, f"block address={lab.client.ipv4} ")
        return log.read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_gateways_and_name_servers_are_never_blocked(lab: Lab, tmp_path: Path) -> None:
    """A multipath default route through two attackers, the third a name server: none of them
    is blocked, and each is named with what it is and the key that allows it; the client,
    which is neither, is blocked."""
    first, second, resolver = lab.attackers
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(f"nameserver {resolver.ipv4}\nnameserver {resolver.ipv6}\n")
    lab.target.run(
        [
            "ip",
            "route",
            "add",
            "default",
            "nexthop",
            "via",
            first.ipv4,
            "nexthop",
            "via",
            second.ipv4,
        ]
    )
    try:
        scans = [(host, lab.target.ipv4) for host in lab.attackers]
        scans.append((resolver, lab.target.ipv6))
        text = log_of_scans(lab, tmp_path, {"/etc/resolv.conf": resolv}, scans)
    finally:
        lab.target.run(["ip", "route", "del", "default"], check=False)
    for address in (first.ipv4, second.ipv4):
        assert f"not-blocking address={address} why=gateway (PROTECT_GATEWAYS=0 allows it)" in text
    for address in (resolver.ipv4, resolver.ipv6):
        assert (
            f"not-blocking address={address} why=nameserver (PROTECT_NAMESERVERS=0 allows it)"
        ) in text
    assert text.count("block address=") == 1


def test_behind_systemd_resolveds_stub_its_upstream_name_servers_are_not_blocked(
    lab: Lab, tmp_path: Path
) -> None:
    """/etc/resolv.conf names only 127.0.0.53: the servers the stub asks are in
    /run/systemd/resolve/resolv.conf, and they are the ones that answer from outside."""
    resolver = lab.attackers[0]
    stub, upstream = tmp_path / "resolv.conf", tmp_path / "upstream.conf"
    stub.write_text("nameserver 127.0.0.53\noptions edns0 trust-ad\n")
    upstream.write_text(f"nameserver {resolver.ipv4}\n")
    files = {"/etc/resolv.conf": stub, "/run/systemd/resolve/resolv.conf": upstream}
    text = log_of_scans(
        lab, tmp_path, files, [(resolver, lab.target.ipv4)], tmpfs=("/run/systemd",)
    )
    assert f"not-blocking address={resolver.ipv4} why=nameserver " in text
    assert f"block address={resolver.ipv4} " not in text


def test_while_the_daemon_is_down_blocked_lists_expired_blocks_status_hides_unblock_all_exact(
    lab: Lab, start_daemon: StartDaemon
) -> None:
    daemon = start_daemon("-stcp", conf='BLOCK_TCP="1"\nBLOCK_DURATION="1"\n')
    attacker = lab.attackers[0]
    nmap(attacker.run, "-sS", "-p", "11", lab.target.ipv4)
    daemon.wait_for(rf"block address={attacker.ipv4} ")
    daemon.stop()
    time.sleep(1.1)  # the block's time is up; no daemon ends it
    lines = portwarden(lab.target, daemon, "blocked").stdout.splitlines()
    assert lines[0].split() == ["address", "since", "until", "reason", "count", "via", "state"]
    assert lines[1].startswith(attacker.ipv4) and lines[1].endswith(
        "expired, removed at next start"
    )
    listed = json.loads(portwarden(lab.target, daemon, "blocked", "--json").stdout)["blocks"]
    assert [(b["address"], b["state"]) for b in listed] == [
        (attacker.ipv4, "expired, removed at next start")
    ]
    status = json.loads(portwarden(lab.target, daemon, "status", "--json").stdout)
    assert status["running"] is False and status["blocks"]["active"] == 0, status["blocks"]
    first = portwarden(lab.target, daemon, "unblock", "--all")
    assert first.returncode == 0 and "removed nftables table inet portwarden" in first.stdout
    second = portwarden(lab.target, daemon, "unblock", "--all")
    assert second.returncode == 0 and "removed" not in second.stdout
    assert lab.target.run(["nft", "list", "table", "inet", "portwarden"], check=False).returncode


def test_unblock_while_the_block_is_being_made_ends_unblocked(
    lab: Lab, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """KILL_RUN_CMD_FIRST=1 and a slow command: the unblock goes through the daemon, after the
    block, so nothing of the block is left."""
    deny, pid = tmp_path / "hosts.deny", tmp_path / "command.pid"
    deny.write_text("sshd: 203.0.113.9\n")
    original = deny.read_text()
    conf = (
        f'BLOCK_TCP="1"\nBLOCK_NFTABLES="1"\nKILL_ROUTE="ip route add blackhole $TARGET$"\n'
        f'KILL_HOSTS_DENY="ALL: $TARGET$"\nHOSTS_DENY_FILE="{deny}"\n'
        f'KILL_RUN_CMD="{slow_command(pid, 2)}"\nKILL_RUN_CMD_FIRST="1"\n'
    )
    daemon = start_daemon("-stcp", conf=conf)
    attacker = lab.attackers[1]
    nmap(attacker.run, "-sS", "-p", "11", lab.target.ipv4)
    wait_for_file(pid)  # the block has begun: its command runs
    result = portwarden(lab.target, daemon, "unblock", attacker.ipv4)
    assert result.returncode == 0 and f"unblocked {attacker.ipv4}" in result.stdout
    log = daemon.log()
    made = log.index(
        f"block address={attacker.ipv4} actions=command:done,nft:done,hosts.deny:done,route:done "
    )
    assert made < log.index(f"unblock address={attacker.ipv4} by=command")
    assert nft_elements(lab.target) == set()
    assert attacker.ipv4 not in blackholes(lab.target)
    assert deny.read_text() == original
    assert can_connect(attacker, lab.target.ipv4, SERVICE)
    assert attacker.ipv4 not in portwarden(lab.target, daemon, "blocked").stdout
    daemon.stop()


def test_an_unblock_request_must_say_what_it_unblocks(lab: Lab, start_daemon: StartDaemon) -> None:
    daemon = start_daemon("-stcp", conf='BLOCK_TCP="1"\n')
    attacker = lab.attackers[2]
    nmap(attacker.run, "-sS", "-p", "11", lab.target.ipv4)
    daemon.wait_for(rf"block address={attacker.ipv4} ")
    path = str(daemon.log_path.parent / "state" / "control.sock")
    for request in (
        {"command": "unblock"},
        {"command": "unblock", "network": "x;id"},
        {"command": "unblock", "network": ["198.18.0.0/24"]},
        {"command": "unblock", "all": "yes"},
    ):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(path)
            sock.sendall(json.dumps(request).encode() + b"\n")
            assert b'"error": "unblock: ' in sock.recv(65536), request
    assert nft_elements(lab.target) == {attacker.ipv4}
    daemon.stop()


def test_two_instances_in_one_namespace_need_their_own_nftables_table(
    lab: Lab, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """A second daemon's start would empty the first one's sets: it is refused, with the key
    to change; with NFT_TABLE of its own both block, and restarting one keeps the other's."""
    first = start_daemon("-stcp", conf='BLOCK_TCP="1"\n')
    conf = tmp_path / "second.conf"
    conf.write_text(
        f'STATE_DIR="{tmp_path}/second"\nTCP_MODE="stcp"\nUDP_MODE="none"\n'
        'TCP_PORTS="11"\nBLOCK_TCP="1"\n'
    )
    command = [sys.executable, "-m", "portwarden", "run", "-c", str(conf)]
    refused = lab.target.run(command, check=False, timeout=30)
    (error,) = [line for line in refused.stderr.splitlines() if "error" in line]
    assert refused.returncode == 2 and error.startswith(f"portwarden: error: {conf}: NFT_TABLE=")
    assert "another portwarden in this network namespace" in error
    conf.write_text(conf.read_text() + 'NFT_TABLE="pw_second"\n')
    second = RunningDaemon(lab.target, conf)
    try:
        second.wait_for("ready:")
        attacker = lab.attackers[1]
        nmap(attacker.run, "-sS", "-p", "11", lab.target.ipv4)
        first.wait_for(rf"block address={attacker.ipv4} actions=nft:done ")
        second.wait_for(rf"block address={attacker.ipv4} actions=nft:done ")
        second.stop()
        second = RunningDaemon(lab.target, conf)
        second.wait_for("restored 1 active block from")
        assert nft_elements(lab.target) == {attacker.ipv4}
        assert nft_elements(lab.target, "pw_second") == {attacker.ipv4}
    finally:
        second.stop()
        lab.target.run(["nft", "delete", "table", "inet", "pw_second"], check=False)


def test_an_element_removed_by_hand_is_added_again_at_the_sources_next_probe(
    lab: Lab, start_daemon: StartDaemon
) -> None:
    """`nft flush set` or `nft delete element` frees a blocked source, and the check of the
    table (every 2 s) does not see it; its next probe does, since the sensors sit behind our
    drop rule: the element is back within a moment, and it is said."""
    daemon = start_daemon("-stcp", conf='BLOCK_TCP="1"\n')
    attacker, target = lab.attackers[0], lab.target.ipv4
    nmap(attacker.run, "-sS", "-p", "11", target)
    daemon.wait_for(rf"block address={attacker.ipv4} actions=nft:done ")
    removals = (
        ["flush", "set", "inet", "portwarden", "blocked4"],
        ["delete", "element", "inet", "portwarden", "blocked4", f"{{ {attacker.ipv4} }}"],
    )
    for number, removal in enumerate(removals, 1):
        time.sleep(1.0)  # a source's element is looked at once a second at most
        lab.target.run(["nft", *removal])
        assert nft_elements(lab.target) == set()
        assert can_connect(attacker, target, SERVICE)  # free, for now
        started = time.monotonic()
        nmap(attacker.run, "-sS", "-p", "15", target)
        while daemon.log().count(f"element {attacker.ipv4} was gone") < number:
            assert time.monotonic() - started < 5, daemon.log()
            time.sleep(0.02)
        assert nft_elements(lab.target) == {attacker.ipv4}
        assert not can_connect(attacker, target, SERVICE)
    log = daemon.log()
    assert f"element {attacker.ipv4} was gone from the sets of table inet portwarden" in log
    assert log.count(f"already-blocked address={attacker.ipv4}") == 1  # once per block
    assert "missing: table" not in log
    events = Path(daemon.log_path.parent, "state", "events.jsonl").read_text()
    assert events.count('"event":"element-lost"') == 2
    assert can_connect(lab.client, target, SERVICE)
    daemon.stop()


def test_forged_sources_on_a_few_ports_each_do_not_shield_a_real_scanner(
    lab: Lab, start_daemon: StartDaemon
) -> None:
    """40 forged sources, each on 3 tripwires: 20 fill the cap, the others would fill the
    second budget if 3 ports were enough for all of it. A real scanner seen on more ports
    still gets a place."""
    daemon = start_daemon("-stcp", conf='BLOCK_TCP="1"\nBLOCKS_PER_MINUTE="20"\n')
    forger, scanner = lab.attackers[2], lab.attackers[0]
    spoofed_syns(forger, "198.18.2.1", 40, lab.target.ipv4)
    daemon.wait_for("block-cap reached: 20 blocks in a minute")
    deadline = time.monotonic() + 10
    while daemon.attacks(src="198.18.2.40", port="15") == []:  # every forged probe was read
        assert time.monotonic() < deadline, daemon.log()
        time.sleep(0.05)
    nmap(scanner.run, "-sS", "-p", "1,11,15,79,111,540,1080", lab.target.ipv4)  # 7 tripwires
    daemon.wait_for(rf"block address={scanner.ipv4} ")
    assert not can_connect(scanner, lab.target.ipv4, SERVICE)
    forged = {a for a in nft_elements(lab.target) if a.startswith("198.18.2.")}
    assert len(forged) == 25  # the cap, and the second budget's first quarter (3 ports)
    daemon.stop()


def test_unblock_all_without_a_daemon_leaves_another_running_daemons_table_alone(
    lab: Lab, start_daemon: StartDaemon
) -> None:
    """Two configurations with the same NFT_TABLE, one daemon running: `unblock --all` with the
    other's configuration would remove the running daemon's table; it refuses, as `run` does."""
    stopped = start_daemon("-stcp", conf='BLOCK_TCP="1"\n')
    nmap(lab.attackers[0].run, "-sS", "-p", "11", lab.target.ipv4)
    stopped.wait_for(rf"block address={lab.attackers[0].ipv4} ")
    stopped.stop()
    running = start_daemon("-stcp", conf='BLOCK_TCP="1"\n')
    attacker = lab.attackers[1]
    nmap(attacker.run, "-sS", "-p", "11", lab.target.ipv4)
    running.wait_for(rf"block address={attacker.ipv4} ")
    for command in (["unblock", "--all"], ["unblock", lab.attackers[0].ipv4], ["reapply"]):
        result = portwarden(lab.target, stopped, *command)
        assert result.returncode == 1, result
        (line,) = result.stderr.splitlines()
        assert line.startswith(
            f"portwarden: error: {command[0]}: another running portwarden in "
            "this network namespace blocks with nftables table inet "
            "portwarden; nothing was changed"
        )
    assert nft_elements(lab.target) == {attacker.ipv4}
    assert not can_connect(attacker, lab.target.ipv4, SERVICE)
    listed = portwarden(lab.target, stopped, "blocked").stdout
    assert lab.attackers[0].ipv4 in listed  # its own store was not changed either
    running.stop()
    result = portwarden(lab.target, stopped, "unblock", "--all")
    assert result.returncode == 0 and f"unblocked {lab.attackers[0].ipv4}" in result.stdout
