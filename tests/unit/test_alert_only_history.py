"""HISTORY_ALERT_ONLY: in alert-only mode a scan gets PortSentry's `Blocked` line in
HISTORY_FILE (fail2ban's portsentry jail bans on it), once per source while it goes on
scanning, never for a protected address, within BLOCKS_PER_MINUTE."""

import contextlib
import ipaddress
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from portwarden import limits
from portwarden.alert.dispatch import Alerts
from portwarden.config import Settings, load_settings
from portwarden.detect.engine import Verdict, VerdictKind
from portwarden.detect.probe import SYN_SCAN, UDP_SCAN, Probe
from portwarden.net.addresses import Proto
from portwarden.respond import policy as policy_module
from portwarden.respond.actions import Actions
from portwarden.respond.jobs import JobQueue, NotesJob
from portwarden.respond.notes import NotedSources
from portwarden.respond.policy import ResponsePolicy
from portwarden.respond.portsentry_files import portsentry_line
from portwarden.store.db import HistoryNote, Store
from tests.unit.test_jobs import block, drain

TARGET = ipaddress.ip_address("198.18.0.1")
SCANNER = "198.18.0.11"
# PortSentry's line, which fail2ban's filter reads: `\/<HOST> Port\: [0-9]+ (TCP|UDP) Blocked$`.
LINE = re.compile(
    r"^\d+ - \d\d/\d\d/\d{4} \d\d:\d\d:\d\d Host: (\S+)/(\S+) Port: (\d+) "
    r"(TCP|UDP) Blocked$"
)


ALERT_ONLY = 'BLOCK_UDP="0"\nBLOCKS_PER_MINUTE="10"\n'


def settings_of(folder: Path, conf: str) -> Settings:
    """Everything in `folder`, nothing sent; alert only for TCP unless `conf` blocks it (the
    first line of a key counts)."""
    path = folder / "portwarden.conf"
    path.write_text(
        f'STATE_DIR="{folder}/state"\nSYSLOG_SOCKET=""\nEVENT_LOG=""\n'
        f'HOSTS_DENY_FILE="{folder}/hosts.deny"\nBLOCK_NFTABLES="0"\n{conf}'
        'BLOCK_TCP="0"\n'
    )
    return load_settings(path)


@contextlib.contextmanager
def made_policy(folder: Path, conf: str, started: bool = False) -> Iterator[ResponsePolicy]:
    """A policy on `conf`'s settings; `started`: its worker runs (else its jobs only wait)."""
    settings = settings_of(folder, conf)
    made = ResponsePolicy(settings, folder / "store.db", Alerts(settings))
    if started:
        made.start()
    try:
        yield made
    finally:
        made.stop()


def scan(source: str, ports: int = 1, proto: Proto = Proto.TCP, port: int = 11) -> Verdict:
    kind, mode = (SYN_SCAN, "stcp") if proto is Proto.TCP else (UDP_SCAN, "sudp")
    probe = Probe(ipaddress.ip_address(source), TARGET, proto, 40000, port, mode, kind)
    return Verdict("scan", probe, True, ports, ports, 0.0)


def history(folder: Path) -> list[str]:
    path = folder / "state" / "portsentry.history"
    return path.read_text().splitlines() if path.exists() else []


def wait_for_lines(folder: Path, count: int) -> list[str]:
    deadline = time.monotonic() + 5
    while len(history(folder)) < count:
        assert time.monotonic() < deadline, history(folder)
        time.sleep(0.01)
    return history(folder)


def test_a_scan_in_alert_only_mode_gets_portsentrys_line_and_nothing_else(
    tmp_path: Path,
) -> None:
    with made_policy(tmp_path, ALERT_ONLY, started=True) as policy:
        for now in (1.0, 1.5, 2.0):  # the scan's next probes: the same would-be block
            policy.on_verdict(scan(SCANNER, port=11), now)
        policy.on_verdict(scan(SCANNER, proto=Proto.UDP, port=7), 2.5)  # its own, as -udp's
        policy.on_verdict(scan(SCANNER, proto=Proto.UDP, port=8), 3.0)
        line, udp_line = wait_for_lines(tmp_path, 2)
        stored = policy.store
        deadline = time.monotonic() + 5  # the worker forgets the notes just after the lines
        while stored.notes() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert stored.notes() == []  # written: the store forgets it
        assert stored.active() == [] and policy.blocks_made == 0
    match, udp_match = LINE.match(line), LINE.match(udp_line)
    assert match is not None and match.groups() == (SCANNER, SCANNER, "11", "TCP")
    assert udp_match is not None and udp_match.groups() == (SCANNER, SCANNER, "7", "UDP")
    # The files of the modes that run are made at start, and list no block.
    blocked = list((tmp_path / "state").glob("portsentry.blocked*"))
    assert blocked and all(path.read_text() == "" for path in blocked)
    assert not (tmp_path / "hosts.deny").exists()
    assert history(tmp_path) == [line, udp_line]  # nothing more at the stop


def test_again_once_the_source_was_quiet_for_scan_trigger_window(tmp_path: Path) -> None:
    """A ban fail2ban made on the first line may have ended by then: the new scan is told."""
    with made_policy(tmp_path, ALERT_ONLY + 'SCAN_TRIGGER_WINDOW="60"\n') as policy:
        for now in (1.0, 50.0, 100.0, 150.0):  # never quiet for 60 s
            policy.on_verdict(scan(SCANNER), now)
        assert len(policy.store.notes()) == 1
        policy.tick(211.0)
        policy.on_verdict(scan(SCANNER), 211.0)
        policy.on_verdict(scan("198.18.0.12"), 211.0)
        assert [n.address for n in policy.store.notes()] == [SCANNER, SCANNER, "198.18.0.12"]


def test_a_sources_udp_scan_does_not_keep_its_tcp_line_from_coming_again(tmp_path: Path) -> None:
    """fail2ban's stock jail bans TCP only: the source's UDP probes still come during the ban,
    and must not make its TCP scan after the ban look like the same run of scanning."""
    with made_policy(tmp_path, ALERT_ONLY + 'SCAN_TRIGGER_WINDOW="60"\n') as policy:
        policy.on_verdict(scan(SCANNER), 1.0)
        for now in (30.0, 60.0, 90.0):  # UDP all along; TCP quiet from 1 s on
            policy.on_verdict(scan(SCANNER, proto=Proto.UDP, port=7), now)
        policy.on_verdict(scan(SCANNER), 95.0)
        assert [(n.address, n.proto) for n in policy.store.notes()] == [
            (SCANNER, "tcp"),
            (SCANNER, "udp"),
            (SCANNER, "tcp"),
        ]


def test_no_line_when_history_alert_only_is_off(tmp_path: Path) -> None:
    with made_policy(tmp_path, ALERT_ONLY + 'HISTORY_ALERT_ONLY="0"\n') as policy:
        policy.on_verdict(scan(SCANNER), 1.0)
        assert policy.store.notes() == []


@pytest.mark.parametrize("kind", ["scan-summary", "os-probe", "os-summary"])
def test_only_the_verdict_that_would_block_gets_a_line(tmp_path: Path, kind: VerdictKind) -> None:
    with made_policy(tmp_path, ALERT_ONLY) as policy:
        policy.on_verdict(scan(SCANNER)._replace(kind=kind), 1.0)
        assert policy.store.notes() == []


def test_never_for_an_address_no_block_would_be_made_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """fail2ban would ban what the line names: a gateway, a name server, a local address."""
    caplog.set_level(logging.INFO, "portwarden")
    gateway, server, local = "198.18.0.254", "198.18.0.53", "198.18.0.1"
    monkeypatch.setattr(
        policy_module, "default_gateways", lambda: frozenset({ipaddress.ip_address(gateway)})
    )
    monkeypatch.setattr(
        policy_module, "name_servers", lambda: frozenset({ipaddress.ip_address(server)})
    )
    settings = settings_of(tmp_path, ALERT_ONLY)
    policy = ResponsePolicy(
        settings,
        tmp_path / "store.db",
        Alerts(settings),
        local=lambda: frozenset({ipaddress.ip_address(local)}),
    )
    try:
        policy.refresh()
        for address in (gateway, server, local, gateway):
            policy.on_verdict(scan(address, ports=24), 1.0)
        policy.on_verdict(scan(SCANNER), 1.0)
        assert [n.address for n in policy.store.notes()] == [SCANNER]
    finally:
        policy.stop()
    said = [r.getMessage() for r in caplog.records if "no HISTORY_FILE line" in r.getMessage()]
    assert said == [
        f"no HISTORY_FILE line for address={gateway} why=gateway (PROTECT_GATEWAYS=0 allows "
        "it): whatever bans on that file would ban it",
        f"no HISTORY_FILE line for address={server} why=nameserver (PROTECT_NAMESERVERS=0 "
        "allows it): whatever bans on that file would ban it",
        f"no HISTORY_FILE line for address={local} why=local (nothing allows it): whatever "
        "bans on that file would ban it",
    ]


def test_blocks_per_minute_bounds_the_lines_and_leaves_the_blocks_their_own_budget(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """BLOCK_TCP=1, BLOCK_UDP=0: a flood of spoofed one-probe UDP sources gets 10 lines a
    minute (BLOCKS_PER_MINUTE), a real UDP scanner seen on many ports one more (the second
    budget, as for blocks), and a TCP scanner its block all the same."""
    conf = f'BLOCK_TCP="1"\n{ALERT_ONLY}KILL_HOSTS_DENY="ALL: $TARGET$"\n'
    with made_policy(tmp_path, conf) as policy:
        for number in range(200):
            spoofed = str(ipaddress.ip_address("198.18.1.0") + number)
            policy.on_verdict(scan(spoofed, proto=Proto.UDP, port=7), 1.0)
        assert len(policy.store.notes()) == 10
        policy.on_verdict(scan("198.18.0.12", ports=24, proto=Proto.UDP, port=7), 2.0)
        policy.on_verdict(scan(SCANNER, ports=1), 2.0)
        assert len(policy.store.notes()) == 11
        assert policy.blocks_made == 1 and policy.store.active_block(SCANNER) is not None
        assert "history-cap reached" in caplog.text and "block-cap" not in caplog.text
        policy.tick(62.0)
        assert "history-cap ended: 190 sources got no alert-only HISTORY_FILE line" in caplog.text
        policy.on_verdict(scan("198.18.2.1", proto=Proto.UDP, port=7), 62.0)
        assert len(policy.store.notes()) == 12


def test_a_source_blocked_already_gets_no_line(tmp_path: Path) -> None:
    """BLOCK_TCP=1, BLOCK_UDP=0: its TCP block has its line; its UDP scan adds none."""
    conf = 'BLOCK_TCP="1"\nBLOCK_UDP="0"\nKILL_HOSTS_DENY="ALL: $TARGET$"\n'
    with made_policy(tmp_path, conf) as policy:
        policy.on_verdict(scan(SCANNER), 1.0)
        policy.on_verdict(scan(SCANNER, proto=Proto.UDP, port=7), 1.5)
        assert policy.store.active_block(SCANNER) is not None
        assert policy.store.notes() == []


def test_the_lines_a_kill_left_unwritten_are_written_at_start_once(tmp_path: Path) -> None:
    """The loop records the note, the worker writes its line and then removes it: a kill in
    between leaves the note; the start writes its line, unless the file has it already."""
    settings = settings_of(tmp_path, ALERT_ONLY)
    store = Store(tmp_path / "store.db")
    store.add_note(SCANNER, "tcp", 11, 1_700_000_000.0)
    store.add_note("198.18.0.12", "udp", 7, 1_700_000_001.0)
    written = portsentry_line(store.notes()[1])  # the kill came after its line was written
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "portsentry.history").write_text(written + "\n")
    Actions(settings, store).restorer.restore()
    assert store.notes() == []
    lines = history(tmp_path)
    assert lines[0] == written and len(lines) == 2
    assert lines[1] == portsentry_line(HistoryNote(1, SCANNER, "tcp", 11, SCANNER, 1.7e9))


def test_a_note_whose_line_could_not_be_written_stays_for_the_next_writing(
    tmp_path: Path,
) -> None:
    settings = settings_of(tmp_path, ALERT_ONLY)
    store = Store(tmp_path / "store.db")
    actions = Actions(settings, store)
    store.add_note(SCANNER, "tcp", 11, 1_700_000_000.0)
    history_file = tmp_path / "state" / "portsentry.history"
    history_file.parent.mkdir()
    history_file.symlink_to(tmp_path / "elsewhere")  # refused: never followed
    actions.files.write_notes()
    assert len(store.notes()) == 1 and not (tmp_path / "elsewhere").exists()
    history_file.unlink()
    store.add_note("198.18.0.12", "tcp", 15, 1_700_000_001.0)
    actions.files.write_notes()
    assert store.notes() == []
    found = [LINE.match(line) for line in history(tmp_path)]
    assert [m.group(2) if m else None for m in found] == [SCANNER, "198.18.0.12"]


def test_a_note_is_written_as_portsentry_wrote_a_block() -> None:
    since = time.mktime((2024, 3, 9, 14, 5, 6, 0, 0, -1))
    note = HistoryNote(7, "2001:db8::b", "udp", 31337, "scanner.example", since)
    assert portsentry_line(note) == (
        f"{int(since)} - 03/09/2024 14:05:06 Host: scanner.example/2001:db8::b Port: 31337 "
        "UDP Blocked"
    )


def test_the_sources_remembered_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "NOTED_SOURCES_MAX", 4)
    noted = NotedSources()
    for number in range(10):
        noted.add(f"198.18.1.{number}", float(number))
    assert len(noted) == 4
    assert not noted.noted("198.18.1.0", 10.0, 300.0)  # the least recent went first
    assert noted.noted("198.18.1.9", 10.0, 300.0)
    noted.forget_quiet(400.0, 300.0)
    assert len(noted) == 0


def test_one_writing_of_notes_waits_at_most() -> None:
    jobs = JobQueue(blocks_max=4, urgent_max=4)
    for _ in range(10):
        assert jobs.put(NotesJob())
    assert jobs.put(block(1))
    assert drain(jobs) == [NotesJob(), block(1)]


def test_the_lines_waiting_in_the_store_are_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A HISTORY_FILE that cannot be written keeps them waiting: the oldest go, past the cap."""
    monkeypatch.setattr(limits, "NOTES_PENDING_MAX", 3)
    store = Store(tmp_path / "store.db")
    for number in range(5):
        store.add_note(f"198.18.1.{number}", "tcp", 11, float(number))
    assert [n.address for n in store.notes()] == ["198.18.1.2", "198.18.1.3", "198.18.1.4"]
