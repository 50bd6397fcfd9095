"""A block that only ran KILL_RUN_CMD (BLOCK_UDP=2, or BLOCK_TCP=2) does not make the source
"already blocked" for the other protocol when its BLOCK is 1: a probe there makes a block that
enforces, which supersedes the command-only one (PortSentry 1.2's TCP and UDP processes each
checked only their own BLOCKED_FILE.<mode>, so its TCP side blocked such a source)."""

import contextlib
import ipaddress
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from portwarden.alert.dispatch import Alerts
from portwarden.config import load_settings
from portwarden.detect.engine import Verdict
from portwarden.detect.probe import SYN_SCAN, UDP_SCAN, Probe
from portwarden.net.addresses import Proto
from portwarden.respond.actions import Actions
from portwarden.respond.policy import ResponsePolicy
from portwarden.store.db import SUPERSEDED

SOURCE = "198.18.0.11"
TARGET = ipaddress.ip_address("198.18.0.1")


def probe_verdict(proto: Proto, source: str = SOURCE) -> Verdict:
    tcp = proto is Proto.TCP
    probe = Probe(
        ipaddress.ip_address(source),
        TARGET,
        proto,
        40000,
        11 if tcp else 12,
        "stcp" if tcp else "sudp",
        SYN_SCAN if tcp else UDP_SCAN,
    )
    return Verdict("scan", probe, True, 1, 1, 0.0)


@contextlib.contextmanager
def running(folder: Path, extra: str, start: bool = True) -> Iterator[ResponsePolicy]:
    """A policy (its worker started when `start`) that blocks with a hosts.deny line and
    runs `true` as KILL_RUN_CMD; `extra`: BLOCK_TCP and BLOCK_UDP, and what else differs."""
    conf = folder / "portwarden.conf"
    conf.write_text(
        f'{extra}STATE_DIR="{folder}/state"\nSYSLOG_SOCKET=""\nEVENT_LOG=""\n'
        f'HOSTS_DENY_FILE="{folder}/hosts.deny"\nBLOCK_NFTABLES="0"\n'
        'KILL_HOSTS_DENY="ALL: $TARGET$"\nKILL_RUN_CMD="/bin/true $TARGET$"\n'
    )
    settings = load_settings(conf)  # the first of a key wins: `extra` can unset the line
    made = ResponsePolicy(settings, settings.state_dir / "portwarden.db", Alerts(settings))
    if start:
        made.start()
    try:
        yield made
    finally:
        made.stop()


def settled(policy: ResponsePolicy, check: Callable[[], bool]) -> None:
    """Tick the loop until `check` holds (the worker carries blocks out), 10 s at most."""
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, "the worker did not finish in time"
        policy.tick(time.monotonic())
        time.sleep(0.01)


def carried_out(policy: ResponsePolicy) -> bool:
    policy.tick(time.monotonic())
    return all(a.status == "done" for r in policy.store.active() for a in r.actions) and not (
        policy._in_flight
    )


def blocks(policy: ResponsePolicy) -> list[tuple[str, str, str | None]]:
    """Every block of SOURCE: its mode, its actions, and why it ended (None: active)."""
    rows = policy.store._db.execute(
        "SELECT mode, actions, ended_by FROM blocks WHERE address = ? ORDER BY id", (SOURCE,)
    )
    return [
        (mode, ",".join(a["kind"] for a in json.loads(actions)), by) for mode, actions, by in rows
    ]


@pytest.mark.parametrize(
    ("conf", "first", "then", "modes"),
    [
        ('BLOCK_TCP="1"\nBLOCK_UDP="2"\n', Proto.UDP, Proto.TCP, ("sudp", "stcp")),
        ('BLOCK_TCP="2"\nBLOCK_UDP="1"\n', Proto.TCP, Proto.UDP, ("stcp", "sudp")),
    ],
)
def test_a_command_only_block_is_superseded_by_one_that_enforces(
    tmp_path: Path, conf: str, first: Proto, then: Proto, modes: tuple[str, str]
) -> None:
    with running(tmp_path, conf) as policy:
        policy.on_verdict(probe_verdict(first), time.monotonic())
        settled(policy, lambda: carried_out(policy))
        assert blocks(policy) == [(modes[0], "command", None)]
        assert not (tmp_path / "hosts.deny").exists()
        policy.on_verdict(probe_verdict(then), time.monotonic())
        settled(policy, lambda: carried_out(policy))
        assert blocks(policy) == [
            (modes[0], "command", SUPERSEDED),
            (modes[1], "hosts.deny,command", None),
        ]
        (record,) = policy.store.active()
        assert record.offence == 1  # one incident, not two offences
        policy.on_verdict(probe_verdict(first), time.monotonic())  # now it is blocked
        assert policy.blocks_made == 2
    settings = policy.settings
    assert (tmp_path / "hosts.deny").read_text() == f"ALL: {SOURCE}\n"
    history = settings.history_file.read_text().splitlines()
    assert [line.rsplit(" ", 2)[1] for line in history] == [first.value.upper(), then.value.upper()]
    blocked = {m: files_lines(settings.blocked_file, m) for m in modes}
    assert blocked == {modes[0]: 0, modes[1]: 1}  # the file of the blocks in force
    _unblock_all(policy)
    assert (tmp_path / "hosts.deny").read_text() == ""


def files_lines(base: Path, mode: str) -> int:
    return len(base.with_name(f"{base.name}.{mode}").read_text().splitlines())


def _unblock_all(policy: ResponsePolicy) -> None:
    store = policy.store.__class__(policy.settings.state_dir / "portwarden.db")
    actions = Actions(policy.settings, store)
    (record,) = store.active()
    assert actions.unblocks.unblock(record, "command") is not None
    store.close()


def test_a_probe_while_the_command_only_block_is_carried_out_supersedes_it_after(
    tmp_path: Path,
) -> None:
    """The worker is still on the command-only block (queued, or its command running): the
    probe that would supersede it waits for it, then makes its block at the next tick."""
    with running(tmp_path, 'BLOCK_TCP="1"\nBLOCK_UDP="2"\n', start=False) as policy:
        policy.on_verdict(probe_verdict(Proto.UDP), 1.0)
        policy.on_verdict(probe_verdict(Proto.TCP), 1.0)
        assert policy.blocks_made == 1
        policy._worker.finished.append(SOURCE)  # as if the worker had carried it out
        policy.tick(2.0)
        assert policy.blocks_made == 2
        assert [b[1:] for b in blocks(policy)] == [
            ("command", SUPERSEDED),
            ("hosts.deny,command", None),
        ]


@pytest.mark.parametrize(
    "conf",
    [
        'BLOCK_TCP="2"\nBLOCK_UDP="2"\n',  # the same again: a command for a command
        'BLOCK_TCP="1"\nBLOCK_UDP="2"\nKILL_HOSTS_DENY=""\n',
    ],  # BLOCK_TCP=1 runs the command alone
)
def test_a_plan_that_only_runs_the_command_supersedes_nothing(tmp_path: Path, conf: str) -> None:
    with running(tmp_path, conf) as policy:
        policy.on_verdict(probe_verdict(Proto.UDP), time.monotonic())
        settled(policy, lambda: carried_out(policy))
        policy.on_verdict(probe_verdict(Proto.TCP), time.monotonic())
        assert policy.blocks_made == 1
        assert [b[2] for b in blocks(policy)] == [None]


def test_a_superseding_block_lasts_as_the_first_offence(tmp_path: Path) -> None:
    """The command-only block it replaces is no offence of its own: the new block lasts
    BLOCK_DURATION, not BLOCK_DURATION * BLOCK_ESCALATION."""
    conf = 'BLOCK_TCP="1"\nBLOCK_UDP="2"\nBLOCK_DURATION="60"\nBLOCK_ESCALATION="2"\n'
    with running(tmp_path, conf) as policy:
        policy.on_verdict(probe_verdict(Proto.UDP), time.monotonic())
        settled(policy, lambda: carried_out(policy))
        policy.on_verdict(probe_verdict(Proto.TCP), time.monotonic())
        settled(policy, lambda: carried_out(policy))
        (record,) = policy.store.active()
        assert record.mode == "stcp"
        assert record.offence == 1
        assert record.until is not None
        assert record.until - record.since == pytest.approx(60)
