"""README's JSON event log tables against what the code writes: every kind the code writes is
in the table with exactly its fields, and every field is explained. Each event below is written
by the same code the daemon (or `portwarden unblock`) runs."""

import ipaddress
import json
import re
from pathlib import Path

import pytest

from portwarden import limits
from portwarden.alert.dispatch import Alerts
from portwarden.alert.events import write_unblocks
from portwarden.audit.findings import Finding, Kind
from portwarden.config import load_settings
from portwarden.detect.engine import Engine, EngineConfig
from portwarden.detect.probe import Probe
from portwarden.net.addresses import Proto
from portwarden.store.db import Action, BlockRecord

README = Path(__file__).parents[2] / "README.md"
NAME = re.compile(r"`([a-z_-]+)`")

OS_QUIET = EngineConfig().os_probe_quiet_s  # OS_PROBE_QUIET by default


def readme_tables() -> tuple[dict[str, set[str]], set[str]]:
    """({event kind: its fields}, every field the field table explains), from README's JSON
    event log section."""
    text = README.read_text()
    section = text[text.index("**JSON event log**") : text.index("## Migrating from PortSentry")]
    kinds: dict[str, set[str]] = {}
    explained: set[str] = set()
    table = ""
    for line in section.splitlines():
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
        if not cells or cells[0].startswith("---"):
            continue
        if not cells[0].startswith("`"):
            table = cells[0]  # the header: "event" or "field"
        elif table == "event":
            (kind,) = NAME.findall(cells[0])
            kinds[kind] = set(NAME.findall(cells[2]))
        elif table == "field":
            explained |= set(NAME.findall(cells[0]))
    return kinds, explained


def probe(
    port: int, proto: Proto = Proto.TCP, os_tool: str | None = None, flags: str = "SYN"
) -> Probe:
    return Probe(
        ipaddress.ip_address("198.18.0.11"),
        ipaddress.ip_address("198.18.0.1"),
        proto,
        40000,
        port,
        "stcp",
        "TCP SYN/Normal scan",
        flags,
        os_tool,
        tripwire=os_tool is None,
        seen_at=1.7e9 + port,
    )


@pytest.fixture
def written(tmp_path: Path) -> list[dict]:
    """One or more events of every kind, written by the code that writes them."""
    conf = tmp_path / "portwarden.conf"
    conf.write_text(f'STATE_DIR="{tmp_path}"\nSYSLOG_SOCKET=""\n')
    settings = load_settings(conf)
    alerts = Alerts(settings)
    engine = Engine(EngineConfig(scan_end_quiet_s=5))
    verdicts = engine.feed(probe(11), 0.0) + engine.feed(probe(15), 0.1)  # scan (first, next)
    verdicts += engine.feed(probe(80, os_tool="nmap", flags="NULL"), 0.2)  # os-probe
    verdicts += engine.feed(probe(81, Proto.UDP, os_tool="nmap", flags=""), 0.3)
    verdicts += engine.tick(0.3 + OS_QUIET)  # scan-summary, os-summary
    for verdict in verdicts:
        alerts.verdict(verdict, 0.0, "not blocked (BLOCK_TCP=0 BLOCK_UDP=0)")
    for _ in range(limits.ATTACK_LINES_BURST + 1):  # the attack-line limit holds: suppressed
        alerts.verdict(verdicts[1], 0.0, "")
    alerts.tick(1.0)
    alerts.summaries_dropped(3)
    alerts.blocked(
        BlockRecord(
            1,
            "198.18.0.11",
            "tcp",
            11,
            "stcp",
            "TCP SYN/Normal scan",
            "198.18.0.11",
            1.7e9,
            None,
            1,
            (Action("nft"),),
        )
    )
    alerts.unblocked("198.18.0.11", "expired", 1.7e9)
    alerts.unblocks_not_shown(5, 1.7e9)
    alerts.not_blocking("198.18.0.12", "a default gateway")
    alerts.block_cap(60)
    alerts.block_max(100_000)
    alerts.table_lost()
    alerts.element_lost("198.18.0.15")
    alerts.nft_failed("timeout of 315360001 s is out of range")
    alerts.block_failed("198.18.0.14")
    alerts.audit_unchecked("no audited address is on this host now", 1.7e9)
    alerts.mail_held(1.7e9 + 3600)
    alerts.audit(
        [
            Finding(Kind.NEW, "crit", "198.18.0.1", 20000 + n, "tcp", "unknown")
            for n in range(limits.AUDIT_FINDINGS_REPORTED_MAX + 1)
        ],
        1.7e9,
    )
    alerts.close()
    write_unblocks(settings, [("198.18.0.13", 1.7e9)], "command")  # no daemon runs
    return [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]


def test_every_event_kind_has_exactly_the_fields_readme_lists(written: list[dict]) -> None:
    documented, _ = readme_tables()
    seen: dict[str, set[frozenset[str]]] = {}
    for event in written:
        assert isinstance(event.pop("time"), str)
        seen.setdefault(event.pop("event"), set()).add(frozenset(event))
    assert set(seen) == set(documented)
    for kind, shapes in seen.items():
        assert shapes == {frozenset(documented[kind])}, kind


def test_every_field_is_explained() -> None:
    documented, explained = readme_tables()
    assert set().union(*documented.values()) <= explained


def test_unblock_without_a_daemon_caps_its_events_as_the_daemon_does(tmp_path: Path) -> None:
    conf = tmp_path / "portwarden.conf"
    conf.write_text(f'STATE_DIR="{tmp_path}"\nSYSLOG_SOCKET=""\n')
    ended = [(f"198.18.1.{n}", 1.7e9) for n in range(limits.UNBLOCKS_REPORTED_MAX + 3)]
    write_unblocks(load_settings(conf), ended, "command")
    events = [json.loads(x) for x in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events].count("unblock") == limits.UNBLOCKS_REPORTED_MAX
    assert events[-1]["event"] == "unblock-suppressed" and events[-1]["count"] == 3
