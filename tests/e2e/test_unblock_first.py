"""Unblocks and expiry go ahead of a backlog of blocks whose KILL_RUN_CMD hangs (issue 4, review:
an `unblock` waited behind every queued block, ran their commands, and gave up after 120 s)."""

import subprocess
import sys
import time
from pathlib import Path

from portwarden.lab.network import Lab
from tests.e2e.conftest import StartDaemon
from tests.e2e.test_block_races import wait_until
from tests.e2e.test_blocking import nft_elements, spoofed_syns, store_sql, wait_for_file

FIRST = "198.18.0.110"  # its command runs (and hangs) while the others wait their turn
QUEUED = [f"198.18.0.{n}" for n in range(111, 115)]


def hanging_command(folder: Path) -> Path:
    """A KILL_RUN_CMD script that says which address it ran for, ignores SIGTERM and sleeps:
    only KILL_CMD_TIMEOUT's kill ends it."""
    script = folder / "cmd.sh"
    script.write_text(f'#!/bin/sh\ntrap \'\' TERM\necho "$1" > {folder}/ran."$1"\nexec sleep 60\n')
    script.chmod(0o755)
    return script


def conf(folder: Path, timeout: int, extra: str = "") -> str:
    return (
        f'BLOCK_TCP="1"\nKILL_CMD_TIMEOUT="{timeout}"\nKILL_HOSTS_DENY="ALL: $TARGET$"\n'
        f'HOSTS_DENY_FILE="{folder}/hosts.deny"\n'
        f'KILL_RUN_CMD="{hanging_command(folder)} $TARGET$"\n{extra}'
    )


def queue_blocks(lab: Lab, folder: Path) -> None:
    """One SYN to a tripwire from FIRST; once its command runs, one from each of QUEUED at once,
    from one process (sources forged from an attacker): their blocks are recorded, their
    elements added, and the rest waits behind FIRST's command."""

    spoofed_syns(lab.attackers[0], FIRST, 1, lab.target.ipv4, "11")
    wait_for_file(folder / f"ran.{FIRST}")
    spoofed_syns(lab.attackers[0], QUEUED[0], len(QUEUED), lab.target.ipv4, "11")
    wait_until(
        lambda: nft_elements(lab.target) == {FIRST, *QUEUED},
        f"not every source blocked: {nft_elements(lab.target)}",
    )


def test_an_unblock_behind_hanging_commands_is_done_at_once_and_its_block_never_carried_out(
    lab: Lab, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """Five blocks, the first one's command hanging (KILL_CMD_TIMEOUT=8), four queued: an
    unblock of the last one lets it through at once (its element goes while the command still
    waits for the worker), returns once the running command is killed, not after the four
    queued ones (32 s more), and nothing of that block is carried out: no command, no
    hosts.deny line."""
    timeout = 8  # room for the command's start on a loaded machine, far below the defect
    daemon = start_daemon("-stcp", conf=conf(tmp_path, timeout))
    queue_blocks(lab, tmp_path)
    last = QUEUED[-1]
    started = time.monotonic()
    unblock = lab.target.popen(
        [
            sys.executable,
            "-m",
            "portwarden",
            "unblock",
            last,
            "-c",
            str(daemon.log_path.with_suffix(".conf")),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_until(lambda: last not in nft_elements(lab.target), "element still there", timeout)
    assert unblock.poll() is None  # at once: the worker is still in the first block's command
    out, err = unblock.communicate(timeout=120)
    took = time.monotonic() - started
    assert unblock.returncode == 0 and out == f"unblocked {last}\n", (out, err)
    assert took < timeout + 5, took
    assert nft_elements(lab.target) == {FIRST, *QUEUED[:-1]}
    status, _ = daemon.stop()  # the queued blocks' commands are not run (see the stop's test)
    assert status == 0
    log = daemon.log()
    assert f"block address={last} not carried out: it ended (by=command) before its turn" in log
    assert f"block address={last} actions=" not in log
    assert not (tmp_path / f"ran.{last}").exists()
    assert f"ALL: {last}\n" not in (tmp_path / "hosts.deny").read_text()
    assert last not in nft_elements(lab.target)
    ended = f"select ended_by from blocks where address = '{last}'"
    assert store_sql(lab.target, daemon, ended) == ["command"]


def test_blocks_expire_on_time_behind_hanging_commands_and_the_queued_ones_are_not_run(
    lab: Lab, start_daemon: StartDaemon, tmp_path: Path
) -> None:
    """BLOCK_DURATION=3, KILL_CMD_TIMEOUT=2, five blocks at once: each ends when its time is
    up, after the command that runs then (in a first-in-first-out queue, after the whole
    backlog: 10 s), and the blocks still waiting then are not carried out."""
    daemon = start_daemon("-stcp", conf=conf(tmp_path, 2, 'BLOCK_DURATION="3"\n'))
    queue_blocks(lab, tmp_path)
    active = "select count(*) from blocks where ended is null"
    wait_until(lambda: store_sql(lab.target, daemon, active) == ["0"], "blocks not ended", 15.0)
    late = store_sql(lab.target, daemon, "select ended - until from blocks")
    # At most the command running when a block's time is up (2 s) and a turn of the loop
    # (0.5 s) late, with room for a loaded machine; first-in-first-out, 7 s.
    assert len(late) == 5 and max(map(float, late)) < 4.0, late
    assert set(store_sql(lab.target, daemon, "select ended_by from blocks")) == {"expired"}
    ran = {s for s in QUEUED if (tmp_path / f"ran.{s}").exists()}
    assert len(ran) <= 2, ran  # the one running at expiry (and one more on a slow machine)
    for source in set(QUEUED) - ran:
        daemon.wait_for(rf"block address={source} not carried out: it ended \(by=expired\)")
    assert nft_elements(lab.target) == set()
    assert (tmp_path / "hosts.deny").read_text() == ""
    daemon.stop()
