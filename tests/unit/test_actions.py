"""Doing and undoing blocks with real commands and files (no nftables: no privileges needed).

The store is the one source of truth: every action is in it before it is done, so an unblock
or a restart after a kill at any moment undoes or finishes exactly what was (or may have been)
done."""

import dataclasses
import ipaddress
import json
import logging
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from portwarden import admin_output, fileedit, limits
from portwarden.config import BlockMode
from portwarden.config.values import NftUse
from portwarden.net import local
from portwarden.respond import actions as actions_module
from portwarden.respond import admin, portsentry_files
from portwarden.respond.actions import Actions
from portwarden.respond.block import BlockRequest, run_action
from portwarden.respond.nft_table import NftTable
from portwarden.respond.portsentry_writer import PortSentryWriter
from portwarden.respond.recorded import enforced, via
from portwarden.respond.restore import NOT_CONFIGURED
from portwarden.respond.unblock import Unblocker
from portwarden.store.db import DONE, ROUTE, UNBLOCK_COMMAND, Action, BlockRecord, Store, boot_id
from tests.unit.blocking import block, blocking_settings
from tests.unit.rewrites import record_rewrites

RECORD = Path(__file__).parent.parent / "lab" / "record.py"
SOURCE = ipaddress.ip_address("198.18.0.11")


def request(address: str = "198.18.0.11", mode: BlockMode = BlockMode.BLOCK) -> BlockRequest:
    return BlockRequest(
        ipaddress.ip_address(address), "tcp", 11, "stcp", "TCP SYN/Normal scan", mode
    )


def record_cmd(calls: Path, *words: str) -> str:
    """A KILL_ROUTE / KILL_RUN_CMD that appends its arguments to `calls`."""
    return " ".join([sys.executable, str(RECORD), str(calls), *words])


def calls_of(calls: Path) -> list[list[str]]:
    if not calls.exists():
        return []
    return [[w.strip("'") for w in line.split()[1:]] for line in calls.read_text().splitlines()]


@pytest.fixture
def make(tmp_path: Path) -> Callable[[str], Actions]:
    def build(extra: str) -> Actions:
        settings = blocking_settings(tmp_path, extra)
        return Actions(settings, Store(settings.state_dir / "portwarden.db"))

    return build


def test_every_action_is_in_the_store_before_it_is_done(
    tmp_path: Path, make: Callable[[str], Actions]
) -> None:
    """While KILL_RUN_CMD runs, the store already holds the route and hosts.deny line as done
    and the command as running: a kill -9 now leaves nothing unknown behind."""
    seen = tmp_path / "seen"
    spy = tmp_path / "spy.py"
    spy.write_text(
        "import sqlite3, sys\n"
        "db = sqlite3.connect(sys.argv[1])\n"
        "row = db.execute('select actions from blocks where ended is null').fetchone()\n"
        "open(sys.argv[2], 'w').write(row[0])\n"
    )
    store = tmp_path / "state" / "portwarden.db"
    actions = make(
        f'KILL_ROUTE="{record_cmd(tmp_path / "calls", "route", "add", "$TARGET$")}"\n'
        'KILL_HOSTS_DENY="ALL: $TARGET$"\n'
        f'KILL_RUN_CMD="{sys.executable} {spy} {store} {seen}"\n'
    )
    record = block(actions, request())
    assert record is not None
    during = [(a["kind"], a["status"]) for a in json.loads(seen.read_text())]
    assert during == [("hosts.deny", "done"), ("route", "done"), ("command", "running")]
    assert [(a.kind, a.status) for a in record.actions] == [
        ("hosts.deny", "done"),
        ("route", "done"),
        ("command", "done"),
    ]


def test_unblock_undoes_what_an_interrupted_block_planned(
    tmp_path: Path, make: Callable[[str], Actions]
) -> None:
    """The daemon was killed while the route command ran: unblock undoes the route (it may have
    been added), the hosts.deny line, and leaves the admin's lines alone."""
    calls = tmp_path / "calls"
    actions = make(
        f'KILL_ROUTE="{record_cmd(calls, "route", "add", "$TARGET$")}"\n'
        'KILL_HOSTS_DENY="ALL: $TARGET$"\n'
    )
    deny = actions.settings.hosts_deny_file
    deny.write_text("sshd: 198.18.0.99\nALL: 198.18.0.11\n")
    plan = (
        Action("hosts.deny", (str(deny), "ALL: 198.18.0.11"), "done"),
        Action(
            "route",
            (sys.executable, str(RECORD), str(calls), "route", "del", "198.18.0.11"),
            "running",
        ),
        Action("command", (), "planned"),
    )
    record = actions.store.add_block(
        "198.18.0.11", "tcp", 11, "stcp", "x", "198.18.0.11", time.time(), None, plan, "boot"
    )
    assert record is not None
    assert actions.unblocks.unblock_matching(None, "command") == [record]
    assert calls_of(calls) == [["route", "del", "198.18.0.11"]]
    assert deny.read_text() == "sshd: 198.18.0.99\n"
    assert actions.store.active() == []


def blocked_by_hosts_deny(
    make: Callable[[str], Actions], before: str
) -> tuple[Actions, Path, BlockRecord | None]:
    """Blocks with KILL_HOSTS_DENY="ALL: $TARGET$", hosts.deny holding `before` until then."""
    actions = make('KILL_HOSTS_DENY="ALL: $TARGET$"\n')
    deny = actions.settings.hosts_deny_file
    deny.write_text(before)
    return actions, deny, block(actions, request())


def test_a_hosts_deny_line_that_was_there_is_not_ours_to_remove(
    make: Callable[[str], Actions],
) -> None:
    actions, deny, record = blocked_by_hosts_deny(make, "ALL: 198.18.0.11\n")
    assert record is not None and [(a.kind, a.undo, a.status) for a in record.actions] == [
        ("hosts.deny", (), "present")
    ]
    assert enforced(record.actions)  # the host is denied, if not by us
    assert via(record.actions) == ["hosts.deny (not ours)"]
    assert deny.read_text() == "ALL: 198.18.0.11\n"  # no duplicate
    undone, answer = admin.unblock_here(actions, ipaddress.ip_network("198.18.0.11"))
    assert [r.address for r in undone] == answer["unblocked"] == ["198.18.0.11"]
    assert answer["kept"] == [f'198.18.0.11: hosts.deny line "ALL: 198.18.0.11" in {deny}']
    assert deny.read_text() == "ALL: 198.18.0.11\n"  # the administrator's line stays


def test_unblock_removes_our_line_once_even_if_it_was_copied(
    make: Callable[[str], Actions],
) -> None:
    actions, deny, record = blocked_by_hosts_deny(make, "# top\n")
    assert record is not None and deny.read_text() == "# top\nALL: 198.18.0.11\n"
    deny.write_text(deny.read_text() + "ALL: 198.18.0.11\n")  # the administrator's copy
    actions.unblocks.unblock(record, "command")
    assert deny.read_text() == "# top\nALL: 198.18.0.11\n"


def test_hosts_deny_refuses_a_symbolic_link(tmp_path: Path, make: Callable[[str], Actions]) -> None:
    actions = make('KILL_HOSTS_DENY="ALL: $TARGET$"\nKILL_RUN_CMD="true"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("keep\n")
    actions.settings.hosts_deny_file.symlink_to(elsewhere)
    record = block(actions, request())
    assert elsewhere.read_text() == "keep\n"
    assert record is not None and record.actions[0].kind == "hosts.deny"
    assert record.actions[0].status.startswith("failed: ")
    assert "symbolic link" in record.actions[0].status


def test_hosts_deny_refuses_a_fifo_instead_of_waiting_for_a_writer(
    make: Callable[[str], Actions],
) -> None:
    actions = make('KILL_HOSTS_DENY="ALL: $TARGET$"\nKILL_RUN_CMD="true"\n')
    os.mkfifo(actions.settings.hosts_deny_file)
    record = block(actions, request())
    assert record is not None and record.actions[0].kind == "hosts.deny"
    assert "not a regular file" in record.actions[0].status


@pytest.mark.parametrize(
    ("address", "expected"),
    [("198.18.0.11", "ALL: 198.18.0.11"), ("2001:db8::11", "ALL: [2001:db8::11]")],
)
def test_hosts_deny_names_ipv6_sources_as_tcpd_matches_them(
    tmp_path: Path, make: Callable[[str], Actions], address: str, expected: str
) -> None:
    actions = make('KILL_HOSTS_DENY="ALL: $TARGET$"\n')
    block(actions, request(address))
    deny = actions.settings.hosts_deny_file
    assert deny.read_text() == expected + "\n"
    if shutil.which("tcpdmatch") is None:
        return
    (tmp_path / "hosts.allow").write_text("")
    verdict = subprocess.run(
        ["tcpdmatch", "-d", "sshd", address],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "access:   denied" in verdict


@pytest.mark.parametrize("first", [0, 1])
def test_portsentry_order_hosts_deny_route_command(
    tmp_path: Path, make: Callable[[str], Actions], first: int
) -> None:
    """PortSentry 1.2's DisposeTCP: hosts.deny, then the route, then the command; with
    KILL_RUN_CMD_FIRST=1 the command, then hosts.deny, then the route. The route command here
    succeeds only if the hosts.deny line is already there."""
    calls = tmp_path / "calls"
    actions = make(
        f'KILL_ROUTE="grep -q $TARGET$ {tmp_path}/hosts.deny"\n'
        'KILL_HOSTS_DENY="ALL: $TARGET$"\n'
        f'KILL_RUN_CMD="{record_cmd(calls, "cmd", "$TARGET$")}"\n'
        f'KILL_RUN_CMD_FIRST="{first}"\n'
    )
    record = block(actions, request())
    assert record is not None
    kinds = [(a.kind, a.status) for a in record.actions]
    expected = [("hosts.deny", "done"), ("route", "done")]
    assert kinds == (
        [("command", "done"), *expected] if first else [*expected, ("command", "done")]
    )


def test_a_block_that_nothing_enforced_is_not_kept_and_is_tried_again(
    tmp_path: Path, make: Callable[[str], Actions]
) -> None:
    """KILL_ROUTE=false: PortSentry 1.2 wrote no blocked entry when the kill failed, so the
    next scan tried again. No history line either, and it is no offence."""
    actions = make('KILL_ROUTE="false $TARGET$"\n')
    record = block(actions, request())
    assert record is not None and not enforced(record.actions)
    assert actions.store.active() == []
    assert not actions.settings.history_file.exists()
    assert actions.store.offences("198.18.0.11") == 0
    again = block(actions, request())
    assert again is not None and again.offence == 1


def test_a_command_only_block_is_kept_while_running_even_if_the_command_failed(
    make: Callable[[str], Actions],
) -> None:
    actions = make('KILL_RUN_CMD="false"\n')
    record = block(actions, request(mode=BlockMode.RUN_CMD_ONLY))
    assert record is not None and [(a.kind, a.status) for a in record.actions] == [
        ("command", "failed: exit status 1")
    ]
    assert not enforced(record.actions)
    assert actions.store.active() == []


def test_reverse_dns_has_a_deadline_and_does_not_delay_the_actions(
    tmp_path: Path, make: Callable[[str], Actions], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deadline of 3 s (not the 1 s default) leaves room for the route command's Python to
    start on a loaded machine, well before the deadline it must not wait for."""

    def dead_name_server(address: str) -> tuple[str, list[str], list[str]]:
        time.sleep(60)
        return "late.example", [], [address]

    monkeypatch.setattr(limits, "RESOLVE_HOST_TIMEOUT_S", 3.0)
    monkeypatch.setattr(socket, "gethostbyaddr", dead_name_server)
    calls = tmp_path / "calls"
    actions = make(f'RESOLVE_HOST="1"\nKILL_ROUTE="{record_cmd(calls, "route", "$TARGET$")}"\n')
    started = time.monotonic()
    record = block(actions, request())
    took = time.monotonic() - started
    assert record is not None and record.hostname == "198.18.0.11"
    assert limits.RESOLVE_HOST_TIMEOUT_S <= took < limits.RESOLVE_HOST_TIMEOUT_S + 2
    route_at = float(calls.read_text().split()[0])
    assert route_at - started < limits.RESOLVE_HOST_TIMEOUT_S / 2  # not after the lookup


def test_reverse_dns_name_is_used_when_it_answers(
    make: Callable[[str], Actions], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(socket, "gethostbyaddr", lambda a: ("scanner.example", [], [a]))
    actions = make('RESOLVE_HOST="1"\nKILL_HOSTS_DENY="ALL: $TARGET$"\n')
    record = block(actions, request())
    assert record is not None and record.hostname == "scanner.example"
    assert "Host: scanner.example/198.18.0.11 Port: 11 TCP Blocked" in (
        actions.settings.history_file.read_text()
    )


def restore_in(actions: Actions, boot: str, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(actions_module, "boot_id", lambda: boot)
    return Actions(actions.settings, actions.store).restorer.restore()


def test_restart_runs_kill_route_again_only_after_a_reboot(
    tmp_path: Path, make: Callable[[str], Actions], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = tmp_path / "calls"
    monkeypatch.setattr(actions_module, "boot_id", lambda: "boot-1")
    actions = make(
        f'KILL_ROUTE="{record_cmd(calls, "iptables", "-I", "INPUT", "-s", "$TARGET$")}"\n'
    )
    assert block(actions, request()) is not None
    assert restore_in(actions, "boot-1", monkeypatch) == 1
    assert restore_in(actions, "boot-1", monkeypatch) == 1
    assert len(calls_of(calls)) == 1  # restarts: the rule is still in force
    assert restore_in(actions, "boot-2", monkeypatch) == 1
    assert restore_in(actions, "boot-2", monkeypatch) == 1
    assert calls_of(calls) == [["iptables", "-I", "INPUT", "-s", "198.18.0.11"]] * 2


def test_restart_finishes_an_interrupted_block_exactly_once(
    tmp_path: Path, make: Callable[[str], Actions], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed while the route command ran, before the hosts.deny line and the command: at the
    next start the route is undone (it may have been added) and done again, the line added, and
    the command is not run: it may have run, and it cannot be undone."""
    calls = tmp_path / "calls"
    actions = make('KILL_HOSTS_DENY="ALL: $TARGET$"\nKILL_RUN_CMD="true"\n')
    deny = actions.settings.hosts_deny_file
    route = [sys.executable, str(RECORD), str(calls), "route"]
    plan = (
        Action("route", (*route, "del", "198.18.0.11"), "running", (*route, "add", "198.18.0.11")),
        Action(
            "hosts.deny",
            (str(deny), "ALL: 198.18.0.11"),
            "planned",
            (str(deny), "ALL: 198.18.0.11"),
        ),
        Action("command", (), "planned", ("true",)),
    )
    actions.store.add_block(
        "198.18.0.11", "tcp", 11, "stcp", "x", "198.18.0.11", time.time(), None, plan, "boot-1"
    )
    assert restore_in(actions, "boot-1", monkeypatch) == 1
    assert calls_of(calls) == [["route", "del", "198.18.0.11"], ["route", "add", "198.18.0.11"]]
    assert deny.read_text() == "ALL: 198.18.0.11\n"
    (record,) = actions.store.active()
    assert [(a.kind, a.status) for a in record.actions] == [
        ("route", "done"),
        ("hosts.deny", "done"),
        ("command", "failed: not run (the daemon stopped before its turn)"),
    ]
    # the worker writes the history line last: the interrupted block gets it now, once
    history = actions.settings.history_file
    assert len(history.read_text().splitlines()) == 1
    assert restore_in(actions, "boot-1", monkeypatch) == 1
    assert len(history.read_text().splitlines()) == 1


def test_a_block_whose_turn_never_came_is_enforced_and_written_down_at_restart(
    tmp_path: Path,
    make: Callable[[str], Actions],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """kill -9 with blocks recorded by the loop and queued for the worker: at the next start
    their hosts.deny line is added and HISTORY_FILE gets their line; their command is not run
    (a start must not wait for a queue of commands), said in one line for all."""
    actions = make('KILL_HOSTS_DENY="ALL: $TARGET$"\nKILL_RUN_CMD="true"\n')
    deny = actions.settings.hosts_deny_file
    for address in ("198.18.0.11", "198.18.0.12"):
        plan = (
            Action(
                "hosts.deny",
                (str(deny), f"ALL: {address}"),
                "planned",
                (str(deny), f"ALL: {address}"),
            ),
            Action("command", (), "planned", ("true",)),
        )
        actions.store.add_block(
            address, "tcp", 11, "stcp", "x", address, time.time(), None, plan, "boot-1"
        )
    with caplog.at_level(logging.WARNING, logger="portwarden"):
        assert restore_in(actions, "boot-1", monkeypatch) == 2
    assert deny.read_text() == "ALL: 198.18.0.11\nALL: 198.18.0.12\n"
    history = actions.settings.history_file.read_text().splitlines()
    assert [line.split("Host: ")[1].split()[0] for line in history] == [
        "198.18.0.11/198.18.0.11",
        "198.18.0.12/198.18.0.12",
    ]
    said = [r.getMessage() for r in caplog.records if "KILL_RUN_CMD" in r.getMessage()]
    assert said == [
        "KILL_RUN_CMD not run again at start: 2 blocks were recorded but the daemon "
        "stopped before their turn (not run)"
    ]


def test_hosts_deny_lines_removed_by_hand_are_put_back_and_said(
    tmp_path: Path,
    make: Callable[[str], Actions],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The administrator removed two blocks' lines by hand while the blocks are active: a start
    puts them back (only `unblock` ends a block) and says so in one line, with the file. A
    line a kill left planned is added too, but was never there: not counted. Before, the lines
    came back without a word."""
    actions = make('KILL_HOSTS_DENY="ALL: $TARGET$"\n')
    deny = actions.settings.hosts_deny_file
    for address in ("198.18.0.11", "198.18.0.12", "198.18.0.13"):
        assert block(actions, request(address)) is not None
    deny.write_text("sshd: 198.18.0.99\nALL: 198.18.0.13\n")  # by hand
    planned = (
        Action(
            "hosts.deny",
            (str(deny), "ALL: 198.18.0.14"),
            "planned",
            (str(deny), "ALL: 198.18.0.14"),
        ),
    )
    actions.store.add_block(
        "198.18.0.14", "tcp", 11, "stcp", "x", "198.18.0.14", time.time(), None, planned, "boot-1"
    )
    with caplog.at_level(logging.INFO, logger="portwarden"):
        assert restore_in(actions, "boot-1", monkeypatch) == 4
    assert sorted(deny.read_text().splitlines()) == [
        f"ALL: 198.18.0.{n}" for n in (11, 12, 13, 14)
    ] + ["sshd: 198.18.0.99"]
    said = [r.getMessage() for r in caplog.records if "put back" in r.getMessage()]
    assert said == [
        f"hosts.deny: 2 lines of active blocks put back in {deny} (they were "
        "missing: removed by hand or by another program; `portwarden unblock ADDR` "
        "ends a block)"
    ]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="portwarden"):  # nothing missing: nothing said
        assert restore_in(actions, "boot-1", monkeypatch) == 4
    assert "put back" not in caplog.text


def test_command_only_blocks_are_forgotten_at_restart(
    make: Callable[[str], Actions], monkeypatch: pytest.MonkeyPatch
) -> None:
    """BLOCK_TCP=2: PortSentry emptied its blocked file at start, so the next scan of the same
    source ran the command again. Blocks with something to enforce stay."""
    actions = make('KILL_RUN_CMD="true"\nKILL_HOSTS_DENY="ALL: $TARGET$"\n')
    assert block(actions, request("198.18.0.11", BlockMode.RUN_CMD_ONLY)) is not None
    assert block(actions, request("198.18.0.12")) is not None
    assert restore_in(actions, "boot-1", monkeypatch) == 1
    assert [r.address for r in actions.store.active()] == ["198.18.0.12"]


def block_many(actions: Actions, count: int) -> None:
    """`count` blocks from 198.18.1.0 on."""
    for number in range(count):
        assert block(actions, request(str(ipaddress.ip_address("198.18.1.0") + number)))


def test_restore_writes_hosts_deny_once_for_many_blocks(
    make: Callable[[str], Actions], monkeypatch: pytest.MonkeyPatch
) -> None:
    actions = make('KILL_HOSTS_DENY="ALL: $TARGET$"\n')
    deny = actions.settings.hosts_deny_file
    block_many(actions, 100)
    deny.write_text("")  # e.g. the administrator replaced the file
    writes: list[int] = []
    append = fileedit._append

    def counted(fd: int, data: bytes, path: Path) -> None:
        writes.append(fd)
        append(fd, data, path)

    monkeypatch.setattr(fileedit, "_append", counted)
    assert restore_in(actions, "boot-1", monkeypatch) == 100
    assert len(writes) == 1
    assert len(deny.read_text().splitlines()) == 100


def test_an_expiry_leaves_the_blocks_an_unblock_has_begun_to_that_unblock(
    make: Callable[[str], Actions],
) -> None:
    """The loop marks the blocks of an `unblock` at once; an expiry the worker takes first
    leaves them, so the unblock ends them and answers that it did (not `no active block
    matches`)."""
    actions = make('BLOCK_DURATION="60"\nKILL_HOSTS_DENY="ALL: $TARGET$"\n')
    record = block(actions, request())
    other = block(actions, request("198.18.0.12"))
    assert record is not None and record.until is not None and other is not None
    actions.unblocks.unblock_at_once([record], UNBLOCK_COMMAND)
    assert [r.address for r in actions.unblocks.expire(record.until + 61)] == ["198.18.0.12"]
    undone, answer = admin.unblock_here(actions, ipaddress.ip_network("198.18.0.11"))
    assert answer["unblocked"] == ["198.18.0.11"] and [r.id for r in undone] == [record.id]
    assert actions.store.last_end("198.18.0.11")[0] == UNBLOCK_COMMAND  # type: ignore[index]


def test_expired_blocks_are_not_listed(make: Callable[[str], Actions]) -> None:
    actions = make('BLOCK_DURATION="60"\nKILL_HOSTS_DENY="ALL: $TARGET$"\n')
    record = block(actions, request())
    assert record is not None and record.until is not None
    assert actions.store.active(now=record.until - 1) == [record]
    assert actions.store.active(now=record.until + 1) == []


def test_blocked_files_are_per_mode_as_portsentry_named_them(
    tmp_path: Path, make: Callable[[str], Actions]
) -> None:
    """PortSentry 1.2 appended `.<mode>` to BLOCKED_FILE (portsentry.blocked.atcp, ...); the
    history file has no suffix."""
    actions = make('KILL_HOSTS_DENY="ALL: $TARGET$"\nBLOCK_UDP="1"\n')
    tcp = block(actions, request("198.18.0.11"))
    udp = block(
        actions,
        BlockRequest(
            ipaddress.ip_address("198.18.0.12"), "udp", 7, "sudp", "UDP scan", BlockMode.BLOCK
        ),
    )
    assert tcp is not None and udp is not None
    base = actions.settings.blocked_file
    assert not base.exists()
    stcp, sudp = base.with_name(f"{base.name}.stcp"), base.with_name(f"{base.name}.sudp")
    assert stcp.read_text().endswith(" Host: 198.18.0.11/198.18.0.11 Port: 11 TCP Blocked\n")
    assert sudp.read_text().endswith(" Host: 198.18.0.12/198.18.0.12 Port: 7 UDP Blocked\n")
    assert len(actions.settings.history_file.read_text().splitlines()) == 2
    actions.unblocks.unblock(tcp, "command")
    assert stcp.read_text() == "" and sudp.read_text().count("\n") == 1


@pytest.mark.parametrize("last_used", ["in this boot", "before it"])
def test_a_store_from_before_boot_ids_keeps_routes_of_this_boot(
    tmp_path: Path, last_used: str
) -> None:
    """The daemon of before ran KILL_ROUTE at every start: if it used the store in this boot,
    its routes are in force and a restart of the new one must not run them again."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE blocks (id INTEGER PRIMARY KEY, address TEXT NOT NULL, proto"
            " TEXT NOT NULL, port INTEGER NOT NULL, mode TEXT NOT NULL, reason TEXT NOT"
            " NULL, hostname TEXT NOT NULL, since REAL NOT NULL, until REAL, offence"
            " INTEGER NOT NULL, actions TEXT NOT NULL, ended REAL, ended_by TEXT)"
        )
        db.execute(
            "INSERT INTO blocks VALUES (1, '198.18.0.11', 'tcp', 11, 'stcp', 'x', 'x', 0,"
            ' NULL, 1, \'[{"kind": "route", "undo": [], "status": "done"}]\','
            " NULL, NULL)"
        )
    if last_used == "before it":
        os.utime(path, (0, 0))
    store = Store(path)
    assert store.made_in_other_boots(boot_id()) == (set() if last_used == "in this boot" else {1})


def unblocked_through_a_link(actions: Actions, tmp_path: Path, target: str) -> tuple[Path, Path]:
    """198.18.0.11 blocked with a hosts.deny line, hosts.deny then made a symbolic link, and
    `target` unblocked: the line is left in force. Returns hosts.deny and the real file."""
    deny = actions.settings.hosts_deny_file
    assert block(actions, request()) is not None
    real = tmp_path / "real.deny"
    deny.rename(real)
    deny.symlink_to(real)
    assert admin_output.unblock(actions.settings, target) == 1
    return deny, real


def test_an_undo_that_fails_is_kept_reported_and_tried_again(
    tmp_path: Path, make: Callable[[str], Actions], capsys: pytest.CaptureFixture[str]
) -> None:
    """hosts.deny replaced by a symbolic link after the block: the unblock cannot remove the
    line. The block ends (the address is free of everything else) but what is left is kept,
    the command says so and fails, and the next unblock, once fixed, removes it."""
    actions = make('KILL_HOSTS_DENY="ALL: $TARGET$"\n')
    deny, real = unblocked_through_a_link(actions, tmp_path, "198.18.0.0/24")
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f'portwarden: error: unblock: left in force: 198.18.0.11: hosts.deny line "ALL: '
        f'198.18.0.11" in {deny} ({deny} is a symbolic link; refusing to follow it); fix it '
        "and run unblock again"
    ]
    assert actions.store.active() == [] and len(actions.store.leftovers()) == 1
    assert admin_output.unblock(actions.settings, "198.18.0.11") == 1  # still a link: still left
    capsys.readouterr()
    deny.unlink()
    real.rename(deny)
    assert admin_output.unblock(actions.settings, "198.18.0.11") == 0
    assert capsys.readouterr().out == "unblocked 198.18.0.11\n"
    assert deny.read_text() == "" and actions.store.leftovers() == []


def test_a_new_block_of_an_address_with_a_leftover_line_owns_that_line(
    tmp_path: Path,
    make: Callable[[str], Actions],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The unblock could not remove the line (a symbolic link then); the file is fixed and the
    address blocked again: the new block undoes the leftover first and adds the line as its
    own, so no later retry removes it from under the active block (a restart here did)."""
    actions = make('KILL_HOSTS_DENY="ALL: $TARGET$"\n')
    deny, real = unblocked_through_a_link(actions, tmp_path, "198.18.0.11")
    capsys.readouterr()
    deny.unlink()
    real.rename(deny)
    record = block(actions, request())
    assert record is not None and actions.store.leftovers() == []
    (line,) = [a for a in record.actions if a.kind == "hosts.deny"]
    assert line.undo == (str(deny), "ALL: 198.18.0.11")  # ours: unblock removes it
    assert restore_in(actions, "boot-1", monkeypatch) == 1
    assert deny.read_text() == "ALL: 198.18.0.11\n"


@pytest.mark.parametrize("written", ["[2001:db8::31]", "[2001:db8::]/64"])
def test_unblock_takes_an_address_as_hosts_deny_writes_it(
    make: Callable[[str], Actions], capsys: pytest.CaptureFixture[str], written: str
) -> None:
    actions = make('KILL_HOSTS_DENY="ALL: $TARGET$"\n')
    assert block(actions, request("2001:db8::31")) is not None
    assert actions.settings.hosts_deny_file.read_text() == "ALL: [2001:db8::31]\n"
    assert admin_output.unblock(actions.settings, written) == 0
    assert "unblocked 2001:db8::31\n" in capsys.readouterr().out
    assert actions.settings.hosts_deny_file.read_text() == ""


def test_a_start_ends_the_blocks_inside_the_ignore_file(
    tmp_path: Path, make: Callable[[str], Actions]
) -> None:
    actions = make('KILL_HOSTS_DENY="ALL: $TARGET$"\n')
    for address in ("198.18.0.11", "198.18.0.12"):
        assert block(actions, request(address)) is not None
    (tmp_path / "ignore").write_text("198.18.0.10/31\n")
    again = make(f'KILL_HOSTS_DENY="ALL: $TARGET$"\nIGNORE_FILE="{tmp_path}/ignore"\n')
    assert again.restorer.restore() == 1
    assert [r.address for r in again.store.active()] == ["198.18.0.12"]
    assert again.store.last_end("198.18.0.11") is not None
    assert again.store.last_end("198.18.0.11")[0] == "ignored"  # type: ignore[index]
    assert again.settings.hosts_deny_file.read_text() == "ALL: 198.18.0.12\n"


def test_the_ignored_blocks_are_found_in_small_and_large_networks(
    tmp_path: Path, make: Callable[[str], Actions]
) -> None:
    """Small networks are matched by their addresses' spellings, large ones by parsing (the
    restore of 100,000 blocks must not parse each one for a /32)."""
    actions = make('KILL_HOSTS_DENY="ALL: $TARGET$"\n')
    for address in ("198.18.0.11", "198.18.7.1", "198.19.0.1", "2001:db8::b", "2001:db8:1::1"):
        assert block(actions, request(address)) is not None
    (tmp_path / "ignore").write_text("198.18.0.0/24\n198.18.0.0/16\n2001:db8::b/128\n")
    again = make(f'KILL_HOSTS_DENY="ALL: $TARGET$"\nIGNORE_FILE="{tmp_path}/ignore"\n')
    ended = again.unblocks.unblock_ignored()
    assert sorted(r.address for r in ended) == ["198.18.0.11", "198.18.7.1", "2001:db8::b"]
    assert sorted(r.address for r in again.store.active()) == ["198.19.0.1", "2001:db8:1::1"]


def test_a_reboot_does_not_bring_back_a_kill_route_the_configuration_no_longer_has(
    tmp_path: Path, make: Callable[[str], Actions]
) -> None:
    calls = tmp_path / "calls"
    actions = make(
        f'KILL_HOSTS_DENY="ALL: $TARGET$"\nKILL_ROUTE="{record_cmd(calls, "add", "$TARGET$")}"\n'
    )
    assert block(actions, request()) is not None
    again = make('KILL_HOSTS_DENY="ALL: $TARGET$"\n')
    again.context.boot = "another boot"
    assert again.restorer.restore() == 1
    (record,) = again.store.active()
    assert [(a.kind, a.status) for a in record.actions] == [
        ("hosts.deny", "done"),
        ("route", f"failed: {NOT_CONFIGURED}"),
    ]
    assert len(calls_of(calls)) == 1  # not run again
    assert again.restorer.reapply_routes().done == []


def test_a_kill_before_the_history_line_is_caught_up_at_start_once(
    make: Callable[[str], Actions], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker marks the actions done, then writes the HISTORY_FILE line (up to a second
    later with RESOLVE_HOST): a kill in between loses no line, and a kill after the line but
    before the store knew it adds no second one."""
    actions = make('KILL_HOSTS_DENY="ALL: $TARGET$"\nBLOCK_DURATION="1"\n')
    history = actions.settings.history_file
    # Killed here:
    monkeypatch.setattr(PortSentryWriter, "write_history", lambda *args, **kwargs: None)
    for address in ("198.18.0.11", "198.18.0.12", "198.18.0.13"):
        assert block(actions, request(address)) is not None
    monkeypatch.undo()
    (written,) = actions.store.active()[2:]  # its line went out, the store's update did not
    portsentry_files.append_history(history, [written])
    time.sleep(1.1)  # every block expired while the daemon was down: lines all the same
    assert restore_in(actions, "boot-1", monkeypatch) == 0
    lines = history.read_text().splitlines()
    assert sorted(line.split("Host: ")[1].split("/")[1].split()[0] for line in lines) == [
        "198.18.0.11",
        "198.18.0.12",
        "198.18.0.13",
    ]
    restore_in(actions, "boot-1", monkeypatch)
    assert history.read_text().splitlines() == lines
    assert actions.store.unwritten() == []


def test_an_unblock_a_kill_interrupted_is_finished_at_start_not_applied_again(
    make: Callable[[str], Actions], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`unblock NET` of many, killed after it undid some: the blocks were marked (with who
    asked) before anything was undone, so the next start ends them all and puts no line back."""
    actions = make('KILL_HOSTS_DENY="ALL: $TARGET$"\n')
    deny = actions.settings.hosts_deny_file
    for number in range(5):
        assert block(actions, request(f"198.18.0.{11 + number}")) is not None
    before = actions.store.active()

    def killed(*args: object) -> None:
        deny.write_text("".join(f"ALL: 198.18.0.{n}\n" for n in (14, 15)))  # three went
        raise KeyboardInterrupt  # stands for kill -9: nothing after it runs

    monkeypatch.setattr(fileedit, "remove_lines", killed)
    with pytest.raises(KeyboardInterrupt):
        actions.unblocks.unblock_matching(None, UNBLOCK_COMMAND)
    monkeypatch.undo()
    assert len(actions.store.active()) == 5 and len(actions.store.unblocking()) == 5
    assert restore_in(actions, "boot-1", monkeypatch) == 0
    assert deny.read_text() == ""
    assert {actions.store.last_end(r.address)[0] for r in before} == {"command"}  # type: ignore[index]
    assert actions.settings.blocked_file.with_name("portsentry.blocked.stcp").read_text() == ""


def test_an_unblock_of_many_rewrites_hosts_deny_once(
    make: Callable[[str], Actions], monkeypatch: pytest.MonkeyPatch
) -> None:
    actions = make('KILL_HOSTS_DENY="ALL: $TARGET$"\n')
    deny = actions.settings.hosts_deny_file
    block_many(actions, 50)
    deny.write_text("sshd: 203.0.113.9\n" + deny.read_text())
    rewrites = record_rewrites(monkeypatch)
    inside = ipaddress.ip_network("198.18.1.0/26")
    assert len(actions.unblocks.unblock_matching(inside, "command")) == 50
    assert rewrites.count(deny) == 1
    assert deny.read_text() == "sshd: 203.0.113.9\n"


NFT_ADDED = Action("nft", (), "done")


class _NoKernelSets:
    """The nftables side of a restore, left out: a unit test never touches the host's
    ruleset (as root it would make our table in the host's own network namespace)."""

    def replace_all(self, blocks: object) -> None:
        pass


def nft_blocking(make: Callable[[str], Actions], monkeypatch: pytest.MonkeyPatch) -> Actions:
    """The built-in blocker on, its kernel side left out (no privileges): removals work."""
    monkeypatch.setattr(Unblocker, "_remove_elements", lambda self, records: None)
    monkeypatch.setattr(Unblocker, "undo", lambda self, action, address: None)
    monkeypatch.setattr(NftTable, "blocker", lambda self: _NoKernelSets())
    actions = make("")
    actions.settings = dataclasses.replace(actions.settings, block_nftables=NftUse.ALWAYS)
    return actions


def test_the_element_the_loop_added_is_recorded_done_with_the_block(
    make: Callable[[str], Actions], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The element is in force from the loop's insert on, not from the worker's turn."""
    actions = nft_blocking(make, monkeypatch)
    record = actions.blocks.record(request(), time.time(), None, NFT_ADDED)
    assert record is not None
    (stored,) = actions.store.active()
    assert [(a.kind, a.status) for a in stored.actions] == [("nft", "done")]
    failed = Action("nft", (), "failed: no table")
    other = actions.blocks.record(request("198.18.0.12"), time.time(), None, failed)
    assert other is not None and other.actions == (failed,)


def test_a_block_unblocked_before_its_turn_gets_its_history_line(
    make: Callable[[str], Actions], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unblock during a burst ends the block before the worker reaches it: its element was
    in force all the same, so HISTORY_FILE has its line (and only once)."""
    actions = nft_blocking(make, monkeypatch)
    record = actions.blocks.record(request(), time.time(), None, NFT_ADDED)
    assert record is not None
    assert len(actions.unblocks.unblock_matching(None, UNBLOCK_COMMAND)) == 1
    assert actions.blocks.carry_out(record, NFT_ADDED) is None
    history = actions.settings.history_file.read_text().splitlines()
    assert len(history) == 1 and "198.18.0.11" in history[0]
    assert actions.store.unwritten() == []


def test_a_block_whose_element_was_never_added_gets_no_history_line(
    make: Callable[[str], Actions], monkeypatch: pytest.MonkeyPatch
) -> None:
    actions = nft_blocking(make, monkeypatch)
    failed = Action("nft", (), "failed: no table")
    record = actions.blocks.record(request(), time.time(), None, failed)
    assert record is not None
    actions.unblocks.unblock_matching(None, UNBLOCK_COMMAND)
    assert actions.blocks.carry_out(record, failed) is None
    assert not actions.settings.history_file.exists()
    assert actions.store.unwritten() == []


def test_a_kill_then_an_unblock_without_the_daemon_keeps_the_history_line(
    make: Callable[[str], Actions], monkeypatch: pytest.MonkeyPatch
) -> None:
    """kill -9 with a block recorded by the loop and queued for the worker, then `unblock
    --all` with no daemon: the next start writes the line of that block, which was in force."""
    actions = nft_blocking(make, monkeypatch)
    assert actions.blocks.record(request(), time.time(), None, NFT_ADDED) is not None
    assert len(actions.unblocks.unblock_matching(None, UNBLOCK_COMMAND)) == 1
    assert restore_in(actions, "boot-1", monkeypatch) == 0
    history = actions.settings.history_file.read_text().splitlines()
    assert len(history) == 1 and "198.18.0.11" in history[0]


def failing_route(verb: str, answer: str) -> str:
    """A KILL_ROUTE program whose `verb` (add, del) fails as `ip route` does, with `answer`."""
    return f"import sys\nif sys.argv[1] == {verb!r}:\n    print({answer!r})\n    sys.exit(2)\n"


GONE_ROUTE = failing_route("del", "RTNETLINK answers: No such process")


@pytest.mark.parametrize(("count", "said"), [(1, "1 block"), (5, "5 blocks")])
def test_routes_already_gone_are_counted_in_one_line_per_batch(
    tmp_path: Path,
    make: Callable[[str], Actions],
    caplog: pytest.LogCaptureFixture,
    count: int,
    said: str,
) -> None:
    """An unblock of many whose KILL_ROUTE undos find nothing to remove (routes gone with a
    reboot, or by hand): not one line each (100,000 at scale), one line with their number.
    Blocks still queued (their route planned, never added) are not counted."""
    script = tmp_path / "route.py"
    script.write_text(GONE_ROUTE)
    actions = make(f'KILL_ROUTE="{sys.executable} {script} add $TARGET$"\n')
    for number in range(count):
        assert block(actions, request(f"198.18.0.{11 + number}")) is not None
    for number in range(3):  # recorded, not carried out
        address = f"198.18.0.{21 + number}"
        assert actions.blocks.record(request(address), time.time(), None) is not None
    caplog.set_level(logging.DEBUG, "portwarden")
    caplog.clear()
    assert len(actions.unblocks.unblock_matching(None, UNBLOCK_COMMAND)) == count + 3
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert [m for m in lines if "nothing to remove" in m] == [
        f"KILL_ROUTE undo: nothing to remove for {said} (gone already: removed by hand, or by "
        "a reboot)"
    ]
    assert actions.store.leftovers() == []


# nft as it answers: no `del` (a syntax error); `add` of an element there says nothing,
# `create` says `File exists`; `get` finds it; an element, set or table not there.
FAKE_NFT = """\
import os, sys
from pathlib import Path
held = Path(sys.argv[0] + ".elements")
elements = set(held.read_text().split()) if held.exists() else set()
verb, element = sys.argv[1], sys.argv[-2]
if verb == "create" and element in elements:
    sys.exit("Error: Could not process rule: File exists")
if verb in ("add", "create"):
    elements.add(element)
elif verb in ("delete", "get") and element not in elements:
    sys.exit("Error: Could not process rule: No such file or directory")
elif verb == "delete":
    elements.discard(element)
elif verb != "get" or "FAKE_NFT_NO_GET" in os.environ:
    sys.exit("Error: syntax error, unexpected element, expecting string")
held.write_text(" ".join(sorted(elements)))
"""


def fake_nft(tmp_path: Path) -> tuple[Path, Path]:
    """FAKE_NFT as `tmp_path`/nft, and the file of its elements."""
    nft = tmp_path / "nft"
    nft.write_text(f"#!{sys.executable}\n{FAKE_NFT}")
    nft.chmod(0o755)
    return nft, tmp_path / "nft.elements"


def test_a_kill_route_that_adds_an_nft_element_is_undone_with_delete(
    tmp_path: Path, make: Callable[[str], Actions], caplog: pytest.LogCaptureFixture
) -> None:
    """`nft add element ...` is undone with `nft delete element ...` (its `del` was a syntax
    error: every unblock left the block in force); an element gone already (a flushed
    ruleset) is nothing to remove."""
    nft, elements = fake_nft(tmp_path)
    actions = make(f'KILL_ROUTE="{nft} add element inet filter blocked {{ $TARGET$ }}"\n')
    assert block(actions, request("198.18.0.11")) is not None
    assert block(actions, request("198.18.0.12")) is not None
    assert elements.read_text() == "198.18.0.11 198.18.0.12"
    elements.write_text("198.18.0.11")  # 198.18.0.12 removed by hand
    caplog.set_level(logging.INFO, "portwarden")
    assert len(actions.unblocks.unblock_matching(None, UNBLOCK_COMMAND)) == 2
    assert actions.store.leftovers() == []
    assert elements.read_text() == ""
    assert "KILL_ROUTE undo: nothing to remove for 1 block " in caplog.text


@pytest.mark.parametrize(("verb", "get"), [("add", True), ("create", True), ("create", False)])
def test_an_nft_element_there_before_the_block_is_not_ours(
    tmp_path: Path,
    make: Callable[[str], Actions],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    verb: str,
    get: bool,
) -> None:
    """The administrator's own element for the address, there before the block: `nft add
    element` says nothing of it (its undo removed it at the unblock) and `create element` says
    `File exists` (a failed block, said to be a route's). In force, not ours: `present`, and
    the unblock leaves it and says so. Found with `nft get element`, or from `File exists`
    (an element added after that check)."""
    nft, elements = fake_nft(tmp_path)
    if not get:
        monkeypatch.setenv("FAKE_NFT_NO_GET", "1")
    elements.write_text("198.18.0.11")
    route = f"{nft} {verb} element inet filter blocked {{ $TARGET$ }}"
    actions = make(f'KILL_ROUTE="{route}"\n')
    caplog.set_level(logging.INFO, "portwarden")
    assert block(actions, request("198.18.0.11")) is not None
    (record,) = actions.store.active()
    assert [(a.kind, a.status) for a in record.actions] == [("route", "present")]
    assert (
        "KILL_ROUTE: the nftables element for 198.18.0.11 is there already (not ours: an "
        f"unblock leaves it): {route.replace('$TARGET$', '198.18.0.11')}"
    ) in caplog.text
    assert " ERROR " not in caplog.text and "route to" not in caplog.text
    _, answer = admin.unblock_here(actions, ipaddress.ip_network("198.18.0.11"))
    assert answer["unblocked"] == ["198.18.0.11"]
    assert answer["kept"] == [f"198.18.0.11: KILL_ROUTE {route.replace('$TARGET$', '198.18.0.11')}"]
    assert elements.read_text() == "198.18.0.11"
    elements.write_text("")  # gone: the next block's element is ours, and its unblock removes it
    assert block(actions, request("198.18.0.11")) is not None
    assert [a.status for a in actions.store.active()[0].actions] == ["done"]
    actions.unblocks.unblock_matching(None, UNBLOCK_COMMAND)
    assert elements.read_text() == ""


def test_an_nft_element_of_ours_put_back_after_a_reboot_stays_ours(tmp_path: Path) -> None:
    """A ruleset saved while the block was active and loaded at boot holds the element again:
    putting the block back must not take that for the administrator's (review: it became
    `present`, and no unblock removed it any more)."""
    nft, elements = fake_nft(tmp_path)
    elements.write_text("198.18.0.11")
    do = (str(nft), "add", "element", "inet", "filter", "blocked", "{", "198.18.0.11", "}")
    ours = Action(ROUTE, (str(nft), "delete", *do[2:]), DONE, do)
    assert run_action(ours, "KILL_ROUTE (restore)", "198.18.0.11", 5.0).status == DONE


THERE_ROUTE = failing_route("add", "RTNETLINK answers: File exists")


def test_reapply_keeps_a_blocking_route_there_and_names_any_other(
    tmp_path: Path, make: Callable[[str], Actions], monkeypatch: pytest.MonkeyPatch
) -> None:
    """At reapply a KILL_ROUTE that finds a route to the address there already (`File
    exists`): a blackhole is in force (present, not ours; exit 0), an ordinary host route is a
    failure that names it (it was one with an empty reason, kept at every reapply)."""
    script = tmp_path / "route.py"
    actions = make(f'KILL_ROUTE="{sys.executable} {script} add $TARGET$"\n')
    script.write_text("")
    assert block(actions, request()) is not None
    script.write_text(THERE_ROUTE)
    found: list[local.HostRoute] = [local.HostRoute("blackhole", (), None, 254)]
    monkeypatch.setattr(local, "host_routes", lambda address: found)
    outcome = actions.restorer.reapply_routes()
    assert outcome.done == ["198.18.0.11"] and outcome.failed == []
    (record,) = actions.store.active()
    assert [(a.kind, a.status) for a in record.actions] == [("route", "present")]
    found[:] = [local.HostRoute("unicast", (ipaddress.ip_address("198.18.0.2"),), "eth0", 254)]
    outcome = actions.restorer.reapply_routes()
    assert outcome.done == [] and outcome.failed == [
        (
            "198.18.0.11",
            (
                "a route to 198.18.0.11 is there already (unicast via 198.18.0.2 dev eth0): "
                "KILL_ROUTE could not add its own"
            ),
        )
    ]
    script.write_text("")  # the route is gone: ours takes its place
    assert actions.restorer.reapply_routes().done == ["198.18.0.11"]
    assert [a.status for a in actions.store.active()[0].actions] == ["done"]


def test_a_kill_while_many_routes_are_undone_leaves_only_the_rest_for_the_next_start(
    tmp_path: Path,
    make: Callable[[str], Actions],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An unblock of many with KILL_ROUTE (an `ip` process each) ends its blocks as it goes:
    killed after the third undo, the next start undoes only the two blocks left."""
    calls = tmp_path / "calls"
    actions = make(f'KILL_ROUTE="{record_cmd(calls, "route", "add", "$TARGET$")}"\n')
    for number in range(5):
        assert block(actions, request(f"198.18.0.{11 + number}")) is not None
    monkeypatch.setattr(limits, "UNBLOCK_COMMIT_S", 0.0)  # a commit after each block
    undone = actions.unblocks._undone_batched

    def killed_at_the_fourth(action: Action, address: str, *rest: object) -> Action:
        if address == "198.18.0.14":
            raise KeyboardInterrupt  # stands for kill -9: nothing after it runs
        return undone(action, address, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(actions.unblocks, "_undone_batched", killed_at_the_fourth)
    with pytest.raises(KeyboardInterrupt):
        actions.unblocks.unblock_matching(None, UNBLOCK_COMMAND)
    assert [r.address for r in actions.store.active()] == ["198.18.0.14", "198.18.0.15"]
    calls.unlink()
    assert restore_in(actions, "boot-1", monkeypatch) == 0
    assert calls_of(calls) == [["route", "del", "198.18.0.14"], ["route", "del", "198.18.0.15"]]


def test_a_block_the_full_queue_refused_gets_no_history_line_even_after_a_kill(
    make: Callable[[str], Actions], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loop added its element, then the full action queue refused the block: it is taken
    back at once and ends `failed`. A kill right after (before the store says its line is not
    due) must not give it a HISTORY_FILE line at the next start."""
    actions = nft_blocking(make, monkeypatch)
    record = actions.blocks.record(request(), time.time(), None, NFT_ADDED)
    assert record is not None
    monkeypatch.setattr(Store, "set_written", lambda self, ids: None)  # killed before it
    actions.blocks.abandon(record)
    monkeypatch.undo()
    nft_blocking(make, monkeypatch)  # the same patches again, for the restore
    assert restore_in(actions, "boot-1", monkeypatch) == 0
    assert not actions.settings.history_file.exists()


def test_a_block_whose_unblock_began_before_its_turn_is_not_carried_out(
    tmp_path: Path, make: Callable[[str], Actions]
) -> None:
    """`unblock` through the daemon marks the block at once (the loop), before the worker's
    turn: its job then does nothing of it; the worker's unblock ends it."""
    calls = tmp_path / "calls"
    actions = make(f'KILL_HOSTS_DENY="ALL: $TARGET$"\nKILL_RUN_CMD="{record_cmd(calls, "x")}"\n')
    now = time.time()
    record = actions.blocks.record(request(), now, None)
    assert record is not None
    actions.unblocks.unblock_at_once([record], UNBLOCK_COMMAND)
    assert actions.blocks.carry_out(record) is None
    assert not calls.exists() and not actions.settings.hosts_deny_file.exists()
    (undone,) = actions.unblocks.unblock_matching(None, UNBLOCK_COMMAND)
    assert undone.id == record.id and actions.store.active() == []


def test_reapply_runs_again_only_the_kill_routes_that_took_effect(
    tmp_path: Path, make: Callable[[str], Actions]
) -> None:
    """An IPv4-only KILL_ROUTE failed for an IPv6 block: reapply leaves it (it exited 1 at every
    reapply). One that failed at a reapply is tried again at the next."""
    calls = tmp_path / "calls"
    actions = make(
        f'KILL_HOSTS_DENY="ALL: $TARGET$"\nKILL_ROUTE="{record_cmd(calls, "add", "$TARGET$")}"\n'
    )
    assert block(actions, request("198.18.0.11")) is not None
    record = actions.blocks.record(request("2001:db8::b"), time.time(), None)
    assert record is not None
    planned = record.actions[1]
    assert planned.undo  # as a real one: else it would be left as "no known undo"
    failed = planned._replace(status="failed: exit status 6: Unknown host")
    actions.store.set_actions(record.id, (record.actions[0], failed))
    outcome = actions.restorer.reapply_routes()
    assert outcome.done == ["198.18.0.11"] and outcome.failed == [] and outcome.no_undo == []
    calls.unlink()
    calls.mkdir()  # the command fails now
    outcome = actions.restorer.reapply_routes()
    assert outcome.done == [] and [a for a, _ in outcome.failed] == ["198.18.0.11"]
    calls.rmdir()
    assert actions.restorer.reapply_routes().done == ["198.18.0.11"]
    assert calls_of(calls) == [["del", "198.18.0.11"], ["add", "198.18.0.11"]]


def test_a_block_the_administrator_unblocked_is_no_offence_but_an_expired_one_is(
    make: Callable[[str], Actions],
) -> None:
    """`portwarden unblock` says the block was a mistake (a false positive): the address's
    next block is escalated as if it had not been. One that expired still counts."""
    actions = make('KILL_HOSTS_DENY="ALL: $TARGET$"\nBLOCK_DURATION="60"\nBLOCK_ESCALATION="2"\n')
    first = block(actions, request())
    assert first is not None and first.offence == 1
    actions.unblocks.unblock_matching(None, UNBLOCK_COMMAND)
    again = block(actions, request())
    assert again is not None and again.offence == 1
    assert again.until is not None and again.until - again.since == pytest.approx(60)
    actions.unblocks.expire(again.until + 1)
    third = block(actions, request())
    assert third is not None and third.offence == 2
    assert third.until is not None and third.until - third.since == pytest.approx(120)


@pytest.mark.parametrize(("count", "said"), [(1, "1 block made"), (2, "2 blocks made")])
def test_blocks_taken_into_nftables_are_counted_in_the_right_number(
    make: Callable[[str], Actions], caplog: pytest.LogCaptureFixture, count: int, said: str
) -> None:
    """A reload that turns the built-in blocker on takes in the hosts.deny-only blocks."""
    actions = make('KILL_HOSTS_DENY="ALL: $TARGET$"\n')
    for address in ("198.18.0.11", "198.18.0.12")[:count]:
        assert block(actions, request(address)) is not None
    actions.settings = dataclasses.replace(actions.settings, block_nftables=NftUse.ALWAYS)
    with caplog.at_level(logging.WARNING, logger="portwarden"):
        assert actions.restorer.take_into_nft() == count
    assert [r.getMessage() for r in caplog.records] == [
        f"nftables: {said} before the built-in blocker was on {'is' if count == 1 else 'are'} "
        "now enforced by it too"
    ]
