"""Alert-only mode (BLOCK_TCP=0, BLOCK_UDP=0: Debian's default) with fail2ban's stock
`portsentry` jail doing the banning: as PortSentry 1.2, portwarden writes its `Blocked` line to
HISTORY_FILE for each scanner it reports (HISTORY_ALERT_ONLY=1), blocks nothing, and writes no
line for the benign client, a gateway or an ignored host. fail2ban's own filter, run by
Debian's fail2ban-regex on the file the daemon wrote, finds exactly the scanners."""

from pathlib import Path

import pytest

from portwarden.lab.network import Lab
from tests.e2e.conftest import SERVICE, StartDaemon, nmap
from tests.e2e.test_alerts import banned_by_fail2ban
from tests.e2e.test_blocking import blackholes, spoofed_syns
from tests.lab.daemon import RunningDaemon, start_with_hosts_file, wait_for_text
from tests.lab.services import can_connect

pytestmark = pytest.mark.usefixtures("echo_service")

GATEWAY = "198.18.0.18"  # nobody on the lab's bridge has it: the target takes it as its gateway


def history_of(daemon: RunningDaemon) -> Path:
    return daemon.log_path.parent / "state" / "portsentry.history"


def lines_of(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_alert_only_mode_writes_portsentrys_line_that_fail2ban_bans_on_and_blocks_nothing(
    lab: Lab, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    hosts_deny = tmp_path / "hosts.deny"
    daemon = start_daemon(
        "-stcp",
        "-sudp",
        conf=(f'KILL_HOSTS_DENY="ALL: $TARGET$"\nHOSTS_DENY_FILE="{hosts_deny}"\n'),
    )
    first, second = lab.attackers[0], lab.attackers[1]
    target = lab.target.ipv4
    assert can_connect(lab.client, target, SERVICE)  # the benign client: no tripwire
    nmap(first.run, "-sS", "-p", "1-20", target)  # tripwires 1, 11 and 15
    nmap(second.run, "-6", "-sU", "-p", "7,9", lab.target.ipv6)
    daemon.wait_for(rf"history-note address={first.ipv4} port=(1|11|15) proto=tcp: ")
    daemon.wait_for(rf"history-note address={second.ipv6} port=(7|9) proto=udp: ")
    # Nothing is blocked: no nftables table, no route, no hosts.deny line; the scanner still
    # reaches the real service, and portwarden lists no block.
    assert (
        lab.target.run(["nft", "list", "table", "inet", "portwarden"], check=False).returncode != 0
    )
    assert blackholes(lab.target) == "" and not hosts_deny.exists()
    assert can_connect(first, target, SERVICE)
    for blocked in (daemon.log_path.parent / "state").glob("portsentry.blocked.*"):
        assert blocked.read_text() == "", blocked
    # The same scan again, at once: the same would-be block, no second line.
    mark = daemon.mark()
    nmap(first.run, "-sS", "-p", "1,11,15", target)
    daemon.wait_for_attack(since=mark, src=first.ipv4, kind="scan")
    daemon.stop()  # what waits for the action worker is done before it exits
    history = history_of(daemon)
    assert len(lines_of(history)) == 2 and oct(history.stat().st_mode & 0o777) == "0o644"
    assert sorted(banned_by_fail2ban(history)) == sorted([first.ipv4, second.ipv6])
    assert lab.client.ipv4 not in history.read_text()
    assert daemon.log().count("history-note address=") == 2


def test_with_history_alert_only_0_alert_only_mode_writes_no_line(
    lab: Lab, start_daemon: StartDaemon
) -> None:
    daemon = start_daemon("-stcp", conf='HISTORY_ALERT_ONLY="0"\n')
    attacker = lab.attackers[0]
    nmap(attacker.run, "-sS", "-p", "1-20", lab.target.ipv4)
    daemon.wait_for_attack(src=attacker.ipv4, kind="scan")
    daemon.stop()
    assert lines_of(history_of(daemon)) == []
    assert "history-note" not in daemon.log()


def test_no_line_for_a_gateway_or_an_ignored_host_which_fail2ban_would_ban(
    lab: Lab, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    ignored, scanner = lab.attackers[2], lab.attackers[0]
    ignore_file = tmp_path / "portsentry.ignore"
    ignore_file.write_text(f"{ignored.ipv4}\n")
    lab.target.run(["ip", "route", "replace", "default", "via", GATEWAY])
    try:
        daemon = start_daemon("-stcp", conf=f'IGNORE_FILE="{ignore_file}"\n')
        spoofed_syns(lab.attackers[0], GATEWAY, 1, lab.target.ipv4)
        daemon.wait_for_attack(src=GATEWAY, kind="scan")
        nmap(ignored.run, "-sS", "-p", "1,11,15", lab.target.ipv4)
        nmap(scanner.run, "-sS", "-p", "1,11,15", lab.target.ipv4)
        daemon.wait_for(rf"history-note address={scanner.ipv4} ")
        daemon.stop()
    finally:
        lab.target.run(["ip", "route", "del", "default"], check=False)
    assert banned_by_fail2ban(history_of(daemon)) == [scanner.ipv4]
    assert (
        f"no HISTORY_FILE line for address={GATEWAY} why=gateway (PROTECT_GATEWAYS=0 allows it)"
    ) in daemon.log()
    assert daemon.attacks(src=ignored.ipv4) == []


def test_the_line_names_the_scanner_as_resolve_host_finds_it(lab: Lab, tmp_path: Path) -> None:
    """RESOLVE_HOST="1": the name is looked up off the loop, as for a block, and a name that
    would break the line (a `/`, a blank, a control) is escaped: fail2ban still reads the
    address after the last `/`."""
    attacker = lab.attackers[2]
    hosts = tmp_path / "hosts"
    hosts.write_text(f"127.0.0.1 localhost\n{attacker.ipv4} scan/ner\x1b[31m.example\n")
    conf = tmp_path / "portwarden.conf"
    conf.write_text(
        f'STATE_DIR="{tmp_path}/state"\nTCP_PORTS="11"\nUDP_MODE="none"\nRESOLVE_HOST="1"\n'
    )
    log = tmp_path / "log"
    proc = start_with_hosts_file(lab.target, hosts, conf, log, "-stcp")
    try:
        nmap(attacker.run, "-sS", "-p", "11", lab.target.ipv4)
        wait_for_text(log, f"history-note address={attacker.ipv4} port=11 proto=tcp: ")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    history = tmp_path / "state" / "portsentry.history"
    (line,) = lines_of(history)
    assert f" Host: scan\\x2fner\\x1b[31m.example/{attacker.ipv4} Port: 11 TCP Blocked" in line
    assert banned_by_fail2ban(history) == [attacker.ipv4]
