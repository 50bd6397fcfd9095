"""Operations at their edges: the reading commands run by a user other than root, the
daemon's own metrics page in its audit, stray signals, a scan that blocks in the metrics."""

import json
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from portwarden.lab.network import Lab
from tests.e2e.conftest import TCP_PORTS, StartDaemon, nmap
from tests.e2e.test_blocking import portwarden
from tests.e2e.test_operations import scrape, status_json
from tests.lab.daemon import RunningDaemon

NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


@pytest.fixture
def open_folder() -> Iterator[Path]:
    """A folder anyone may read (pytest's tmp_path is root's alone): the configuration goes
    there, STATE_DIR (made 0700 by the daemon) inside it."""
    folder = Path(tempfile.mkdtemp(prefix="ho-"))  # noqa: S108 - removed below
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


@pytest.mark.parametrize(
    "command",
    [
        ["status", "--json"],
        ["status"],
        ["blocked", "--json"],
        ["blocked"],
        ["unblock", "198.18.0.11"],
        ["audit", "--json"],
        ["audit", "--no-state"],
    ],
)
def test_reading_commands_as_another_user_say_why_in_one_line(
    lab: Lab, open_folder: Path, command: list[str]
) -> None:
    """STATE_DIR is 0700: `status` used to say that the sensors need root, `blocked` to blame
    the EVENT_LOG line, with no JSON for a script."""
    conf = open_folder / "p.conf"
    conf.write_text(
        f'STATE_DIR="{open_folder}/state"\nTCP_PORTS="{TCP_PORTS}"\n'
        'TCP_MODE="stcp"\nUDP_MODE="none"\n'
    )
    conf.chmod(0o644)
    daemon = RunningDaemon(lab.target, conf)
    try:
        daemon.wait_for("ready:")
        result = lab.target.run(
            [*NOBODY, sys.executable, "-m", "portwarden", *command, "-c", str(conf)], check=False
        )
    finally:
        daemon.stop()
    assert result.returncode == (2 if command[0] == "audit" else 1)  # audit's 1: findings
    line = (
        f"{open_folder}/state/portwarden.db: Permission denied (run 'portwarden "
        f"{command[0]}' as root)"
    )
    if command[0] == "audit":
        line = line.replace("portwarden.db", "portwarden.lock")
    assert result.stderr == f"portwarden: error: {line}\n"
    assert (json.loads(result.stdout) if "--json" in command else result.stdout) == (
        {"error": line} if "--json" in command else ""
    )


def test_the_daemons_own_metrics_page_is_no_audit_finding_and_usr_signals_are_ignored(
    lab: Lab, start_daemon: StartDaemon
) -> None:
    """On every address, as the reviewer had it: it used to be a `ServiceNew ... program=
    portwarden` (crit) at every start. SIGUSR1 and SIGUSR2 used to kill the daemon, leaving its
    pid file and control socket."""
    daemon = start_daemon("-stcp", "-sudp", conf='METRICS_LISTEN="0.0.0.0:9919"\n')
    deadline = time.monotonic() + 15
    while (found := status_json(lab, daemon))["audit"] is None:
        assert time.monotonic() < deadline, "no audit"
        time.sleep(0.1)
    assert found["audit"]["findings"] == [] and found["audit"]["open_ports"] == 0, found["audit"]
    assert found["counters"]["audit_findings"] == 0
    command = portwarden(lab.target, daemon, "audit", "--json", "--no-state")
    assert command.returncode == 0, command.stdout + command.stderr
    assert json.loads(command.stdout)["findings"] == []

    for signum in (signal.SIGUSR1, signal.SIGUSR2):
        daemon.proc.send_signal(signum)
        daemon.wait_for(f"{signum.name} ignored")
    assert daemon.proc.poll() is None
    assert status_json(lab, daemon)["running"] is True
    assert daemon.stop()[0] == 0


def test_a_scan_that_blocks_counts_in_the_metrics(lab: Lab, start_daemon: StartDaemon) -> None:
    daemon = start_daemon(
        "-stcp", "-sudp", conf='BLOCK_TCP="1"\nMETRICS_LISTEN="127.0.0.1:9877"\nSYSLOG_SOCKET=""\n'
    )
    attacker = lab.attackers[0]
    nmap(attacker.run, "-sS", "-p", "1,11", lab.target.ipv4)
    daemon.wait_for(rf"block address={attacker.ipv4} actions=nft:done ")
    deadline = time.monotonic() + 5  # the page is rebuilt once a second
    while (metrics := scrape(lab))["portwarden_blocks_active"] != 1:
        assert time.monotonic() < deadline, metrics
        time.sleep(0.2)
    assert metrics["portwarden_blocks_total"] == 1
    assert status_json(lab, daemon)["counters"]["blocks"] == 1


def test_a_default_drop_input_chain_is_said_at_start_and_its_ports_go_unseen(
    lab: Lab, start_daemon: StartDaemon
) -> None:
    """A raw socket gets a packet only after the input hook accepted it: behind a default-drop
    firewall the sensors see only the ports it opens, and the administrator is told why."""
    ruleset = (
        "table inet pwtest_fw { chain input { type filter hook input priority 0; "
        "policy drop; tcp dport 15 accept; }; }\n"
        # firewalld's way: policy accept, and a last rule that rejects the rest
        "table inet pwtest_fwd { chain filter_INPUT { type filter hook input priority 10; "
        "tcp dport 15 accept; reject with icmpx admin-prohibited; }; }"
    )
    lab.target.run(["nft", "-f", "-"], input=ruleset)
    try:
        daemon = start_daemon("-stcp")
        assert (
            "nftables: table inet pwtest_fw chain input (hook input, policy drop) drops what "
            "it does not accept before the sensors see it"
        ) in daemon.log()
        assert (
            "nftables: table inet pwtest_fwd chain filter_INPUT (hook input, policy accept, "
            "ends in reject) drops what it does not accept"
        ) in daemon.log()
        attacker = lab.attackers[1]
        nmap(attacker.run, "-sS", "-p", "11,15", lab.target.ipv4)
        daemon.wait_for_attack(kind="scan", src=attacker.ipv4)
        daemon.stop()
        assert {found["port"] for found in daemon.attacks(src=attacker.ipv4)} == {"15"}
    finally:
        for table in ("pwtest_fw", "pwtest_fwd"):
            lab.target.run(["nft", "delete", "table", "inet", table])
