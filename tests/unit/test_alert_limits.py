"""The alert paths limit themselves, say so once and count it: a flood of audit findings
becomes one counted line, a missing syslog socket one warning; what each path delivered and
dropped is counted per path and reason."""

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from portwarden import limits
from portwarden.alert.dispatch import Alerts
from portwarden.alert.syslog import Syslog
from portwarden.audit.findings import Finding, Kind
from portwarden.config import load_settings
from portwarden.detect.engine import Engine, EngineConfig
from portwarden.metrics import exposition
from tests.lab.syslogd import SyslogReceiver
from tests.unit.probes import syn_probe


def test_audit_findings_past_the_cap_are_counted_not_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    conf = tmp_path / "portwarden.conf"
    conf.write_text(f'STATE_DIR="{tmp_path}"\nSYSLOG_SOCKET=""\n')
    alerts = Alerts(load_settings(conf))
    total = limits.AUDIT_FINDINGS_REPORTED_MAX + 50
    findings = [
        Finding(Kind.NEW, "crit", "198.18.0.1", 20000 + n, "udp", "unknown") for n in range(total)
    ]
    with caplog.at_level(logging.WARNING, logger="portwarden"):
        alerts.audit(findings, 0.0)
    alerts.close()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == limits.AUDIT_FINDINGS_REPORTED_MAX + 1
    assert lines[-1].startswith("audit: 50 more findings not shown")
    events = [json.loads(x) for x in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events].count("audit") == limits.AUDIT_FINDINGS_REPORTED_MAX
    assert events[-1] == {"time": events[-1]["time"], "event": "audit-suppressed", "count": 50}


def test_a_missing_syslog_socket_is_said_once_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dropped: list[bool] = []
    syslog = Syslog(tmp_path / "no-such-log", "daemon", dropped.append)
    with caplog.at_level(logging.INFO, logger="portwarden"):
        assert all(syslog.send(f"line {n}") for n in range(5))  # queued
        syslog.close()
    assert syslog.outage.dropped == 5 and dropped == [False] * 5
    assert [r.getMessage().split(";")[0] for r in caplog.records] == [
        f"syslog {tmp_path / 'no-such-log'} failing: No such file or directory"
    ]


def test_alerts_are_counted_per_path_as_sent_or_dropped_by_reason(tmp_path: Path) -> None:
    """One syslog line per probe up to the attack-line burst, then counted as rate-limited;
    the JSON log has the first probe; a syslog that is gone is an error, not a rate limit."""
    receiver = SyslogReceiver(tmp_path / "log")
    conf = tmp_path / "portwarden.conf"
    conf.write_text(f'STATE_DIR="{tmp_path}"\nSYSLOG_SOCKET="{receiver.path}"\n')
    alerts = Alerts(load_settings(conf))
    engine = Engine(EngineConfig())
    for port in range(1, limits.ATTACK_LINES_BURST + 11):
        for verdict in engine.feed(syn_probe(port), 0.0):
            alerts.verdict(verdict, 0.0, "")
    receiver.path.unlink()  # syslog is gone (reopen: as on SIGHUP, to connect again)
    alerts.reopen()
    alerts.table_lost()  # one syslog line that cannot go, one JSON event
    alerts.close()  # sends what is queued
    counts = alerts.delivered()
    receiver.sock.close()
    # (A full receive queue is an error too: the receiver's thread may fall behind a burst.)
    syslog_sent, syslog_dropped = counts["sent"].pop("syslog"), counts["dropped"].pop("syslog")
    assert syslog_sent + syslog_dropped["error"] == limits.ATTACK_LINES_BURST + 1
    assert syslog_dropped["rate_limit"] == 10 and syslog_dropped["error"] >= 1
    assert counts == {
        "sent": {"json": 2, "mail": 0},
        "dropped": {"json": {"rate_limit": 0, "error": 0}, "mail": {"rate_limit": 0, "error": 0}},
    }


def test_the_suppressed_count_is_the_syslog_lines_held_back_as_the_metric_counts_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """LOG_CONNECTIONS and LOG_DETAILS: a probe held back by the attack-line limit stands for
    two syslog lines, a verdict for one to three; the `N more alerts suppressed` line, the JSON
    `suppressed` event and the log line say how many lines, as the metric counts them."""
    receiver = SyslogReceiver(tmp_path / "log")
    conf = tmp_path / "portwarden.conf"
    conf.write_text(
        f'STATE_DIR="{tmp_path}"\nSYSLOG_SOCKET="{receiver.path}"\n'
        'LOG_CONNECTIONS="1"\nLOG_DETAILS="1"\n'
    )
    alerts = Alerts(load_settings(conf))
    engine = Engine(EngineConfig())
    for n in range(241):  # the reviewer's 241 sources, 3 probes each
        for port in (11, 12, 13):
            p = syn_probe(port, f"198.18.{1 + n // 200}.{n % 200}")
            alerts.probe(p, 0.0)
            for verdict in engine.feed(p, 0.0):
                alerts.verdict(verdict, 0.0, "")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="portwarden"):
        alerts.tick(0.5)
    alerts.close()
    receiver.close()
    held_back = alerts.delivered()["dropped"]["syslog"]["rate_limit"]
    assert held_back > 241 * 3 - limits.ATTACK_LINES_BURST  # more lines than calls
    said = [line for line in receiver.lines if "more alerts suppressed" in line]
    assert [line.split("attackalert: ")[1] for line in said] == [
        f"{held_back} more alerts suppressed (rate limit)"
    ]
    events = [json.loads(x) for x in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [e["count"] for e in events if e["event"] == "suppressed"] == [held_back]
    assert [r.getMessage() for r in caplog.records] == [
        f"attack lines suppressed: {held_back} in the last second (rate limit "
        f"{limits.ATTACK_LINES_PER_S}/s)"
    ]


def test_metrics_name_the_path_and_the_reason() -> None:
    alerts: dict[str, dict[str, Any]] = {
        "sent": {"syslog": 5, "json": 2, "mail": 1},
        "dropped": {
            "syslog": {"rate_limit": 3, "error": 0},
            "json": {"rate_limit": 0, "error": 0},
            "mail": {"rate_limit": 4, "error": 1},
        },
    }
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(exposition({}, alerts))
        for s in family.samples
    }
    assert samples[("portwarden_alerts_sent_total", (("path", "mail"),))] == 1
    dropped = "portwarden_alerts_dropped_total"
    assert samples[(dropped, (("path", "mail"), ("reason", "rate_limit")))] == 4
    assert samples[(dropped, (("path", "syslog"), ("reason", "rate_limit")))] == 3
    assert len(samples) == 1 + 3 + 6  # build_info, sent, dropped


def test_a_syslog_line_has_no_control_character_and_keeps_the_escapes_of_its_parts(
    tmp_path: Path,
) -> None:
    receiver = SyslogReceiver(tmp_path / "log")
    assert Syslog(receiver.path, "daemon").send("name evil\\x1b[2J\nforged: line\x07")
    line = receiver.wait_for("name evil")
    assert line.endswith("name evil\\x1b[2J\\nforged: line\\x07")


class _Outbox:
    def __init__(self) -> None:
        self.subjects: list[str] = []

    def submit(self, subject: str, body: str) -> None:
        self.subjects.append(subject)

    def stop(self) -> None:
        pass


@pytest.mark.parametrize(
    ("count", "said"), [(1, "1 port audit finding on"), (2, "2 port audit findings on")]
)
def test_the_audit_mail_subject_counts_in_the_singular_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, count: int, said: str
) -> None:
    conf = tmp_path / "portwarden.conf"
    conf.write_text(
        f'STATE_DIR="{tmp_path}"\nSYSLOG_SOCKET=""\nMAIL_ON_AUDIT="1"\nMAIL_TO="root@example.org"\n'
    )
    alerts = Alerts(load_settings(conf))
    alerts._mailer.stop()
    outbox = _Outbox()
    monkeypatch.setattr(alerts, "_mailer", outbox)
    alerts.audit(
        [
            Finding(Kind.NEW, "crit", "198.18.0.1", 20000 + n, "udp", "unknown")
            for n in range(count)
        ],
        0.0,
    )
    alerts.close()
    assert [s.split(" on ")[0] + " on" for s in outbox.subjects] == [f"portwarden: {said}"]
