"""Blocks whose actions the worker carries out late (behind a slow KILL_RUN_CMD), and our
nftables table changing under the daemon: nothing is left that the store does not know, and no
block is lost (issue 4, review 3)."""

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from portwarden import limits
from portwarden.lab.network import Host, Lab
from tests.e2e.conftest import SERVICE, StartDaemon, nmap
from tests.e2e.test_blocking import (
    gated_command,
    nft_elements,
    slow_command,
    spoofed_syns,
    store_sql,
    wait_for_file,
)
from tests.lab.daemon import RunningDaemon
from tests.lab.services import can_connect

pytestmark = pytest.mark.usefixtures("echo_service")


def wait_until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


class HeldBlock(NamedTuple):
    daemon: RunningDaemon
    deny: Path  # its HOSTS_DENY_FILE, empty at start
    gate: Path  # the blocks' command waits until the test creates it


def first_block_held(
    lab: Lab, start_daemon: StartDaemon, tmp_path: Path, conf: str = ""
) -> HeldBlock:
    """A daemon (with `conf` too) whose TCP blocks add a hosts.deny line and run a command held
    at its gate (gated_command); the first attacker's scan has been blocked and its command
    runs, so the worker is busy until the test opens the gate."""
    deny, gate = tmp_path / "hosts.deny", tmp_path / "gate"
    deny.write_text("")
    conf = (
        f'BLOCK_TCP="1"\nKILL_HOSTS_DENY="ALL: $TARGET$"\nHOSTS_DENY_FILE="{deny}"\n'
        f'KILL_CMD_TIMEOUT="120"\n'
        f'KILL_RUN_CMD="{gated_command(tmp_path / "pid.$TARGET$", gate)}"\n{conf}'
    )
    daemon = start_daemon("-stcp", conf=conf)
    nmap(lab.attackers[0].run, "-sS", "-p", "11", lab.target.ipv4)
    wait_for_file(tmp_path / f"pid.{lab.attackers[0].ipv4}")
    return HeldBlock(daemon, deny, gate)


def test_a_block_that_expires_before_its_turn_is_not_carried_out(
    lab: Lab, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """The second scanner's block waits behind the first one's command (held until the test
    opens its gate) and expires meanwhile: it ends (its element goes) and none of its actions
    is done after."""
    daemon, deny, gate = first_block_held(lab, start_daemon, tmp_path, 'BLOCK_DURATION="1"\n')
    first, second = lab.attackers[0].ipv4, lab.attackers[1].ipv4
    nmap(lab.attackers[1].run, "-sS", "-p", "11", lab.target.ipv4)
    recorded = f"select count(*) from blocks where address = '{second}'"
    wait_until(lambda: store_sql(lab.target, daemon, recorded) == ["1"], "second not recorded")
    # Both blocks' time is up, and the loop (every second) has queued their expiry, which the
    # worker takes before the second block's job once the first command ends.
    (until,) = store_sql(lab.target, daemon, "select max(until) from blocks")
    while time.time() < float(until) + 2.0:
        time.sleep(0.1)
    gate.touch()
    daemon.wait_for(rf"unblock address={second} by=expired")
    daemon.wait_for(rf"block address={second} not carried out: it ended \(by=expired\)")
    daemon.wait_for(rf"unblock address={first} by=expired")
    assert f"block address={second} actions=" not in daemon.log()
    assert not (tmp_path / f"pid.{second}").exists()  # its command never ran
    assert deny.read_text() == ""
    assert nft_elements(lab.target) == set()
    assert can_connect(lab.attackers[1], lab.target.ipv4, SERVICE)
    daemon.stop()


def test_unblock_all_while_a_slow_command_runs_ends_the_queued_blocks_silently(
    lab: Lab, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """`unblock --all` is queued behind the first block's command (held until the test opens
    its gate), the second block behind it: the second one ends unblocked, nothing of it is
    done, and the table that `unblock --all` removed is not taken for a lost one."""
    daemon, deny, gate = first_block_held(lab, start_daemon, tmp_path)
    second = lab.attackers[1].ipv4
    conf_path = str(daemon.log_path.with_suffix(".conf"))
    unblock = lab.target.popen(
        [sys.executable, "-m", "portwarden", "unblock", "--all", "-c", conf_path],
        stdout=subprocess.PIPE,
        text=True,
    )
    # The daemon has the request once the loop has begun it: the first element is gone.
    wait_until(lambda: nft_elements(lab.target) == set(), "the unblock never reached the loop")
    nmap(lab.attackers[1].run, "-sS", "-p", "11", lab.target.ipv4)
    wait_until(lambda: second in nft_elements(lab.target), "second block not made")
    gate.touch()
    out, _ = unblock.communicate(timeout=30)
    assert unblock.returncode == 0 and f"unblocked {second}" in out, out
    daemon.wait_for(rf"block address={second} not carried out: it ended \(by=command\)")
    time.sleep(2 * 2.0 + 0.5)  # two REFRESH_S
    log = daemon.log()
    assert "missing: table" not in log and "made again" not in log, log
    assert f"block address={second} actions=" not in log
    assert not (tmp_path / f"pid.{second}").exists()
    assert deny.read_text() == ""
    assert lab.target.run(["nft", "list", "table", "inet", "portwarden"], check=False).returncode
    daemon.stop()


@pytest.mark.parametrize(
    "conf",
    [
        'BLOCK_TCP="1"\n',
        # The command first: the worker adds the element, and finds the table gone.
        'BLOCK_TCP="1"\nKILL_RUN_CMD="/bin/true $TARGET$"\nKILL_RUN_CMD_FIRST="1"\n',
    ],
    ids=["nft-first", "command-first"],
)
def test_a_block_right_after_a_ruleset_flush_brings_the_other_blocks_back(
    lab: Lab, start_daemon: StartDaemon, conf: str
) -> None:
    """The block finds our table gone and makes it again: the other blocks come back with it.
    The flush and the probe are made while the daemon is stopped: once it goes on, it reads the
    probe before its own check of the table (every REFRESH_S) can run in that turn. (A block
    whose element the worker adds may still come after a put-back that check queued in the
    same turn, and then it did not find the table gone: the next attacker tries again.)"""
    daemon = start_daemon("-stcp", conf=conf)
    first = lab.attackers[0]
    nmap(first.run, "-sS", "-p", "11", lab.target.ipv4)
    daemon.wait_for(rf"block address={first.ipv4} actions=\S*nft:done")
    blocked = {first.ipv4}
    for attacker in lab.attackers[1:]:
        with daemon.paused():  # short: one SYN from one process, not an nmap run
            lab.target.run(["nft", "flush", "ruleset"])
            spoofed_syns(attacker, attacker.ipv4, 1, lab.target.ipv4, "11")
        daemon.wait_for(rf"block address={attacker.ipv4} actions=\S*nft:done")
        blocked.add(attacker.ipv4)
        wait_until(
            lambda: nft_elements(lab.target) == blocked,
            f"not all blocked: {nft_elements(lab.target)}",
        )
        if f"was gone; made again for {attacker.ipv4}" in daemon.log():
            break
    else:
        pytest.fail("the table's own check saw every flush first")
    assert not can_connect(first, lab.target.ipv4, SERVICE)
    daemon.stop()


def test_a_flush_of_our_chain_after_a_reload_that_changes_block_forward_is_repaired(
    lab: Lab, start_daemon: StartDaemon
) -> None:
    daemon = start_daemon("-stcp", conf='BLOCK_TCP="1"\n')
    attacker = lab.attackers[2]
    nmap(attacker.run, "-sS", "-p", "11", lab.target.ipv4)
    daemon.wait_for(rf"block address={attacker.ipv4} actions=nft:done ")
    conf = daemon.log_path.with_suffix(".conf")
    conf.write_text(conf.read_text() + 'BLOCK_FORWARD="1"\n')
    mark = daemon.mark()
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_for("configuration reloaded", since=mark)
    wait_until(
        lambda: (
            lab.target.run(
                ["nft", "list", "chain", "inet", "portwarden", "forward"], check=False
            ).returncode
            == 0
        ),
        "no forward chain",
    )
    lab.target.run(["nft", "flush", "chain", "inet", "portwarden", "forward"])
    daemon.wait_for("missing: the rules of chain forward of table inet portwarden", since=mark)
    daemon.wait_for("nftables: 1 block re-applied", since=mark)
    rules = lab.target.run(["nft", "list", "chain", "inet", "portwarden", "forward"]).stdout
    assert rules.count(" drop") == 2
    daemon.stop()


def test_a_reload_that_adds_the_forward_chain_while_the_worker_is_busy_is_no_flush(
    lab: Lab, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """BLOCK_FORWARD turned on while the worker runs a slow KILL_RUN_CMD: until it has made the
    forward chain, the table has the old shape, which is no damage (it said the rules were
    missing, alerted and put every block back)."""
    daemon = start_daemon(
        "-stcp", conf=f'BLOCK_TCP="1"\nKILL_RUN_CMD="{slow_command(tmp_path / "pid", 5)}"\n'
    )
    first, second = lab.attackers[0], lab.attackers[1]
    nmap(first.run, "-sS", "-p", "11", lab.target.ipv4)
    daemon.wait_for(rf"block address={first.ipv4} actions=nft:done,command:done", timeout=20)
    nmap(second.run, "-sS", "-p", "11", lab.target.ipv4)  # its command keeps the worker busy
    conf = daemon.log_path.with_suffix(".conf")
    conf.write_text(conf.read_text() + 'BLOCK_FORWARD="1"\n')
    mark = daemon.mark()
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_for(
        rf"block address={second.ipv4} actions=nft:done,command:done", since=mark, timeout=20
    )
    time.sleep(2 * limits.REFRESH_S)  # the checks after the worker made the chain
    assert "missing:" not in daemon.log()[mark:]
    assert (
        lab.target.run(
            ["nft", "list", "chain", "inet", "portwarden", "forward"], check=False
        ).returncode
        == 0
    )
    daemon.stop()


@contextlib.contextmanager
def restarted(host: Host, daemon: RunningDaemon) -> Iterator[RunningDaemon]:
    """`daemon` (stopped) started again: the same configuration and store."""
    again = RunningDaemon(host, daemon.log_path.with_suffix(".conf"))
    try:
        yield again
    finally:
        if again.proc.poll() is None:
            again.stop()


def test_a_block_longer_than_the_kernel_allows_does_not_stop_the_restore(
    lab: Lab, start_daemon: StartDaemon
) -> None:
    """A block at the ten-year cap, and the clock set back: its remaining time is past the
    kernel's range. The restore clamps it; every block is in force again."""
    daemon = start_daemon("-stcp", conf='BLOCK_TCP="1"\nBLOCK_DURATION="0"\n')
    for attacker in lab.attackers[:2]:
        nmap(attacker.run, "-sS", "-p", "11", lab.target.ipv4)
        daemon.wait_for(rf"block address={attacker.ipv4} actions=nft:done ")
    daemon.stop()
    far = time.time() + limits.BLOCK_SECONDS_MAX + 86_400
    store_sql(
        lab.target,
        daemon,
        f"UPDATE blocks SET until = {far} WHERE address = '{lab.attackers[0].ipv4}'",
    )
    lab.target.run(["nft", "delete", "table", "inet", "portwarden"])  # a reboot, say
    with restarted(lab.target, daemon) as again:
        again.wait_for("restored 2 active blocks")
        assert "could not be put" not in again.log()
        assert nft_elements(lab.target) == {a.ipv4 for a in lab.attackers[:2]}
        assert "Traceback" not in again.log()


def test_sets_that_cannot_be_filled_at_start_are_one_error_line_and_the_daemon_runs(
    lab: Lab, start_daemon: StartDaemon
) -> None:
    """Our table taken over by a set of the wrong type: the restore cannot use it. The daemon
    says so in one line, then what it restored and what not, and runs (detection, alerts, the
    other actions)."""
    daemon = start_daemon("-stcp", conf='BLOCK_TCP="1"\n')
    nmap(lab.attackers[0].run, "-sS", "-p", "11", lab.target.ipv4)
    daemon.wait_for(rf"block address={lab.attackers[0].ipv4} actions=nft:done ")
    daemon.stop()
    lab.target.run(["nft", "delete", "table", "inet", "portwarden"])
    lab.target.run(
        ["nft", "add table inet portwarden; add set inet portwarden blocked4 { type ipv6_addr; }"]
    )
    with restarted(lab.target, daemon) as again:
        again.wait_for("ready:")
        log = again.log()
        (line,) = [x for x in log.splitlines() if "could not be put in table" in x]
        assert "trying again every 30 s" in line
        (restored,) = [x for x in log.splitlines() if "restored 1 active block from" in x]
        assert restored.endswith(
            "from the store, but not the nftables elements of 1 of them; 1 "
            "of those have nothing else in force (no route, no hosts.deny "
            "line): not blocked until the sets are filled"
        )
        assert "Traceback" not in log and again.proc.poll() is None
        events = Path(daemon.log_path.parent, "state", "events.jsonl").read_text()
        assert '"event":"nft-failed"' in events


def test_a_stop_waits_for_the_running_command_only_not_for_the_queued_ones(
    lab: Lab, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """A KILL_RUN_CMD that hangs, and 3 more blocks queued behind it: SIGTERM waits for the
    running one (KILL_CMD_TIMEOUT), not for each of them (it took 4 x the timeout; with the
    defaults past systemd's TimeoutStopSec). Theirs are recorded not run, and a start does not
    count them again. The daemon's exit is timed from the running command's start (its pid
    file): at most KILL_CMD_TIMEOUT and a few seconds, where the defect takes 4 x 6 s."""
    pid, timeout = tmp_path / "command.pid", 6
    conf = f'BLOCK_TCP="1"\nKILL_CMD_TIMEOUT="{timeout}"\nKILL_RUN_CMD="{slow_command(pid, 60)}"\n'
    daemon = start_daemon("-stcp", conf=conf)
    scanners = {a.ipv4 for a in lab.attackers} | {lab.attackers[0].ipv6}
    for attacker in lab.attackers:
        nmap(attacker.run, "-sS", "-p", "11", lab.target.ipv4)
    nmap(lab.attackers[0].run, "-6", "-sS", "-p", "11", lab.target.ipv6)
    wait_for_file(pid)
    wait_until(lambda: nft_elements(lab.target) == scanners, "not every scanner blocked")
    status, _ = daemon.stop(timeout=60)
    took = time.time() - pid.stat().st_mtime
    assert status == 0 and took < timeout + 4, (took, daemon.log())
    assert "stopping: KILL_RUN_CMD not run for 3 blocks that waited their turn" in daemon.log()
    not_run = "select count(*) from blocks where actions like '%not run (the daemon stopped%'"
    assert store_sql(lab.target, daemon, not_run) == ["3"]
    with restarted(lab.target, daemon) as again:
        again.wait_for("restored 4 active blocks")
        assert "KILL_RUN_CMD not run again at start" not in again.log()
        assert nft_elements(lab.target) == scanners
